//! The graph: one walk over the network plan, the same walk the forward pass makes, emitting
//! ONNX nodes and, for each weight, a recipe that computes it from the checkpoint later, when
//! it is written (so the weights are never all in memory).

use crate::onnx::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, NodeProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::ExportError;
use nasnet_forward::WeightSource;
use nasnet_genotype::conventions::{conventions, join};
use nasnet_genotype::layout::same_padding;
use nasnet_genotype::{CellLayout, NetworkSpec, Operation, PrevAdjust};
use std::collections::HashSet;
use std::ops::Range;

/// A batch norm folded into the convolution before it: its scope, its channel count, and the
/// channels of it this convolution produces (the factorized reduction's two paths share one).
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedBn {
    pub scope: String,
    pub channels: usize,
    pub range: Range<usize>,
}

/// How an initializer's values are made when it is written.
#[derive(Debug, Clone, PartialEq)]
pub enum Recipe {
    /// Small constants known now.
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    /// A TF convolution `[kh, kw, cin, cout]` (`depthwise`: `[k, k, c, 1]`), with a batch norm
    /// folded in or not, as ONNX's `[cout, cin, kh, kw]` (depthwise `[c, 1, k, k]`).
    ConvWeights {
        variable: String,
        kernel: [usize; 2],
        cin: usize,
        cout: usize,
        depthwise: bool,
        bn: Option<FoldedBn>,
    },
    /// The bias a folded batch norm leaves: `beta - mean * gamma / sqrt(var + eps)`.
    FoldedBias(FoldedBn),
    /// A variable copied as it is (the classifier's `[features, classes]` and biases).
    Variable(String),
}

/// One initializer: its name, ONNX dims and recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct Initializer {
    pub name: String,
    pub dims: Vec<usize>,
    pub recipe: Recipe,
}

impl Initializer {
    /// Bytes of its raw data (4 per element: float32 or, for `Ints`, int64 is 8).
    pub fn byte_len(&self) -> u64 {
        let elements: u64 = self.dims.iter().map(|&d| d as u64).product();
        match self.recipe {
            Recipe::Ints(_) => 8 * elements,
            _ => 4 * elements,
        }
    }

    pub fn data_type(&self) -> DataType {
        match self.recipe {
            Recipe::Ints(_) => DataType::Int64,
            _ => DataType::Float,
        }
    }
}

/// The whole model before its weights are computed.
#[derive(Debug, Clone)]
pub struct OnnxGraph {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<Initializer>,
    pub inputs: Vec<ValueInfoProto>,
    pub outputs: Vec<ValueInfoProto>,
    pub metadata: Vec<(String, String)>,
    /// The batch-norm epsilon the folds use.
    pub epsilon: f32,
}

/// A value in the graph: its name and NCHW shape without the batch ([c, h, w]).
#[derive(Debug, Clone)]
struct Value {
    name: String,
    shape: [usize; 3],
}

pub(crate) struct Builder<'a> {
    spec: &'a NetworkSpec,
    weights: &'a dyn WeightSource,
    nodes: Vec<NodeProto>,
    initializers: Vec<Initializer>,
    names: HashSet<String>,
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn to_i64(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

/// `[N, dims...]` float32 with a symbolic batch.
fn float_value_info(name: &str, dims: &[usize]) -> ValueInfoProto {
    let batch = tensor_shape_proto::Dimension {
        value: Some(tensor_shape_proto::dimension::Value::DimParam("N".into())),
        denotation: None,
    };
    let rest = dims.iter().map(|&d| tensor_shape_proto::Dimension {
        value: Some(tensor_shape_proto::dimension::Value::DimValue(d as i64)),
        denotation: None,
    });
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: std::iter::once(batch).chain(rest).collect(),
                }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

impl<'a> Builder<'a> {
    pub(crate) fn new(spec: &'a NetworkSpec, weights: &'a dyn WeightSource) -> Self {
        Builder {
            spec,
            weights,
            nodes: Vec::new(),
            initializers: Vec::new(),
            names: HashSet::new(),
        }
    }

    pub(crate) fn build(
        mut self,
        metadata: Vec<(String, String)>,
    ) -> Result<OnnxGraph, ExportError> {
        let spec = self.spec;
        let [h, w] = spec.image_size;
        let nchw = self.node(
            "Transpose",
            &["images"],
            vec![ints_attr("perm", &[0, 3, 1, 2])],
            "input/nchw",
        );
        let scale = self.constant("input/scale", Recipe::Floats(vec![spec.input_scale]));
        let offset = self.constant("input/offset", Recipe::Floats(vec![spec.input_offset]));
        let scaled = self.node("Mul", &[&nchw, &scale], vec![], "input/scaled");
        let shifted = self.node("Add", &[&scaled, &offset], vec![], "input/shifted");
        let stem = self.stem(Value {
            name: shifted,
            shape: [3, h, w],
        })?;
        let mut outputs = vec![stem];
        for layout in &spec.cells {
            let out = self.cell(layout, &outputs)?;
            outputs.push(out);
        }
        let last = outputs
            .last()
            .cloned()
            .ok_or_else(|| self.unsupported("(cells)", "no cells"))?;
        let outputs_info = self.head(&last)?;
        Ok(OnnxGraph {
            nodes: self.nodes,
            initializers: self.initializers,
            inputs: vec![float_value_info("images", &[h, w, 3])],
            outputs: outputs_info,
            metadata,
            epsilon: spec.batch_norm_epsilon,
        })
    }

    fn unsupported(&self, scope: &str, problem: impl Into<String>) -> ExportError {
        ExportError::Unsupported {
            scope: scope.to_string(),
            problem: problem.into(),
        }
    }

    /// A unique value name from `base`.
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut n = 1;
        while !self.names.insert(name.clone()) {
            n += 1;
            name = format!("{base}:{n}");
        }
        name
    }

    fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<AttributeProto>, out: &str) -> String {
        let output = self.fresh(out);
        self.nodes.push(NodeProto {
            op_type: Some(op.into()),
            name: Some(output.clone()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            attribute: attrs,
            ..Default::default()
        });
        output
    }

    fn constant(&mut self, name: &str, recipe: Recipe) -> String {
        let dims = match &recipe {
            Recipe::Floats(v) if v.len() == 1 => vec![],
            Recipe::Floats(v) => vec![v.len()],
            Recipe::Ints(v) => vec![v.len()],
            _ => vec![],
        };
        self.initializer(name, dims, recipe)
    }

    fn initializer(&mut self, name: &str, dims: Vec<usize>, recipe: Recipe) -> String {
        let name = self.fresh(name);
        self.initializers.push(Initializer {
            name: name.clone(),
            dims,
            recipe,
        });
        name
    }

    /// Checks that `name` exists with `shape`.
    fn expect_shape(&self, name: &str, shape: &[usize]) -> Result<(), ExportError> {
        match self.weights.shape(name) {
            Some(s) if s == shape => Ok(()),
            found => Err(ExportError::Weight {
                source_name: self.weights.source_name(),
                name: name.to_string(),
                problem: match found {
                    Some(s) => format!("shape {s:?}, but the network plan needs {shape:?}"),
                    None => format!("missing (the network plan needs it, {shape:?})"),
                },
            }),
        }
    }

    fn check_bn(&self, bn: &FoldedBn) -> Result<(), ExportError> {
        for v in conventions().bn_variables(&bn.scope) {
            self.expect_shape(&v, &[bn.channels])?;
        }
        Ok(())
    }

    fn relu(&mut self, x: &Value) -> Value {
        let name = self.node("Relu", &[&x.name], vec![], &format!("{}/relu", x.name));
        Value {
            name,
            shape: x.shape,
        }
    }

    /// A convolution with SAME padding (or `valid`), a batch norm folded in.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        x: &Value,
        variable: &str,
        bn: FoldedBn,
        kernel: [usize; 2],
        stride: [usize; 2],
        valid: bool,
        out: &str,
    ) -> Result<Value, ExportError> {
        let [cin, h, w] = x.shape;
        let cout = bn.range.len();
        // A factorized-reduction path makes `cout` of its shared batch norm's channels.
        self.expect_shape(variable, &[kernel[0], kernel[1], cin, cout])?;
        self.check_bn(&bn)?;
        let (pads, oh, ow) = pads(h, w, kernel, stride, valid);
        let weights = self.initializer(
            variable,
            vec![cout, cin, kernel[0], kernel[1]],
            Recipe::ConvWeights {
                variable: variable.to_string(),
                kernel,
                cin,
                cout,
                depthwise: false,
                bn: Some(bn.clone()),
            },
        );
        let bias = self.initializer(
            &format!("{variable}/folded_bias"),
            vec![cout],
            Recipe::FoldedBias(bn),
        );
        let attrs = vec![
            ints_attr("kernel_shape", &to_i64(&kernel)),
            ints_attr("strides", &to_i64(&stride)),
            ints_attr("pads", &pads),
        ];
        let name = self.node("Conv", &[&x.name, &weights, &bias], attrs, out);
        Ok(Value {
            name,
            shape: [cout, oh, ow],
        })
    }

    /// ReLU, then [`Self::conv1x1`]: how most 1x1 convolutions of a cell read their input.
    fn relu_conv1x1(
        &mut self,
        x: &Value,
        scope: &str,
        bn_scope: &str,
        cout: usize,
        stride: usize,
    ) -> Result<Value, ExportError> {
        let r = self.relu(x);
        self.conv1x1(&r, scope, bn_scope, cout, stride)
    }

    /// A 1x1 conv of the TF variable `<scope>/weights` with the batch norm `bn_scope`.
    fn conv1x1(
        &mut self,
        x: &Value,
        scope: &str,
        bn_scope: &str,
        cout: usize,
        stride: usize,
    ) -> Result<Value, ExportError> {
        let bn = FoldedBn {
            scope: bn_scope.to_string(),
            channels: cout,
            range: 0..cout,
        };
        self.conv(
            x,
            &conventions().weights(scope),
            bn,
            [1, 1],
            [stride, stride],
            false,
            scope,
        )
    }

    fn stem(&mut self, x: Value) -> Result<Value, ExportError> {
        let c = conventions();
        let scope = &self.spec.stem_scope;
        let cout = self.spec.stem_filters;
        let bn = FoldedBn {
            scope: c.stem_bn(scope),
            channels: cout,
            range: 0..cout,
        };
        self.conv(&x, &c.weights(scope), bn, [3, 3], [2, 2], true, scope)
    }

    /// ReLU (or not) -> two half-width 1x1 paths on `x[::2, ::2]` and on `x` shifted by one
    /// pixel, sharing one batch norm, concatenated.
    fn factorized_reduction(
        &mut self,
        x: &Value,
        scope: &str,
        cout: usize,
        relu: bool,
    ) -> Result<Value, ExportError> {
        if !cout.is_multiple_of(2) {
            return Err(self.unsupported(scope, format!("a factorized reduction to {cout} channels (odd) cannot split evenly into its two paths")));
        }
        let c = conventions();
        let x = if relu { self.relu(x) } else { x.clone() };
        let [cin, h, w] = x.shape;
        let half = cout / 2;
        let axes = self.constant(&format!("{scope}/axes"), Recipe::Ints(vec![2, 3]));
        let steps = self.constant(&format!("{scope}/steps"), Recipe::Ints(vec![2, 2]));
        let starts0 = self.constant(&format!("{scope}/starts0"), Recipe::Ints(vec![0, 0]));
        let ends0 = self.constant(&format!("{scope}/ends0"), Recipe::Ints(to_i64(&[h, w])));
        let path1_in = self.node(
            "Slice",
            &[&x.name, &starts0, &ends0, &axes, &steps],
            vec![],
            &format!("{scope}/path1"),
        );
        // TF: pad one zero row and column at the bottom/right, drop the first, subsample.
        let pad = self.constant(
            &format!("{scope}/shift_pads"),
            Recipe::Ints(vec![0, 0, 0, 0, 0, 0, 1, 1]),
        );
        let padded = self.node("Pad", &[&x.name, &pad], vec![], &format!("{scope}/shift"));
        let starts1 = self.constant(&format!("{scope}/starts1"), Recipe::Ints(vec![1, 1]));
        let ends1 = self.constant(
            &format!("{scope}/ends1"),
            Recipe::Ints(to_i64(&[h + 1, w + 1])),
        );
        let path2_in = self.node(
            "Slice",
            &[&padded, &starts1, &ends1, &axes, &steps],
            vec![],
            &format!("{scope}/path2"),
        );
        let sub = [cin, h.div_ceil(2), w.div_ceil(2)];
        let bn_scope = join(scope, &c.cell.factorized_bn);
        let mut parts = Vec::with_capacity(2);
        for (n, input) in [path1_in, path2_in].into_iter().enumerate() {
            let bn = FoldedBn {
                scope: bn_scope.clone(),
                channels: cout,
                range: n * half..(n + 1) * half,
            };
            let variable = c.weights(&join(scope, &c.cell.factorized_paths[n]));
            let v = Value {
                name: input,
                shape: sub,
            };
            parts.push(self.conv(&v, &variable, bn, [1, 1], [1, 1], false, &variable)?);
        }
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        let name = self.node(
            "Concat",
            &names,
            vec![int_attr("axis", 1)],
            &format!("{scope}/reduced"),
        );
        Ok(Value {
            name,
            shape: [cout, sub[1], sub[2]],
        })
    }

    fn cell(&mut self, layout: &CellLayout, outputs: &[Value]) -> Result<Value, ExportError> {
        let c = conventions();
        let scope = layout.scope.as_str();
        let br = layout.filters;
        let spec = self.spec.genotype.cell(layout.kind).clone();
        let out_of = |i: usize| outputs.get(i).cloned();
        let net = out_of(layout.input)
            .ok_or_else(|| self.unsupported(scope, "input is not an earlier output"))?;
        let h0 = self.relu_conv1x1(
            &net,
            &join(scope, &c.cell.input_conv),
            &join(scope, &c.cell.input_bn),
            br,
            1,
        )?;
        let prev = match layout.prev {
            Some(p) => out_of(p)
                .ok_or_else(|| self.unsupported(scope, "prev_layer is not an earlier output"))?,
            None => net.clone(),
        };
        let h1 = match layout.prev_adjust {
            PrevAdjust::UseInput => net.clone(),
            PrevAdjust::Unchanged => prev,
            PrevAdjust::Prev1x1 => self.relu_conv1x1(
                &prev,
                &join(scope, &c.cell.prev_conv),
                &join(scope, &c.cell.prev_bn),
                br,
                1,
            )?,
            PrevAdjust::FactorizedReduction => self.factorized_reduction(&prev, scope, br, true)?,
        };
        let mut states = vec![h0, h1];
        for i in 0..spec.num_combinations() {
            let mut sides = Vec::with_capacity(2);
            for side in 0..2 {
                let j = 2 * i + side;
                let (index, op) = spec
                    .hiddenstate_indices
                    .get(j)
                    .zip(spec.operations.get(j))
                    .ok_or_else(|| self.unsupported(scope, format!("operation {j} is missing")))?;
                let input = states.get(*index).cloned().ok_or_else(|| {
                    self.unsupported(
                        scope,
                        format!("operation {j} reads h{index}, which does not exist yet"),
                    )
                })?;
                let stride = if *index < 2 { layout.stride } else { 1 };
                sides.push(self.operation(&c.branch(scope, j), *op, &input, stride, br)?);
            }
            if sides[0].shape != sides[1].shape {
                return Err(self.unsupported(
                    scope,
                    format!(
                        "combination {i}: {:?} and {:?} cannot be added",
                        sides[0].shape, sides[1].shape
                    ),
                ));
            }
            let name = self.node(
                "Add",
                &[&sides[0].name, &sides[1].name],
                vec![],
                &join(&join(scope, &c.combination(i)), &c.cell.combine),
            );
            states.push(Value {
                name,
                shape: sides[0].shape,
            });
        }
        self.concat(layout, &spec.used_hiddenstates, &states)
    }

    /// The unused states, each brought to the last state's size, concatenated.
    fn concat(
        &mut self,
        layout: &CellLayout,
        used: &[u8],
        states: &[Value],
    ) -> Result<Value, ExportError> {
        let c = conventions();
        let scope = layout.scope.as_str();
        let last = states[states.len() - 1].shape;
        let mut parts = Vec::new();
        for (j, state) in states
            .iter()
            .enumerate()
            .filter(|(j, _)| used.get(*j) == Some(&0))
        {
            let [ch, h, w] = state.shape;
            let adjust = c.output_reduction(scope, j);
            let part = if [h, w] != [last[1], last[2]] {
                if [h.div_ceil(2), w.div_ceil(2)] != [last[1], last[2]] {
                    return Err(self.unsupported(
                        scope,
                        format!("state h{j} {:?} cannot be reduced to {last:?}", state.shape),
                    ));
                }
                self.factorized_reduction(state, &adjust, last[0], false)?
            } else if ch != last[0] {
                self.conv1x1(
                    state,
                    &join(&adjust, &c.cell.output_reduction_conv),
                    &join(&adjust, &c.cell.output_reduction_bn),
                    last[0],
                    1,
                )?
            } else {
                state.clone()
            };
            parts.push(part);
        }
        let channels = last[0] * parts.len();
        if [last[1], last[2]] != layout.output_hw || channels != layout.output_channels {
            return Err(self.unsupported(
                scope,
                format!(
                    "the cell computes {}x{}x{channels}, the plan says {:?}x{}",
                    last[1], last[2], layout.output_hw, layout.output_channels
                ),
            ));
        }
        let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
        let name = self.node(
            "Concat",
            &names,
            vec![int_attr("axis", 1)],
            &c.cell_output_concat(scope),
        );
        Ok(Value {
            name,
            shape: [channels, last[1], last[2]],
        })
    }

    /// One operation of a cell on `x`, as `nasnet-forward` runs it.
    fn operation(
        &mut self,
        scope: &str,
        op: Operation,
        x: &Value,
        stride: usize,
        br: usize,
    ) -> Result<Value, ExportError> {
        let c = conventions();
        let names = &c.operations;
        let cin = x.shape[0];
        match op {
            Operation::Identity if stride == 1 && cin == br => Ok(x.clone()),
            Operation::Identity | Operation::Conv1x1 => self.relu_conv1x1(
                x,
                &join(scope, &names.projection_conv),
                &join(scope, &names.projection_bn),
                br,
                stride,
            ),
            Operation::AvgPool { kernel } | Operation::MaxPool { kernel } => {
                let avg = matches!(op, Operation::AvgPool { .. });
                let pooled = self.pool(x, avg, kernel, stride, scope);
                if cin == br {
                    return Ok(pooled);
                }
                self.conv1x1(
                    &pooled,
                    &join(scope, &names.projection_conv),
                    &join(scope, &names.projection_bn),
                    br,
                    1,
                )
            }
            Operation::Separable { kernel, repeats } => {
                self.separable(scope, x, kernel, repeats, stride, br)
            }
            Operation::Factorized { kernel } => self.bottleneck(scope, x, kernel, None, stride, br),
            Operation::Conv {
                kernel,
                dilation: 1,
            } => self.bottleneck(scope, x, kernel, Some(kernel), stride, br),
            Operation::Conv { kernel, dilation } => Err(self.unsupported(
                scope,
                format!(
                    "dilated {kernel}x{kernel} convolution (rate {dilation}) is not implemented"
                ),
            )),
        }
    }

    /// `1xK_Kx1` (`square` None) or `KxK`: [ReLU -> pre_1x1 -> BN] -> ReLU -> the conv(s),
    /// each with its BN -> [ReLU -> post_1x1 -> BN], the bottleneck present when the weights
    /// have a `pre_1x1` (its width from them, at most the cell's).
    fn bottleneck(
        &mut self,
        scope: &str,
        x: &Value,
        k: usize,
        square: Option<usize>,
        stride: usize,
        br: usize,
    ) -> Result<Value, ExportError> {
        let c = conventions();
        let names = &c.operations;
        let cin = x.shape[0];
        let pre_weights = c.weights(&join(scope, &names.bottleneck_in));
        let pre_width = match self.weights.shape(&pre_weights) {
            None => None,
            Some(s) if s.len() == 4 && s[..3] == [1, 1, cin] && (1..=br).contains(&s[3]) => {
                Some(s[3])
            }
            Some(s) => {
                return Err(ExportError::Weight {
                    source_name: self.weights.source_name(),
                    name: pre_weights,
                    problem: format!(
                        "shape {s:?}; a bottleneck's {} is [1, 1, {cin}, W] with 1 <= W <= {br}",
                        names.bottleneck_in
                    ),
                })
            }
        };
        let mut current = x.clone();
        if let Some(width) = pre_width {
            current = self.relu_conv1x1(
                &current,
                &join(scope, &names.bottleneck_in),
                &join(scope, &names.bottleneck_in_bn),
                width,
                1,
            )?;
        }
        let mid = current.shape[0];
        let bn = |scope_name: String, channels: usize| FoldedBn {
            scope: scope_name,
            channels,
            range: 0..channels,
        };
        // Without a bottleneck the op's first conv goes to the cell's width `br`.
        let out = if pre_width.is_some() { mid } else { br };
        match square {
            None => {
                let (row, row_bn, column) = c.factorized(k);
                let r = self.relu(&current);
                let row_var = c.weights(&join(scope, &row));
                current = self.conv(
                    &r,
                    &row_var,
                    bn(join(scope, &row_bn), out),
                    [1, k],
                    [1, stride],
                    false,
                    &row_var,
                )?;
                let r = self.relu(&current);
                let col_var = c.weights(&join(scope, &column));
                current = self.conv(
                    &r,
                    &col_var,
                    bn(join(scope, &names.conv_bn), out),
                    [k, 1],
                    [stride, 1],
                    false,
                    &col_var,
                )?;
            }
            Some(k) => {
                let r = self.relu(&current);
                let var = c.weights(&join(scope, &c.conv(k, false)));
                current = self.conv(
                    &r,
                    &var,
                    bn(join(scope, &names.conv_bn), out),
                    [k, k],
                    [stride, stride],
                    false,
                    &var,
                )?;
            }
        }
        if pre_width.is_some() {
            current = self.relu_conv1x1(
                &current,
                &join(scope, &names.bottleneck_out),
                &join(scope, &names.bottleneck_out_bn),
                br,
                1,
            )?;
        }
        Ok(current)
    }

    fn pool(&mut self, x: &Value, avg: bool, k: usize, stride: usize, scope: &str) -> Value {
        let [ch, h, w] = x.shape;
        let (pads, oh, ow) = pads(h, w, [k, k], [stride, stride], false);
        let mut attrs = vec![
            ints_attr("kernel_shape", &[k as i64, k as i64]),
            ints_attr("strides", &[stride as i64, stride as i64]),
            ints_attr("pads", &pads),
        ];
        // TF's SAME average pool leaves the padding out of the count.
        if avg {
            attrs.push(int_attr("count_include_pad", 0));
        }
        let op = if avg { "AveragePool" } else { "MaxPool" };
        let name = self.node(op, &[&x.name], attrs, &format!("{scope}/pool"));
        Value {
            name,
            shape: [ch, oh, ow],
        }
    }

    /// N times: ReLU -> depthwise KxK (stride on the first) -> pointwise with its BN folded.
    fn separable(
        &mut self,
        scope: &str,
        x: &Value,
        k: usize,
        repeats: usize,
        stride: usize,
        br: usize,
    ) -> Result<Value, ExportError> {
        if repeats == 0 {
            return Err(self.unsupported(scope, "a separable operation with no layers"));
        }
        let c = conventions();
        let mut current = x.clone();
        for n in 1..=repeats {
            let s = if n == 1 { stride } else { 1 };
            let (sep, bn) = c.separable(k, n);
            let sep = join(scope, &sep);
            let r = self.relu(&current);
            let [cin, h, w] = r.shape;
            let depthwise = join(&sep, &c.operations.depthwise_weights);
            self.expect_shape(&depthwise, &[k, k, cin, 1])?;
            let (pads, oh, ow) = pads(h, w, [k, k], [s, s], false);
            let dw_weights = self.initializer(
                &depthwise,
                vec![cin, 1, k, k],
                Recipe::ConvWeights {
                    variable: depthwise.clone(),
                    kernel: [k, k],
                    cin: 1,
                    cout: cin,
                    depthwise: true,
                    bn: None,
                },
            );
            let attrs = vec![
                ints_attr("kernel_shape", &[k as i64, k as i64]),
                ints_attr("strides", &[s as i64, s as i64]),
                ints_attr("pads", &pads),
                int_attr("group", cin as i64),
            ];
            let dw = self.node("Conv", &[&r.name, &dw_weights], attrs, &depthwise);
            let dw = Value {
                name: dw,
                shape: [cin, oh, ow],
            };
            let pointwise = join(&sep, &c.operations.pointwise_weights);
            let bn = FoldedBn {
                scope: join(scope, &bn),
                channels: br,
                range: 0..br,
            };
            current = self.conv(&dw, &pointwise, bn, [1, 1], [1, 1], false, &pointwise)?;
        }
        Ok(current)
    }

    /// ReLU, global average pool -> `features`; the classifier -> `logits`.
    fn head(&mut self, last: &Value) -> Result<Vec<ValueInfoProto>, ExportError> {
        let c = conventions();
        let features_n = last.shape[0];
        if features_n != self.spec.num_features {
            return Err(self.unsupported(
                "(head)",
                format!(
                    "the last cell gives {features_n} features, the plan says {}",
                    self.spec.num_features
                ),
            ));
        }
        let r = self.relu(last);
        let pooled = self.node(
            "GlobalAveragePool",
            &[&r.name],
            vec![],
            &join(&c.head.scope, "pool"),
        );
        // The graph's outputs: no value was named so before (cell scopes have slashes).
        let features = self.node("Flatten", &[&pooled], vec![int_attr("axis", 1)], "features");
        let mut outputs = vec![float_value_info(&features, &[features_n])];
        if let Some(classes) = self.spec.num_classes {
            let head = &c.head;
            self.expect_shape(&head.fc_weights, &[features_n, classes])?;
            self.expect_shape(&head.fc_biases, &[classes])?;
            let w = self.initializer(
                &head.fc_weights,
                vec![features_n, classes],
                Recipe::Variable(head.fc_weights.clone()),
            );
            let b = self.initializer(
                &head.fc_biases,
                vec![classes],
                Recipe::Variable(head.fc_biases.clone()),
            );
            let logits = self.node("Gemm", &[&features, &w, &b], vec![], "logits");
            outputs.insert(0, float_value_info(&logits, &[classes]));
        }
        Ok(outputs)
    }
}

/// ONNX pads `[top, left, bottom, right]` of TF's SAME (or VALID) convolution or pool, and the
/// output size.
fn pads(
    h: usize,
    w: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    valid: bool,
) -> (Vec<i64>, usize, usize) {
    if valid {
        let out = |i: usize, k: usize, s: usize| if i < k { 0 } else { (i - k) / s + 1 };
        return (
            vec![0, 0, 0, 0],
            out(h, kernel[0], stride[0]),
            out(w, kernel[1], stride[1]),
        );
    }
    let (t, b) = same_padding(h, kernel[0], stride[0]);
    let (l, r) = same_padding(w, kernel[1], stride[1]);
    (
        to_i64(&[t, l, b, r]),
        h.div_ceil(stride[0]),
        w.div_ceil(stride[1]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_pads_put_the_extra_pixel_at_the_bottom_and_right() {
        assert_eq!(
            pads(42, 42, [3, 3], [2, 2], false),
            (vec![0, 0, 1, 1], 21, 21)
        );
        assert_eq!(
            pads(83, 83, [7, 7], [2, 2], false),
            (vec![3, 3, 3, 3], 42, 42)
        );
        assert_eq!(
            pads(42, 42, [5, 5], [1, 1], false),
            (vec![2, 2, 2, 2], 42, 42)
        );
        assert_eq!(
            pads(331, 331, [3, 3], [2, 2], true),
            (vec![0, 0, 0, 0], 165, 165)
        );
    }
}
