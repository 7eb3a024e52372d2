//! Per-pixel maps (ReLU, add, copy, batch norm) and the global mean.
//!
//! These are memory-bound, so baseline SIMD is enough; they only need to be
//! parallel and to honour strided views.

use crate::view::{Nhwc, NhwcMut};
use rayon::prelude::*;

fn assert_same_shape(a: &Nhwc, out: &NhwcMut, what: &str) {
    a.validate();
    out.validate();
    assert_eq!(a.shape(), out.shape(), "{what}: shapes differ");
}

/// Calls `f(out_pixel, flat_pixel_index)` for every pixel of `out`, parallel
/// over pixel rows.
fn for_each_pixel(mut out: NhwcMut, f: impl Fn(&mut [f32], usize) + Sync) {
    let (w, c, ps) = (out.w, out.c, out.pixel_stride);
    out.par_rows_mut().enumerate().for_each(|(row, dst)| {
        for x in 0..w {
            f(&mut dst[x * ps..][..c], row * w + x);
        }
    });
}

/// `out = max(input, 0)`. Panics if the shapes differ.
pub fn relu(input: Nhwc, out: NhwcMut) {
    assert_same_shape(&input, &out, "relu");
    for_each_pixel(out, |o, p| {
        o.iter_mut()
            .zip(input.pixel(p))
            .for_each(|(o, &v)| *o = v.max(0.0))
    });
}

/// `out = a + b`. Panics if the shapes differ.
pub fn add(a: Nhwc, b: Nhwc, out: NhwcMut) {
    assert_same_shape(&a, &out, "add");
    assert_same_shape(&b, &out, "add");
    for_each_pixel(out, |o, p| {
        let (a, b) = (a.pixel(p), b.pixel(p));
        for i in 0..o.len() {
            o[i] = a[i] + b[i];
        }
    });
}

/// `out += a`. Panics if the shapes differ.
pub fn add_assign(out: NhwcMut, a: Nhwc) {
    assert_same_shape(&a, &out, "add_assign");
    for_each_pixel(out, |o, p| {
        o.iter_mut().zip(a.pixel(p)).for_each(|(o, &v)| *o += v)
    });
}

/// `out = input`. Panics if the shapes differ.
pub fn copy(input: Nhwc, out: NhwcMut) {
    assert_same_shape(&input, &out, "copy");
    for_each_pixel(out, |o, p| o.copy_from_slice(input.pixel(p)));
}

/// Inference batch norm as a per-channel affine map: `out = in*scale + shift`
/// (see [`crate::batch_norm_scale_shift`]). Panics on a shape mismatch.
pub fn batch_norm(input: Nhwc, scale: &[f32], shift: &[f32], out: NhwcMut) {
    assert_same_shape(&input, &out, "batch_norm");
    assert_eq!(scale.len(), input.c, "scale length");
    assert_eq!(shift.len(), input.c, "shift length");
    for_each_pixel(out, |o, p| {
        let x = input.pixel(p);
        for i in 0..o.len() {
            o[i] = x[i] * scale[i] + shift[i];
        }
    });
}

/// Mean over H and W, optionally of `max(x,0)`: `out[n][c]`. Sums in f64 so
/// the result does not depend on the pixel count's rounding.
///
/// Panics if `out.len() != n*c`.
pub fn global_mean(input: Nhwc, relu_input: bool, out: &mut [f32]) {
    input.validate();
    let (c, hw) = (input.c, input.h * input.w);
    assert_eq!(out.len(), input.n * c, "global_mean output length");
    if c == 0 {
        return;
    }
    out.par_chunks_mut(c).enumerate().for_each(|(b, o)| {
        let mut sum = vec![0.0f64; c];
        for p in b * hw..(b + 1) * hw {
            for (s, &v) in sum.iter_mut().zip(input.pixel(p)) {
                *s += f64::from(if relu_input { v.max(0.0) } else { v });
            }
        }
        let inv = 1.0 / hw.max(1) as f64;
        o.iter_mut()
            .zip(&sum)
            .for_each(|(o, s)| *o = (s * inv) as f32);
    });
}
