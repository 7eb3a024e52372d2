//! One cell: its hidden states, its operations (two per combination; ten in every published
//! cell, as many as the validated description says) and the output concat.

use crate::layers::{ConvBn, Loader, Write};
use crate::ops::{load_op, OpLayer, StateShape};
use crate::{ForwardError, Tensor};
use kernels::{Nhwc, NhwcMut};
use nasnet_genotype::conventions::{conventions, join};
use nasnet_genotype::{CellLayout, CellSpec, PrevAdjust};

/// A cell's output: the states it concatenates, kept apart, in concat order (the stem's
/// output is one part). Every reader of a cell output takes it in parts (a 1x1 convolution
/// sums over the parts, the global mean fills each part's channels), so the concatenation
/// itself is only built for a tap ([`CellOutput::concatenated`]).
pub(crate) struct CellOutput {
    pub parts: Vec<Tensor>,
}

impl CellOutput {
    pub fn single(t: Tensor) -> CellOutput {
        CellOutput { parts: vec![t] }
    }

    pub fn views(&self) -> Vec<Nhwc<'_>> {
        self.parts.iter().map(Tensor::view).collect()
    }

    /// `[n, h, w, channels of all parts]`.
    pub fn shape(&self) -> [usize; 4] {
        let [n, h, w, _] = self.parts[0].shape;
        [n, h, w, self.parts.iter().map(Tensor::channels).sum()]
    }

    /// The parts concatenated along channels, as TF's cell output.
    pub fn concatenated(&self) -> Tensor {
        if let [only] = self.parts.as_slice() {
            return only.clone();
        }
        let mut out = Tensor::for_overwrite(self.shape());
        let mut c0 = 0;
        for part in &self.parts {
            let c = part.channels();
            kernels::copy(part.view(), out.view_mut().channels_mut(c0..c0 + c));
            c0 += c;
        }
        out
    }
}

/// How h1 is made from the `prev_layer` input.
pub(crate) enum PrevLayer {
    UseInput,
    Unchanged,
    Prev1x1(ConvBn),
    /// path1 reads x[::2, ::2], path2 x[1::2, 1::2] (zero padded); each gives half the channels.
    FactorizedReduction(ConvBn, ConvBn),
}

/// A loaded cell.
pub(crate) struct CellLayer {
    pub layout: CellLayout,
    spec: CellSpec,
    begin: ConvBn,
    prev: PrevLayer,
    ops: Vec<OpLayer>,
    /// Shapes (h, w, c) of the states h0, h1 and one per combination.
    shapes: Vec<StateShape>,
    /// The concatenated states in order, each with what makes it match the last state.
    concat: Vec<(usize, Option<ConcatAdjust>)>,
}

/// What a concatenated state goes through when its shape differs from the last state's
/// (`_combine_unused_states`, scope `cell_output/reduction_{j}`); no ReLU before either.
pub(crate) enum ConcatAdjust {
    /// Spatial size differs: factorized reduction at stride 2.
    Reduce(ConvBn, ConvBn),
    /// Only the width differs: `path_conv` 1x1 and `path_bn`.
    Project(ConvBn),
}

impl CellLayer {
    /// Loads a cell's weights. `prev_shape` is the shape of the `prev_layer` input, if any.
    /// `net_parts` and `prev_parts` are how many parts the two inputs come in.
    pub fn load(
        loader: &Loader,
        layout: &CellLayout,
        spec: &CellSpec,
        prev_shape: Option<StateShape>,
        [net_parts, prev_parts]: [usize; 2],
    ) -> Result<CellLayer, ForwardError> {
        let scope = &layout.scope;
        let br = layout.filters;
        let [ih, iw] = layout.input_hw;
        let names = &conventions().cell;
        let begin = loader.conv_bn_parts(
            &conventions().weights(&join(scope, &names.input_conv)),
            &join(scope, &names.input_bn),
            layout.input_channels,
            Some(br),
            net_parts,
        )?;
        let (prev, h1_shape) = load_prev(loader, layout, prev_shape, prev_parts)?;
        let mut states: Vec<StateShape> = vec![[ih, iw, br], h1_shape];
        let combinations = spec.num_combinations();
        let mut ops = Vec::with_capacity(2 * combinations);
        for i in 0..combinations {
            let mut shapes = [[0; 3]; 2];
            for (side, shape_of_side) in shapes.iter_mut().enumerate() {
                let j = 2 * i + side;
                let (input_index, op) = spec
                    .hiddenstate_indices
                    .get(j)
                    .zip(spec.operations.get(j))
                    .ok_or_else(|| {
                        loader.unsupported(format!("{scope}: operation {j} is missing"))
                    })?;
                let input = *states.get(*input_index).ok_or_else(|| {
                    loader.unsupported(format!("{scope}: operation {j} reads state h{input_index}, which does not exist yet"))
                })?;
                let stride = if *input_index < 2 { layout.stride } else { 1 };
                let op_scope = conventions().branch(scope, j);
                let (op, shape) = load_op(loader, &op_scope, *op, input, stride, br)?;
                ops.push(op);
                *shape_of_side = shape;
            }
            if shapes[0] != shapes[1] {
                return Err(loader.unsupported(format!(
                    "{scope}/{}: left gives {:?} but right gives {:?}; they cannot be added",
                    conventions().combination(i),
                    shapes[0],
                    shapes[1]
                )));
            }
            states.push(shapes[0]);
        }
        let concat = concat_states(loader, scope, spec, &states, layout)?;
        Ok(CellLayer {
            layout: layout.clone(),
            spec: spec.clone(),
            begin,
            prev,
            ops,
            shapes: states,
            concat,
        })
    }

    /// The number of parts of this cell's output.
    pub fn output_parts(&self) -> usize {
        self.concat.len()
    }

    /// Runs the cell on its `net` input and its `prev_layer` input (absent for the first
    /// stem cell). `scratch` is reused for im2col.
    pub fn forward(
        &self,
        net: &CellOutput,
        prev: Option<&CellOutput>,
        scratch: &mut Vec<f32>,
    ) -> CellOutput {
        let h0 = self.begin.apply_parts(&net.views(), true);
        let h1 = self.prev_state(net, prev);
        let n = net.shape()[0];
        let mut states: Vec<Tensor> = vec![h0, h1];
        for i in 0..self.ops.len() / 2 {
            let [h, w, c] = self.shapes[2 + i];
            let mut sum = Tensor::for_overwrite([n, h, w, c]);
            // The branch ending in a GEMM goes second and adds onto the first.
            let (first, second) =
                if self.ops[2 * i].ends_in_gemm() && !self.ops[2 * i + 1].ends_in_gemm() {
                    (2 * i + 1, 2 * i)
                } else {
                    (2 * i, 2 * i + 1)
                };
            for (j, write) in [(first, Write::Overwrite), (second, Write::Accumulate)] {
                let input = states[self.spec.hiddenstate_indices[j]].view();
                self.ops[j].run(input, write, scratch, sum.view_mut());
            }
            states.push(sum);
        }
        self.concat_output(states, scratch)
    }

    fn prev_state(&self, net: &CellOutput, prev: Option<&CellOutput>) -> Tensor {
        let prev = prev.unwrap_or(net);
        match &self.prev {
            PrevLayer::UseInput => net.concatenated(),
            PrevLayer::Unchanged => prev.concatenated(),
            PrevLayer::Prev1x1(conv) => conv.apply_parts(&prev.views(), true),
            PrevLayer::FactorizedReduction(path1, path2) => {
                let [n, h, w, _] = prev.shape();
                let shape = [n, h.div_ceil(2), w.div_ceil(2), path1.cout + path2.cout];
                let mut out = Tensor::for_overwrite(shape);
                factorized_reduction(&prev.views(), path1, path2, true, out.view_mut());
                out
            }
        }
    }

    /// The concatenated states, each adjusted to the last state's shape where needed; the
    /// states themselves are moved into the output, not copied.
    fn concat_output(&self, states: Vec<Tensor>, scratch: &mut Vec<f32>) -> CellOutput {
        let [n, h, w, br] = states[states.len() - 1].shape;
        let mut states: Vec<Option<Tensor>> = states.into_iter().map(Some).collect();
        let mut parts = Vec::with_capacity(self.concat.len());
        for (j, adjust) in &self.concat {
            let part = match (adjust, states[*j].as_ref()) {
                (Some(adjust), Some(state)) => {
                    let mut out = Tensor::for_overwrite([n, h, w, br]);
                    match adjust {
                        ConcatAdjust::Project(conv) => conv.run(
                            state.view(),
                            [1, 1],
                            false,
                            Write::Overwrite,
                            scratch,
                            out.view_mut(),
                        ),
                        ConcatAdjust::Reduce(p1, p2) => {
                            factorized_reduction(&[state.view()], p1, p2, false, out.view_mut())
                        }
                    }
                    out
                }
                // Each state is concatenated once (`used_hiddenstates`), so it is still here.
                _ => states[*j]
                    .take()
                    .unwrap_or_else(|| Tensor::zeros([n, h, w, br])),
            };
            parts.push(part);
        }
        CellOutput { parts }
    }
}

fn load_prev(
    loader: &Loader,
    layout: &CellLayout,
    prev_shape: Option<StateShape>,
    parts: usize,
) -> Result<(PrevLayer, StateShape), ForwardError> {
    let scope = &layout.scope;
    let br = layout.filters;
    let [ih, iw] = layout.input_hw;
    let net_shape = [ih, iw, layout.input_channels];
    let prev_shape = prev_shape.unwrap_or(net_shape);
    let [_, _, pc] = prev_shape;
    match layout.prev_adjust {
        PrevAdjust::UseInput => Ok((PrevLayer::UseInput, net_shape)),
        PrevAdjust::Unchanged => Ok((PrevLayer::Unchanged, prev_shape)),
        PrevAdjust::Prev1x1 => {
            let c = conventions();
            let conv = loader.conv_bn_parts(
                &c.weights(&join(scope, &c.cell.prev_conv)),
                &join(scope, &c.cell.prev_bn),
                pc,
                Some(br),
                parts,
            )?;
            Ok((PrevLayer::Prev1x1(conv), [prev_shape[0], prev_shape[1], br]))
        }
        PrevAdjust::FactorizedReduction => {
            let (p1, p2) = load_factorized_reduction(loader, scope, pc, br)?;
            let split = |p: ConvBn| p.split_input(parts).map_err(|e| loader.unsupported(e));
            let (p1, p2) = (split(p1)?, split(p2)?);
            let shape = [prev_shape[0].div_ceil(2), prev_shape[1].div_ceil(2), br];
            Ok((PrevLayer::FactorizedReduction(p1, p2), shape))
        }
    }
}

/// The two half-width paths of a factorized reduction to `out` channels under `scope`
/// (`path1_conv`, `path2_conv`, sharing `final_path_bn`). Like TF, each path has `out / 2`
/// channels.
fn load_factorized_reduction(
    loader: &Loader,
    scope: &str,
    cin: usize,
    out: usize,
) -> Result<(ConvBn, ConvBn), ForwardError> {
    if !out.is_multiple_of(2) {
        return Err(loader.unsupported(format!(
            "{scope}: a factorized reduction to {out} channels (odd) cannot split evenly into its two paths"
        )));
    }
    let half = out / 2;
    let c = conventions();
    let bn = join(scope, &c.cell.factorized_bn);
    let path = |n: usize, range| {
        let weights = c.weights(&join(scope, &c.cell.factorized_paths[n]));
        loader.conv_bn_part(&weights, &bn, 1, 1, cin, half, 2 * half, range)
    };
    Ok((path(0, 0..half)?, path(1, half..2 * half)?))
}

/// The states to concatenate, with the adjustment each needs to match the last state.
fn concat_states(
    loader: &Loader,
    scope: &str,
    spec: &CellSpec,
    states: &[StateShape],
    layout: &CellLayout,
) -> Result<Vec<(usize, Option<ConcatAdjust>)>, ForwardError> {
    let last = states[states.len() - 1];
    let mut concat = Vec::new();
    for j in (0..states.len()).filter(|&j| spec.used_hiddenstates.get(j) == Some(&0)) {
        let [h, w, c] = states[j];
        let names = conventions();
        let adjust_scope = names.output_reduction(scope, j);
        let adjust = if [h, w] != [last[0], last[1]] {
            if [h.div_ceil(2), w.div_ceil(2)] != [last[0], last[1]] {
                return Err(loader.unsupported(format!(
                    "{scope}: state h{j} {:?} cannot be reduced to {:?} for the concat",
                    states[j], last
                )));
            }
            let (p1, p2) = load_factorized_reduction(loader, &adjust_scope, c, last[2])?;
            Some(ConcatAdjust::Reduce(p1, p2))
        } else if c != last[2] {
            let conv = loader.conv_bn(
                &names.weights(&join(&adjust_scope, &names.cell.output_reduction_conv)),
                &join(&adjust_scope, &names.cell.output_reduction_bn),
                1,
                1,
                c,
                Some(last[2]),
            )?;
            Some(ConcatAdjust::Project(conv))
        } else {
            None
        };
        concat.push((j, adjust));
    }
    let channels = last[2] * concat.len();
    if [last[0], last[1]] != layout.output_hw || channels != layout.output_channels {
        return Err(loader.unsupported(format!(
            "{scope}: the cell computes {}x{}x{channels} but the network description says {:?}x{}",
            last[0], last[1], layout.output_hw, layout.output_channels
        )));
    }
    Ok(concat)
}

/// The two half-width stride-2 paths into `out` (batch norm folded into each path):
/// path1 reads x[::2, ::2], path2 x[1::2, 1::2] with a zero row/column past odd sizes.
/// `x` comes in parts, one per weight part of each path. `relu` applies a ReLU to `x`
/// first (it commutes with the subsampling).
fn factorized_reduction(x: &[Nhwc], path1: &ConvBn, path2: &ConvBn, relu: bool, mut out: NhwcMut) {
    let halves = [
        (path1, 0..path1.cout),
        (path2, path1.cout..path1.cout + path2.cout),
    ];
    for (offset, (path, range)) in halves.into_iter().enumerate() {
        let subs: Vec<Tensor> = x
            .iter()
            .map(|part| {
                let [n, h, w, c] = part.shape();
                let mut sub = Tensor::for_overwrite([n, h.div_ceil(2), w.div_ceil(2), c]);
                kernels::subsample2(*part, offset, sub.view_mut());
                sub
            })
            .collect();
        let views: Vec<Nhwc> = subs.iter().map(Tensor::view).collect();
        let slice = out.reborrow().channels_mut(range);
        path.run_parts(&views, relu, Write::Overwrite, slice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Empty;

    #[test]
    fn a_factorized_reduction_to_an_odd_width_is_refused() {
        let loader = Loader {
            src: &Empty,
            eps: 1e-3,
            precision: Default::default(),
        };
        let Err(e) = load_factorized_reduction(&loader, "cell_stem_1", 32, 45) else {
            panic!("loaded a factorized reduction to 45 channels");
        };
        assert!(e.to_string().contains("(odd)"), "{e}");
    }
}
