//! One cell: its hidden states, the ten operations and the output concat.

use crate::layers::{ConvBn, Loader, Write};
use crate::ops::{load_op, OpLayer, StateShape};
use crate::{ForwardError, Tensor};
use kernels::{Nhwc, NhwcMut};
use nasnet_genotype::{CellLayout, CellSpec, PrevAdjust};

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
    /// Shapes (h, w, c) of the states h0..h6.
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
            shapes: states,
            concat,
        })
    }

    /// Runs the cell on its `net` input and its `prev_layer` input (absent for the first
    /// stem cell). `scratch` is reused for gathered GEMM inputs.
    pub fn forward(&self, net: &Tensor, prev: Option<&Tensor>, scratch: &mut Vec<f32>) -> Tensor {
        let h0 = self.begin.apply(net.view(), [1, 1], true, scratch);
        let h1 = self.prev_state(net, prev, scratch);
        let n = net.shape[0];
        let mut states: Vec<Tensor> = vec![h0, h1];
        for i in 0..5 {
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
        self.concat_output(&states, scratch)
    }

    fn prev_state(&self, net: &Tensor, prev: Option<&Tensor>, scratch: &mut Vec<f32>) -> Tensor {
        let prev = prev.unwrap_or(net);
        match &self.prev {
            PrevLayer::UseInput => net.clone(),
            PrevLayer::Unchanged => prev.clone(),
            PrevLayer::Prev1x1(conv) => conv.apply(prev.view(), [1, 1], true, scratch),
            PrevLayer::FactorizedReduction(path1, path2) => {
                let [n, h, w, _] = prev.shape;
                let mut out = Tensor::for_overwrite([
                    n,
                    h.div_ceil(2),
                    w.div_ceil(2),
                    path1.cout + path2.cout,
                ]);
                factorized_reduction(prev.view(), path1, path2, true, scratch, out.view_mut());
                out
            }
        }
    }

    fn concat_output(&self, states: &[Tensor], scratch: &mut Vec<f32>) -> Tensor {
        let last = &states[states.len() - 1];
        let [n, h, w, br] = last.shape;
        let mut out = Tensor::for_overwrite([n, h, w, br * self.concat.len()]);
        for (pos, (j, adjust)) in self.concat.iter().enumerate() {
            let slice = out.view_mut().channels_mut(pos * br..(pos + 1) * br);
            let state = states[*j].view();
            match adjust {
                None => kernels::copy(state, slice),
                Some(ConcatAdjust::Project(conv)) => {
                    conv.run(state, [1, 1], false, Write::Overwrite, scratch, slice)
                }
                Some(ConcatAdjust::Reduce(p1, p2)) => {
                    factorized_reduction(state, p1, p2, false, scratch, slice)
                }
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

/// The two half-width stride-2 paths into `out` (batch norm folded into each path):
/// path1 reads x[::2, ::2], path2 x[1::2, 1::2] with a zero row/column past odd sizes.
/// `relu` applies a ReLU to `x` first (it commutes with the subsampling).
fn factorized_reduction(
    x: Nhwc,
    path1: &ConvBn,
    path2: &ConvBn,
    relu: bool,
    scratch: &mut Vec<f32>,
    mut out: NhwcMut,
) {
    let [n, h, w, c] = x.shape();
    let mut sub = Tensor::for_overwrite([n, h.div_ceil(2), w.div_ceil(2), c]);
    let halves = [
        (path1, 0..path1.cout),
        (path2, path1.cout..path1.cout + path2.cout),
    ];
    for (offset, (path, range)) in halves.into_iter().enumerate() {
        kernels::subsample2(x, offset, sub.view_mut());
        let slice = out.reborrow().channels_mut(range);
        path.run(sub.view(), [1, 1], relu, Write::Overwrite, scratch, slice);
    }
}
