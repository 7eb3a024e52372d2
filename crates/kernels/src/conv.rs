//! Convolutions that map onto a GEMM (pointwise, im2col conv2d, dense), all
//! by weights packed at load time ([`PackedWeights`], `k = kh*kw*cin` rows by
//! `cout` columns).
//!
//! [`gemm_packed`] reads any pixel as a GEMM row, so NHWC activations (rows =
//! pixels, possibly strided inside a concat buffer, or every other pixel for a
//! stride-2 1x1) are used in place, with the input ReLU applied as they are
//! read, and the bias is added as the first K slice of the product is stored
//! (no separate pass over the output).

use crate::packed::{gemm_packed, LhsRows, PackedWeights};
use crate::padding::{output_size, Padding};
use crate::view::{Nhwc, NhwcMut};
use rayon::prelude::*;

/// Upper bound on im2col scratch, in floats (4 MiB): big enough for GEMM
/// blocks of hundreds of rows, small enough to stay mostly in L2/L3.
const IM2COL_FLOATS: usize = 1 << 20;

/// 1x1 convolution as GEMM: `out = input(subsampled by stride, i.e.
/// in[y*s][x*s]) @ weights[cin][cout] + bias`.
///
/// Panics if `weights` is not `cin x cout`, `bias.len() != cout`, or `out` is
/// not `[n, ceil(h/s), ceil(w/s), cout]`.
pub fn pointwise(input: Nhwc, weights: &PackedWeights, bias: &[f32], stride: usize, out: NhwcMut) {
    pointwise_with(input, weights, bias, stride, false, out)
}

/// [`pointwise`] with an optional ReLU applied to the input as it is read.
pub fn pointwise_with(
    input: Nhwc,
    weights: &PackedWeights,
    bias: &[f32],
    stride: usize,
    relu_input: bool,
    out: NhwcMut,
) {
    pointwise_impl(input, weights, bias, stride, relu_input, false, out)
}

/// [`pointwise_with`] that adds its result onto `out` instead of overwriting it:
/// `out += input @ weights + bias`. Two branches that are summed (a NASNet combination)
/// then share one buffer, with no temporary and no separate add pass.
pub fn pointwise_accumulate(
    input: Nhwc,
    weights: &PackedWeights,
    bias: &[f32],
    stride: usize,
    relu_input: bool,
    out: NhwcMut,
) {
    pointwise_impl(input, weights, bias, stride, relu_input, true, out)
}

fn pointwise_impl(
    input: Nhwc,
    weights: &PackedWeights,
    bias: &[f32],
    stride: usize,
    relu_input: bool,
    accumulate: bool,
    out: NhwcMut,
) {
    input.validate();
    out.validate();
    let (cin, cout) = (input.c, out.c);
    assert!(stride > 0, "stride 0");
    assert_eq!(
        [weights.k(), weights.n()],
        [cin, cout],
        "pointwise weights must be [cin][cout]"
    );
    assert_eq!(bias.len(), cout, "bias length");
    let expect = [
        input.n,
        input.h.div_ceil(stride),
        input.w.div_ceil(stride),
        cout,
    ];
    assert_eq!(out.shape(), expect, "pointwise output shape");
    let (h, w, ps) = (input.h, input.w, input.pixel_stride);
    let (ho, wo) = (out.h, out.w);
    // Output pixel i reads input pixel (b, y*stride, x*stride).
    let offset = |i: usize| {
        let (b, y, x) = (i / (ho * wo), i / wo % ho, i % wo);
        ((b * h + y * stride) * w + x * stride) * ps
    };
    let lhs = LhsRows {
        data: input.data,
        rows: out.pixels(),
        offset,
        relu: relu_input,
    };
    gemm_packed(&lhs, weights, bias, accumulate, out.data, out.pixel_stride);
}

#[inline]
fn copy_act(src: &[f32], dst: &mut [f32], relu: bool) {
    if relu {
        dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v.max(0.0));
    } else {
        dst.copy_from_slice(src);
    }
}

/// General convolution: weights HWIO `[kh][kw][cin][cout]`, strides `[sh, sw]`,
/// SAME or VALID (TF arithmetic), plus bias. im2col + GEMM in blocks of output
/// rows so the scratch stays bounded.
///
/// Panics on a weight/bias length or output shape mismatch.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    input: Nhwc,
    weights: &PackedWeights,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    padding: Padding,
    bias: &[f32],
    out: NhwcMut,
) {
    let geom = ConvGeom {
        kh,
        kw,
        stride,
        padding,
    };
    conv2d_with(input, weights, geom, bias, false, &mut Vec::new(), out)
}

/// Kernel size, strides and padding of a [`conv2d_with`].
#[derive(Clone, Copy, Debug)]
pub struct ConvGeom {
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub padding: Padding,
}

/// [`conv2d`] with an optional ReLU on the input (applied while unfolding, the
/// padding stays 0) and a caller-owned im2col `scratch` (at most ~4 MiB).
pub fn conv2d_with(
    input: Nhwc,
    weights: &PackedWeights,
    geom: ConvGeom,
    bias: &[f32],
    relu_input: bool,
    scratch: &mut Vec<f32>,
    out: NhwcMut,
) {
    input.validate();
    out.validate();
    let ConvGeom {
        kh,
        kw,
        stride: [sh, sw],
        padding,
    } = geom;
    let (ho, pt, _) = output_size(input.h, kh, sh, padding);
    let (wo, pl, _) = output_size(input.w, kw, sw, padding);
    let (cin, cout) = (input.c, out.c);
    let k = kh * kw * cin;
    assert_eq!(
        [weights.k(), weights.n()],
        [k, cout],
        "conv2d weights must be [kh][kw][cin][cout]"
    );
    assert_eq!(bias.len(), cout, "bias length");
    assert_eq!(out.shape(), [input.n, ho, wo, cout], "conv2d output shape");
    if out.pixels() == 0 || cout == 0 {
        return;
    }
    let rows_per_block = (IM2COL_FLOATS / (wo * k).max(1)).clamp(1, ho);
    let ops = out.pixel_stride;
    let unfold = Unfold {
        input,
        geom,
        pad: [pt, pl],
        wo,
        relu: relu_input,
    };
    for b in 0..input.n {
        for y0 in (0..ho).step_by(rows_per_block) {
            let rows = rows_per_block.min(ho - y0);
            unfold.rows(b, y0, rows, scratch);
            let dst = &mut out.data[(b * ho + y0) * wo * ops..];
            let lhs = LhsRows {
                data: scratch,
                rows: rows * wo,
                offset: |i| i * k,
                relu: false,
            };
            gemm_packed(&lhs, weights, bias, false, dst, ops);
        }
    }
}

/// im2col of one image's block of output rows.
struct Unfold<'a> {
    input: Nhwc<'a>,
    geom: ConvGeom,
    pad: [usize; 2],
    wo: usize,
    relu: bool,
}

impl Unfold<'_> {
    /// Fills `scratch` with `rows*wo` patches of `kh*kw*cin` values, ordered
    /// (dy, dx, ci) like the HWIO weights; taps in the padding are 0.
    fn rows(&self, b: usize, y0: usize, rows: usize, scratch: &mut Vec<f32>) {
        let (inp, g) = (&self.input, &self.geom);
        let (cin, patch) = (inp.c, g.kh * g.kw * inp.c);
        scratch.resize(rows * self.wo * patch, 0.0);
        if patch == 0 {
            return;
        }
        scratch
            .par_chunks_mut(patch)
            .with_min_len(32)
            .enumerate()
            .for_each(|(i, dst)| {
                let (yo, xo) = (y0 + i / self.wo, i % self.wo);
                let yi0 = (yo * g.stride[0]) as isize - self.pad[0] as isize;
                let xi0 = (xo * g.stride[1]) as isize - self.pad[1] as isize;
                for (tap, px) in dst.chunks_exact_mut(cin).enumerate() {
                    let yi = yi0 + (tap / g.kw) as isize;
                    let xi = xi0 + (tap % g.kw) as isize;
                    if yi < 0 || xi < 0 || yi >= inp.h as isize || xi >= inp.w as isize {
                        px.fill(0.0);
                    } else {
                        let p = (b * inp.h + yi as usize) * inp.w + xi as usize;
                        copy_act(inp.pixel(p), px, self.relu);
                    }
                }
            });
    }
}

/// Fully connected layer: `out[n][cout] = input[n][cin] @ weights[cin][cout] + bias`.
///
/// Panics on a length mismatch.
pub fn dense(input: &[f32], n: usize, weights: &PackedWeights, bias: &[f32], out: &mut [f32]) {
    let (cin, cout) = (weights.k(), weights.n());
    assert_eq!(input.len(), n * cin, "dense input length");
    assert_eq!(bias.len(), cout, "dense bias length");
    assert_eq!(out.len(), n * cout, "dense output length");
    if cout == 0 {
        return;
    }
    let lhs = LhsRows {
        data: input,
        rows: n,
        offset: |i| i * cin,
        relu: false,
    };
    gemm_packed(&lhs, weights, bias, false, out, cout);
}
