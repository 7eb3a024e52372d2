//! One cell: its hidden states, the ten operations and the output concat.

use crate::layers::{relu, ConvBn, Loader};
use crate::{ForwardError, Tensor};
use kernels::{Nhwc, NhwcMut};
use nasnet_genotype::{CellLayout, CellSpec, Operation, PrevAdjust};

/// A loaded operation of a combination (`comb_iter_i/left` or `right`).
pub(crate) enum OpLayer {
    /// `none` with matching shape: the input itself.
    Identity,
    /// `separable_KxK_N`: N times ReLU -> depthwise (stride on the first) -> pointwise+BN.
    Separable {
        k: usize,
        stride: usize,
        layers: Vec<(Vec<f32>, ConvBn)>,
    },
    /// Pooling, then a plain 1x1+BN when the input's width differs from the cell's.
    Pool {
        avg: bool,
        k: usize,
        stride: usize,
        proj: Option<ConvBn>,
    },
    /// `1x1`, or `none` that must change stride or width: ReLU -> 1x1 (strided) -> BN.
    Conv1x1 { stride: usize, conv: ConvBn },
    /// `KxK`: ReLU -> pre_1x1 -> ReLU -> KxK (strided) -> ReLU -> post_1x1 (each with its BN).
    Bottleneck {
        stride: usize,
        pre: Option<ConvBn>,
        conv: ConvBn,
        post: Option<ConvBn>,
    },
    /// `1xK_Kx1`: ReLU -> pre_1x1 -> ReLU -> 1xK [1,s] -> ReLU -> Kx1 [s,1] -> ReLU -> post_1x1.
    Factorized {
        stride: usize,
        pre: Option<ConvBn>,
        row: ConvBn,
        col: ConvBn,
        post: Option<ConvBn>,
    },
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

/// Spatial size and channels of a state.
type StateShape = [usize; 3];

impl CellLayer {
    /// Loads a cell's weights. `prev_shape` is the shape of the `prev_layer` input, if any.
    pub fn load(
        loader: &Loader,
        layout: &CellLayout,
        spec: &CellSpec,
        prev_shape: Option<StateShape>,
    ) -> Result<CellLayer, ForwardError> {
        let scope = &layout.scope;
        let br = layout.filters;
        let [ih, iw] = layout.input_hw;
        let begin = loader.conv_bn(
            &format!("{scope}/1x1/weights"),
            &format!("{scope}/beginning_bn"),
            1,
            1,
            layout.input_channels,
            Some(br),
        )?;
        let (prev, h1_shape) = load_prev(loader, layout, prev_shape)?;
        let mut states: Vec<StateShape> = vec![[ih, iw, br], h1_shape];
        let mut ops = Vec::with_capacity(10);
        for i in 0..5 {
            let mut shapes = [[0; 3]; 2];
            for (side, name) in ["left", "right"].iter().enumerate() {
                let j = 2 * i + side;
                let input_index = spec.hiddenstate_indices[j];
                let input = *states.get(input_index).ok_or_else(|| {
                    ForwardError::Unsupported(format!("{scope}: operation {j} reads state h{input_index}, which does not exist yet"))
                })?;
                let stride = if input_index < 2 { layout.stride } else { 1 };
                let op_scope = format!("{scope}/comb_iter_{i}/{name}");
                let (op, shape) =
                    load_op(loader, &op_scope, spec.operations[j], input, stride, br)?;
                ops.push(op);
                shapes[side] = shape;
            }
            if shapes[0] != shapes[1] {
                return Err(ForwardError::Unsupported(format!(
                    "{scope}/comb_iter_{i}: left gives {:?} but right gives {:?}; they cannot be added",
                    shapes[0], shapes[1]
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
            concat,
        })
    }

    /// Runs the cell on its `net` input and its `prev_layer` input (absent for the first stem cell).
    pub fn forward(&self, net: &Tensor, prev: Option<&Tensor>) -> Tensor {
        let relu_net = relu(net.view());
        let h0 = self.begin.apply(relu_net.view(), [1, 1]);
        drop(relu_net);
        let h1 = self.prev_state(net, prev);
        let mut states: Vec<Tensor> = vec![h0, h1];
        for i in 0..5 {
            let left = self.run_op(2 * i, &states);
            let right = self.run_op(2 * i + 1, &states);
            let mut sum = left;
            kernels::add_assign(sum.view_mut(), right.view());
            states.push(sum);
        }
        self.concat_output(&states)
    }

    fn prev_state(&self, net: &Tensor, prev: Option<&Tensor>) -> Tensor {
        let prev = prev.unwrap_or(net);
        match &self.prev {
            PrevLayer::UseInput => net.clone(),
            PrevLayer::Unchanged => prev.clone(),
            PrevLayer::Prev1x1(conv) => conv.apply(relu(prev.view()).view(), [1, 1]),
            PrevLayer::FactorizedReduction(path1, path2) => {
                let x = relu(prev.view());
                let [n, h, w, _] = x.shape;
                let mut out =
                    Tensor::zeros([n, h.div_ceil(2), w.div_ceil(2), path1.cout + path2.cout]);
                factorized_reduction(x.view(), path1, path2, out.view_mut());
                out
            }
        }
    }

    fn run_op(&self, j: usize, states: &[Tensor]) -> Tensor {
        let input = &states[self.spec.hiddenstate_indices[j]];
        run_op(&self.ops[j], input.view())
    }

    fn concat_output(&self, states: &[Tensor]) -> Tensor {
        let last = &states[states.len() - 1];
        let [n, h, w, br] = last.shape;
        let mut out = Tensor::zeros([n, h, w, br * self.concat.len()]);
        for (pos, (j, adjust)) in self.concat.iter().enumerate() {
            let slice = out.view_mut().channels_mut(pos * br..(pos + 1) * br);
            let state = states[*j].view();
            match adjust {
                None => kernels::copy(state, slice),
                Some(ConcatAdjust::Project(conv)) => conv.run(state, [1, 1], slice),
                Some(ConcatAdjust::Reduce(p1, p2)) => factorized_reduction(state, p1, p2, slice),
            }
        }
        out
    }
}

fn load_prev(
    loader: &Loader,
    layout: &CellLayout,
    prev_shape: Option<StateShape>,
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
            let conv = loader.conv_bn(
                &format!("{scope}/prev_1x1/weights"),
                &format!("{scope}/prev_bn"),
                1,
                1,
                pc,
                Some(br),
            )?;
            Ok((PrevLayer::Prev1x1(conv), [prev_shape[0], prev_shape[1], br]))
        }
        PrevAdjust::FactorizedReduction => {
            let (p1, p2) = load_factorized_reduction(loader, scope, pc, br)?;
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
    let half = out / 2;
    let bn = format!("{scope}/final_path_bn");
    let path = |n: usize, range| {
        let weights = format!("{scope}/path{n}_conv/weights");
        loader.conv_bn_part(&weights, &bn, 1, 1, cin, half, 2 * half, range)
    };
    Ok((path(1, 0..half)?, path(2, half..2 * half)?))
}

/// Loads one operation reading a state of `input` shape; returns it and its output shape.
fn load_op(
    loader: &Loader,
    scope: &str,
    op: Operation,
    input: StateShape,
    stride: usize,
    br: usize,
) -> Result<(OpLayer, StateShape), ForwardError> {
    let [h, w, c] = input;
    let out_shape = [h.div_ceil(stride), w.div_ceil(stride), br];
    let layer = match op {
        Operation::Identity if stride == 1 && c == br => return Ok((OpLayer::Identity, input)),
        Operation::Identity | Operation::Conv1x1 => OpLayer::Conv1x1 {
            stride,
            conv: loader.conv_bn(
                &format!("{scope}/1x1/weights"),
                &format!("{scope}/bn_1"),
                1,
                1,
                c,
                Some(br),
            )?,
        },
        Operation::AvgPool { kernel } | Operation::MaxPool { kernel } => {
            let proj = if c != br {
                Some(loader.conv_bn(
                    &format!("{scope}/1x1/weights"),
                    &format!("{scope}/bn_1"),
                    1,
                    1,
                    c,
                    Some(br),
                )?)
            } else {
                None
            };
            let avg = matches!(op, Operation::AvgPool { .. });
            OpLayer::Pool {
                avg,
                k: kernel,
                stride,
                proj,
            }
        }
        Operation::Separable { kernel, repeats } => {
            load_separable(loader, scope, kernel, repeats, c, br, stride)?
        }
        Operation::Factorized { kernel } => load_factorized(loader, scope, kernel, c, br, stride)?,
        Operation::Conv {
            kernel,
            dilation: 1,
        } => load_bottleneck_conv(loader, scope, kernel, c, br, stride)?,
        Operation::Conv { kernel, dilation } => {
            return Err(ForwardError::Unsupported(format!(
            "{scope}: dilated {kernel}x{kernel} convolution (rate {dilation}) is not implemented"
        )))
        }
    };
    Ok((layer, out_shape))
}

fn load_separable(
    loader: &Loader,
    scope: &str,
    k: usize,
    repeats: usize,
    c: usize,
    br: usize,
    stride: usize,
) -> Result<OpLayer, ForwardError> {
    let mut layers = Vec::with_capacity(repeats);
    let mut cin = c;
    for n in 1..=repeats {
        let sep = format!("{scope}/separable_{k}x{k}_{n}");
        let dw = loader.depthwise(&format!("{sep}/depthwise_weights"), k, cin)?;
        let pw = loader.conv_bn(
            &format!("{sep}/pointwise_weights"),
            &format!("{scope}/bn_sep_{k}x{k}_{n}"),
            1,
            1,
            cin,
            Some(br),
        )?;
        layers.push((dw, pw));
        cin = br;
    }
    Ok(OpLayer::Separable { k, stride, layers })
}

fn load_factorized(
    loader: &Loader,
    scope: &str,
    k: usize,
    c: usize,
    br: usize,
    stride: usize,
) -> Result<OpLayer, ForwardError> {
    // The bottleneck exists only when the reduced width is at least 1.
    let pre = if loader.has(&format!("{scope}/pre_1x1/weights")) {
        Some(loader.conv_bn(
            &format!("{scope}/pre_1x1/weights"),
            &format!("{scope}/pre_bn"),
            1,
            1,
            c,
            None,
        )?)
    } else {
        None
    };
    let mid = pre.as_ref().map_or(c, |p| p.cout);
    let row = loader.conv_bn(
        &format!("{scope}/1x{k}/weights"),
        &format!("{scope}/bn_1x{k}_{k}x1"),
        1,
        k,
        mid,
        Some(mid),
    )?;
    let col = loader.conv_bn(
        &format!("{scope}/{k}x1/weights"),
        &format!("{scope}/bn"),
        k,
        1,
        mid,
        Some(mid),
    )?;
    let post = if pre.is_some() {
        Some(loader.conv_bn(
            &format!("{scope}/post_1x1/weights"),
            &format!("{scope}/post_bn"),
            1,
            1,
            mid,
            Some(br),
        )?)
    } else {
        None
    };
    Ok(OpLayer::Factorized {
        stride,
        pre,
        row,
        col,
        post,
    })
}

/// `KxK`: ReLU -> pre_1x1 -> BN -> ReLU -> KxK (strided) -> `bn` -> ReLU -> post_1x1 -> BN.
fn load_bottleneck_conv(
    loader: &Loader,
    scope: &str,
    k: usize,
    c: usize,
    br: usize,
    stride: usize,
) -> Result<OpLayer, ForwardError> {
    let pre = if loader.has(&format!("{scope}/pre_1x1/weights")) {
        Some(loader.conv_bn(
            &format!("{scope}/pre_1x1/weights"),
            &format!("{scope}/pre_bn"),
            1,
            1,
            c,
            None,
        )?)
    } else {
        None
    };
    let mid = pre.as_ref().map_or(c, |p| p.cout);
    let out = if pre.is_some() { mid } else { br };
    let conv = loader.conv_bn(
        &format!("{scope}/{k}x{k}/weights"),
        &format!("{scope}/bn"),
        k,
        k,
        mid,
        Some(out),
    )?;
    let post = if pre.is_some() {
        Some(loader.conv_bn(
            &format!("{scope}/post_1x1/weights"),
            &format!("{scope}/post_bn"),
            1,
            1,
            mid,
            Some(br),
        )?)
    } else {
        None
    };
    Ok(OpLayer::Bottleneck {
        stride,
        pre,
        conv,
        post,
    })
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
        let adjust_scope = format!("{scope}/cell_output/reduction_{j}");
        let adjust = if [h, w] != [last[0], last[1]] {
            if [h.div_ceil(2), w.div_ceil(2)] != [last[0], last[1]] {
                return Err(ForwardError::Unsupported(format!(
                    "{scope}: state h{j} {:?} cannot be reduced to {:?} for the concat",
                    states[j], last
                )));
            }
            let (p1, p2) = load_factorized_reduction(loader, &adjust_scope, c, last[2])?;
            Some(ConcatAdjust::Reduce(p1, p2))
        } else if c != last[2] {
            let conv = loader.conv_bn(
                &format!("{adjust_scope}/path_conv/weights"),
                &format!("{adjust_scope}/path_bn"),
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
        return Err(ForwardError::Unsupported(format!(
            "{scope}: the cell computes {}x{}x{channels} but the network description says {:?}x{}",
            last[0], last[1], layout.output_hw, layout.output_channels
        )));
    }
    Ok(concat)
}

/// Runs an operation on a state.
fn run_op(op: &OpLayer, input: Nhwc) -> Tensor {
    match op {
        OpLayer::Identity => {
            let mut out = Tensor::zeros(input.shape());
            kernels::copy(input, out.view_mut());
            out
        }
        OpLayer::Separable { k, stride, layers } => run_separable(input, *k, *stride, layers),
        OpLayer::Pool {
            avg,
            k,
            stride,
            proj,
        } => {
            let [n, h, w, c] = input.shape();
            let mut pooled = Tensor::zeros([n, h.div_ceil(*stride), w.div_ceil(*stride), c]);
            if *avg {
                kernels::avg_pool(input, *k, *stride, pooled.view_mut());
            } else {
                kernels::max_pool(input, *k, *stride, pooled.view_mut());
            }
            match proj {
                Some(conv) => conv.apply(pooled.view(), [1, 1]),
                None => pooled,
            }
        }
        OpLayer::Conv1x1 { stride, conv } => conv.apply(relu(input).view(), [*stride, *stride]),
        OpLayer::Bottleneck {
            stride,
            pre,
            conv,
            post,
        } => {
            let mut x = relu(input);
            if let Some(pre) = pre {
                x = relu(pre.apply(x.view(), [1, 1]).view());
            }
            x = conv.apply(x.view(), [*stride, *stride]);
            match post {
                Some(post) => post.apply(relu(x.view()).view(), [1, 1]),
                None => x,
            }
        }
        OpLayer::Factorized {
            stride,
            pre,
            row,
            col,
            post,
        } => {
            let mut x = relu(input);
            if let Some(pre) = pre {
                x = relu(pre.apply(x.view(), [1, 1]).view());
            }
            x = relu(row.apply(x.view(), [1, *stride]).view());
            x = col.apply(x.view(), [*stride, 1]);
            match post {
                Some(post) => post.apply(relu(x.view()).view(), [1, 1]),
                None => x,
            }
        }
    }
}

fn run_separable(input: Nhwc, k: usize, stride: usize, layers: &[(Vec<f32>, ConvBn)]) -> Tensor {
    let mut current: Option<Tensor> = None;
    for (n, (dw, pw)) in layers.iter().enumerate() {
        let x = current.as_ref().map_or(input, |t| t.view());
        let s = if n == 0 { stride } else { 1 };
        let [b, h, w, c] = x.shape();
        let mut depth = Tensor::zeros([b, h.div_ceil(s), w.div_ceil(s), c]);
        kernels::depthwise(x, dw, k, s, true, depth.view_mut());
        current = Some(pw.apply(depth.view(), [1, 1]));
    }
    current.unwrap_or_else(|| {
        let mut out = Tensor::zeros(input.shape());
        kernels::copy(input, out.view_mut());
        out
    })
}

/// The two half-width stride-2 paths into `out` (batch norm folded into each path):
/// path1 reads x[::2, ::2], path2 x[1::2, 1::2] with a zero row/column past odd sizes.
fn factorized_reduction(x: Nhwc, path1: &ConvBn, path2: &ConvBn, mut out: NhwcMut) {
    let [n, h, w, c] = x.shape();
    let mut sub = Tensor::zeros([n, h.div_ceil(2), w.div_ceil(2), c]);
    let halves = [
        (path1, 0..path1.cout),
        (path2, path1.cout..path1.cout + path2.cout),
    ];
    for (offset, (path, range)) in halves.into_iter().enumerate() {
        kernels::subsample2(x, offset, sub.view_mut());
        path.run(sub.view(), [1, 1], out.reborrow().channels_mut(range));
    }
}
