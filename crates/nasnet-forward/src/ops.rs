//! The operations of a combination (`comb_iter_i/left` and `right`): loading them with
//! their weights, and running them with the fewest passes over memory.
//!
//! A combination is `left + right`. The branch that ends in a GEMM is run second and
//! *accumulates* onto the first branch's output ([`Write::Accumulate`]), so the sum needs no
//! temporary and no separate add pass. ReLUs are applied as the next layer reads its input.

use crate::layers::{ConvBn, Loader, Write};
use crate::{ForwardError, Tensor};
use kernels::{Nhwc, NhwcMut};
use nasnet_genotype::conventions::{conventions, join};
use nasnet_genotype::Operation;

/// Spatial size and channels of a state.
pub(crate) type StateShape = [usize; 3];

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

/// Loads one operation reading a state of `input` shape; returns it and its output shape.
pub(crate) fn load_op(
    loader: &Loader,
    scope: &str,
    op: Operation,
    input: StateShape,
    stride: usize,
    br: usize,
) -> Result<(OpLayer, StateShape), ForwardError> {
    let [h, w, c] = input;
    let out_shape = [h.div_ceil(stride), w.div_ceil(stride), br];
    let names = &conventions().operations;
    let projection = conventions().weights(&join(scope, &names.projection_conv));
    let projection_bn = join(scope, &names.projection_bn);
    let layer = match op {
        Operation::Identity if stride == 1 && c == br => return Ok((OpLayer::Identity, input)),
        Operation::Identity | Operation::Conv1x1 => OpLayer::Conv1x1 {
            stride,
            conv: loader.conv_bn(&projection, &projection_bn, 1, 1, c, Some(br))?,
        },
        Operation::AvgPool { kernel } | Operation::MaxPool { kernel } => {
            let proj = if c != br {
                Some(loader.conv_bn(&projection, &projection_bn, 1, 1, c, Some(br))?)
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
            return Err(loader.unsupported(format!(
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
    let names = conventions();
    if repeats == 0 {
        return Err(loader.unsupported(format!(
            "{scope}: {} has no layers to run",
            names.separable(k, 0).0
        )));
    }
    let mut layers = Vec::with_capacity(repeats);
    let mut cin = c;
    for n in 1..=repeats {
        let (sep, bn) = names.separable(k, n);
        let sep = join(scope, &sep);
        let ops = &names.operations;
        let dw = loader.depthwise(&join(&sep, &ops.depthwise_weights), k, cin)?;
        let pw = loader.conv_bn(
            &join(&sep, &ops.pointwise_weights),
            &join(scope, &bn),
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

/// The `pre_1x1`/`pre_bn` of a bottleneck op; absent when the reduced width would be < 1.
/// Its width comes from the weights, not the description, so it is checked here: at most
/// the cell's width `br` (the official bottleneck is br/4 or 3br/8), which keeps the
/// activations within what the description's validation bounded.
fn bottleneck_pre(
    loader: &Loader,
    scope: &str,
    c: usize,
    br: usize,
) -> Result<Option<ConvBn>, ForwardError> {
    let names = &conventions().operations;
    let weights = conventions().weights(&join(scope, &names.bottleneck_in));
    let Some(shape) = loader.src.shape(&weights) else {
        return Ok(None);
    };
    let width = shape.get(3).copied().unwrap_or(0);
    if shape.len() != 4 || width == 0 || width > br {
        return Err(ForwardError::Weights {
            source_name: loader.src.source_name(),
            problem: format!(
                "variable {weights} has shape {shape:?}; a bottleneck's {} is [1, 1, {c}, W] with 1 <= W <= {br} (the cell's width)",
                names.bottleneck_in
            ),
        });
    }
    Ok(Some(loader.conv_bn(
        &weights,
        &join(scope, &names.bottleneck_in_bn),
        1,
        1,
        c,
        Some(width),
    )?))
}

/// The `post_1x1`/`post_bn` back to the cell's width, present exactly when `pre` is.
fn bottleneck_post(
    loader: &Loader,
    scope: &str,
    pre: Option<&ConvBn>,
    br: usize,
) -> Result<Option<ConvBn>, ForwardError> {
    let Some(pre) = pre else { return Ok(None) };
    let names = &conventions().operations;
    let weights = conventions().weights(&join(scope, &names.bottleneck_out));
    Ok(Some(loader.conv_bn(
        &weights,
        &join(scope, &names.bottleneck_out_bn),
        1,
        1,
        pre.cout,
        Some(br),
    )?))
}

/// `1xK_Kx1`: [pre_1x1] -> 1xK (stride [1, s]) -> `bn_1xK_Kx1` -> Kx1 (stride [s, 1]) -> `bn` -> [post_1x1].
fn load_factorized(
    loader: &Loader,
    scope: &str,
    k: usize,
    c: usize,
    br: usize,
    stride: usize,
) -> Result<OpLayer, ForwardError> {
    let pre = bottleneck_pre(loader, scope, c, br)?;
    let mid = pre.as_ref().map_or(c, |p| p.cout);
    // Without a bottleneck the row conv itself goes to the cell's width: the op's output is
    // `br` wide even where its input is not (h1 of the first stem cell is the stem's output).
    let out = if pre.is_some() { mid } else { br };
    let names = conventions();
    let (row_scope, row_bn, column_scope) = names.factorized(k);
    let conv_bn = join(scope, &names.operations.conv_bn);
    let row = loader.conv_bn(
        &names.weights(&join(scope, &row_scope)),
        &join(scope, &row_bn),
        1,
        k,
        mid,
        Some(out),
    )?;
    let col = loader.conv_bn(
        &names.weights(&join(scope, &column_scope)),
        &conv_bn,
        k,
        1,
        out,
        Some(out),
    )?;
    let post = bottleneck_post(loader, scope, pre.as_ref(), br)?;
    Ok(OpLayer::Factorized {
        stride,
        pre,
        row,
        col,
        post,
    })
}

/// `KxK`: [pre_1x1] -> KxK (strided) -> `bn` -> [post_1x1], each after a ReLU.
fn load_bottleneck_conv(
    loader: &Loader,
    scope: &str,
    k: usize,
    c: usize,
    br: usize,
    stride: usize,
) -> Result<OpLayer, ForwardError> {
    let pre = bottleneck_pre(loader, scope, c, br)?;
    let mid = pre.as_ref().map_or(c, |p| p.cout);
    let out = if pre.is_some() { mid } else { br };
    let names = conventions();
    let conv = loader.conv_bn(
        &names.weights(&join(scope, &names.conv(k, false))),
        &join(scope, &names.operations.conv_bn),
        k,
        k,
        mid,
        Some(out),
    )?;
    let post = bottleneck_post(loader, scope, pre.as_ref(), br)?;
    Ok(OpLayer::Bottleneck {
        stride,
        pre,
        conv,
        post,
    })
}

impl OpLayer {
    /// Whether the operation's last step is a pointwise GEMM that can add onto its output.
    pub fn ends_in_gemm(&self) -> bool {
        match self {
            OpLayer::Identity => false,
            OpLayer::Separable { .. } | OpLayer::Conv1x1 { .. } => true,
            OpLayer::Pool { proj, .. } => proj.is_some(),
            OpLayer::Factorized { post, .. } | OpLayer::Bottleneck { post, .. } => post.is_some(),
        }
    }

    /// Runs the operation on `x`, writing or adding its result into `out`.
    pub fn run(&self, x: Nhwc, write: Write, scratch: &mut Vec<f32>, out: NhwcMut) {
        match self {
            OpLayer::Identity => match write {
                Write::Overwrite => kernels::copy(x, out),
                Write::Accumulate => kernels::add_assign(out, x),
            },
            OpLayer::Separable { k, stride, layers } => {
                run_separable(x, *k, *stride, layers, write, scratch, out)
            }
            OpLayer::Pool {
                avg,
                k,
                stride,
                proj,
            } => run_pool(x, *avg, *k, *stride, proj.as_ref(), write, scratch, out),
            OpLayer::Conv1x1 { stride, conv } => {
                conv.run(x, [*stride, *stride], true, write, scratch, out)
            }
            OpLayer::Factorized {
                stride,
                pre,
                row,
                col,
                post,
            } => {
                let t = bottleneck_in(x, pre.as_ref(), scratch);
                let x = t.as_ref().map_or(x, Tensor::view);
                let t = row.apply(x, [1, *stride], true, scratch);
                finish(
                    col,
                    [*stride, 1],
                    t.view(),
                    post.as_ref(),
                    write,
                    scratch,
                    out,
                );
            }
            OpLayer::Bottleneck {
                stride,
                pre,
                conv,
                post,
            } => {
                let t = bottleneck_in(x, pre.as_ref(), scratch);
                finish(
                    conv,
                    [*stride, *stride],
                    t.as_ref().map_or(x, Tensor::view),
                    post.as_ref(),
                    write,
                    scratch,
                    out,
                );
            }
        }
    }
}

/// ReLU -> pre_1x1 into a new tensor when there is a bottleneck (the ReLU of the layer after
/// is left to that layer); without one, `None`: the next conv reads the input itself.
fn bottleneck_in(x: Nhwc, pre: Option<&ConvBn>, scratch: &mut Vec<f32>) -> Option<Tensor> {
    pre.map(|pre| pre.apply(x, [1, 1], true, scratch))
}

/// ReLU -> `conv` (at `stride`), then ReLU -> post_1x1 when there is a bottleneck.
fn finish(
    conv: &ConvBn,
    stride: [usize; 2],
    x: Nhwc,
    post: Option<&ConvBn>,
    write: Write,
    scratch: &mut Vec<f32>,
    out: NhwcMut,
) {
    match post {
        Some(post) => {
            let t = conv.apply(x, stride, true, scratch);
            post.run(t.view(), [1, 1], true, write, scratch, out);
        }
        None => conv.run(x, stride, true, write, scratch, out),
    }
}

/// N times: ReLU -> depthwise (stride on the first) -> pointwise with BN folded.
fn run_separable(
    x: Nhwc,
    k: usize,
    stride: usize,
    layers: &[(Vec<f32>, ConvBn)],
    write: Write,
    scratch: &mut Vec<f32>,
    out: NhwcMut,
) {
    let mut current: Option<Tensor> = None;
    let last = layers.len().saturating_sub(1);
    let mut out = Some(out);
    for (n, (dw, pw)) in layers.iter().enumerate() {
        let input = current.as_ref().map_or(x, |t| t.view());
        let s = if n == 0 { stride } else { 1 };
        let [b, h, w, c] = input.shape();
        let mut depth = Tensor::for_overwrite([b, h.div_ceil(s), w.div_ceil(s), c]);
        kernels::depthwise(input, dw, k, s, true, depth.view_mut());
        if n == last {
            if let Some(out) = out.take() {
                pw.run(depth.view(), [1, 1], false, write, scratch, out);
            }
        } else {
            current = Some(pw.apply(depth.view(), [1, 1], false, scratch));
        }
    }
}

type PoolFn = fn(Nhwc, usize, usize, NhwcMut);

/// SAME pooling (no ReLU), then a plain 1x1 with BN when the width changes.
#[allow(clippy::too_many_arguments)]
fn run_pool(
    x: Nhwc,
    avg: bool,
    k: usize,
    stride: usize,
    proj: Option<&ConvBn>,
    write: Write,
    scratch: &mut Vec<f32>,
    out: NhwcMut,
) {
    let (pool, pool_acc): (PoolFn, PoolFn) = if avg {
        (kernels::avg_pool, kernels::avg_pool_accumulate)
    } else {
        (kernels::max_pool, kernels::max_pool_accumulate)
    };
    match (proj, write) {
        (None, Write::Overwrite) => pool(x, k, stride, out),
        (None, Write::Accumulate) => pool_acc(x, k, stride, out),
        (Some(conv), _) => {
            let [n, h, w, c] = x.shape();
            let mut pooled = Tensor::for_overwrite([n, h.div_ceil(stride), w.div_ceil(stride), c]);
            pool(x, k, stride, pooled.view_mut());
            conv.run(pooled.view(), [1, 1], false, write, scratch, out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Empty;

    #[test]
    fn a_separable_op_with_no_layers_is_refused() {
        let loader = Loader {
            src: &Empty,
            eps: 1e-3,
            precision: Default::default(),
        };
        let op = Operation::Separable {
            kernel: 3,
            repeats: 0,
        };
        let Err(e) = load_op(&loader, "cell_0/comb_iter_0/left", op, [8, 8, 16], 1, 16) else {
            panic!("loaded a separable op with no layers");
        };
        assert!(
            e.to_string().contains("separable_3x3_0 has no layers"),
            "{e}"
        );
    }
}
