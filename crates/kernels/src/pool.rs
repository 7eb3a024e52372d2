//! SAME-padded 2-D pooling and the stride-2 subsampling of the factorized
//! reduction. Same channel-chunk structure as the depthwise kernel.

use crate::depthwise::Window;
use crate::padding::{output_size, valid_taps, Padding};
use crate::simd::{fast_max, simd_dispatch};
use crate::view::{Nhwc, NhwcMut};
use rayon::prelude::*;

#[derive(Clone, Copy)]
struct PoolGeom {
    k: usize,
    stride: usize,
    pad: [usize; 2],
    ho: usize,
    out_w: usize,
    out_ps: usize,
}

/// SAME-padded average pool, TF semantics: each output divides by the number
/// of valid (non-padded) elements of its window.
///
/// Panics if `out` is not `[n, ceil(h/s), ceil(w/s), c]`.
pub fn avg_pool(input: Nhwc, k: usize, stride: usize, out: NhwcMut) {
    pool(input, k, stride, out, avg_row)
}

/// SAME-padded max pool; the padding never wins.
///
/// Panics if `out` is not `[n, ceil(h/s), ceil(w/s), c]`.
pub fn max_pool(input: Nhwc, k: usize, stride: usize, out: NhwcMut) {
    pool(input, k, stride, out, max_row)
}

/// [`avg_pool`] added onto `out` (`out += avg_pool(input)`), for the second branch of a sum.
pub fn avg_pool_accumulate(input: Nhwc, k: usize, stride: usize, out: NhwcMut) {
    pool(input, k, stride, out, avg_row_acc)
}

/// [`max_pool`] added onto `out`.
pub fn max_pool_accumulate(input: Nhwc, k: usize, stride: usize, out: NhwcMut) {
    pool(input, k, stride, out, max_row_acc)
}

type RowFn = fn(&Nhwc, &PoolGeom, usize, &mut [f32]);

fn pool(input: Nhwc, k: usize, stride: usize, mut out: NhwcMut, row_fn: RowFn) {
    input.validate();
    out.validate();
    let (ho, pad_top, _) = output_size(input.h, k, stride, Padding::Same);
    let (wo, pad_left, _) = output_size(input.w, k, stride, Padding::Same);
    assert_eq!(out.shape(), [input.n, ho, wo, input.c], "pool output shape");
    let g = PoolGeom {
        k,
        stride,
        pad: [pad_top, pad_left],
        ho,
        out_w: wo,
        out_ps: out.pixel_stride,
    };
    out.par_rows_mut()
        .enumerate()
        .for_each(|(row, dst)| row_fn(&input, &g, row, dst));
}

simd_dispatch!(fn avg_row(input: &Nhwc, g: &PoolGeom, row: usize, dst: &mut [f32]) => avg_row_generic);
simd_dispatch!(fn max_row(input: &Nhwc, g: &PoolGeom, row: usize, dst: &mut [f32]) => max_row_generic);
simd_dispatch!(fn avg_row_acc(input: &Nhwc, g: &PoolGeom, row: usize, dst: &mut [f32]) => avg_row_acc_generic);
simd_dispatch!(fn max_row_acc(input: &Nhwc, g: &PoolGeom, row: usize, dst: &mut [f32]) => max_row_acc_generic);

#[inline(always)]
fn avg_row_generic<const FMA: bool>(input: &Nhwc, g: &PoolGeom, row: usize, dst: &mut [f32]) {
    pool_row::<false, false>(input, g, row, dst)
}

#[inline(always)]
fn max_row_generic<const FMA: bool>(input: &Nhwc, g: &PoolGeom, row: usize, dst: &mut [f32]) {
    pool_row::<true, false>(input, g, row, dst)
}

#[inline(always)]
fn avg_row_acc_generic<const FMA: bool>(input: &Nhwc, g: &PoolGeom, row: usize, dst: &mut [f32]) {
    pool_row::<false, true>(input, g, row, dst)
}

#[inline(always)]
fn max_row_acc_generic<const FMA: bool>(input: &Nhwc, g: &PoolGeom, row: usize, dst: &mut [f32]) {
    pool_row::<true, true>(input, g, row, dst)
}

/// One output row; with `ACC` the pooled values are added onto `dst`.
#[inline(always)]
fn pool_row<const MAX: bool, const ACC: bool>(
    input: &Nhwc,
    g: &PoolGeom,
    row: usize,
    dst: &mut [f32],
) {
    let (b, yo) = (row / g.ho, row % g.ho);
    let y0 = (yo * g.stride) as isize - g.pad[0] as isize;
    let (dy0, dy1) = valid_taps(y0, g.k, input.h);
    for xo in 0..g.out_w {
        let x0 = (xo * g.stride) as isize - g.pad[1] as isize;
        let (dx0, dx1) = valid_taps(x0, g.k, input.w);
        let win = Window {
            origin: ((b * input.h) as isize + y0) * input.w as isize + x0,
            dy: dy0..dy1,
            dx: dx0..dx1,
        };
        let px = &mut dst[xo * g.out_ps..][..input.c];
        let mut ch = 0;
        while ch + 64 <= px.len() {
            chunk::<64, MAX, ACC>(input, &win, ch, px);
            ch += 64;
        }
        while ch + 16 <= px.len() {
            chunk::<16, MAX, ACC>(input, &win, ch, px);
            ch += 16;
        }
        while ch < px.len() {
            chunk::<1, MAX, ACC>(input, &win, ch, px);
            ch += 1;
        }
    }
}

#[inline(always)]
fn chunk<const L: usize, const MAX: bool, const ACC: bool>(
    input: &Nhwc,
    win: &Window,
    ch: usize,
    px: &mut [f32],
) {
    let (w, ps) = (input.w as isize, input.pixel_stride);
    let mut acc = [if MAX { f32::NEG_INFINITY } else { 0.0 }; L];
    for dy in win.dy.clone() {
        for dx in win.dx.clone() {
            let p = (win.origin + dy as isize * w + dx as isize) as usize;
            let x: &[f32; L] = input.data[p * ps + ch..][..L].try_into().unwrap();
            acc = tap::<L, MAX>(acc, x);
        }
    }
    if !MAX {
        let inv = 1.0 / (win.dy.len() * win.dx.len()) as f32;
        acc.iter_mut().for_each(|a| *a *= inv);
    }
    let out: &mut [f32; L] = (&mut px[ch..ch + L]).try_into().unwrap();
    if ACC {
        for i in 0..L {
            out[i] += acc[i];
        }
    } else {
        *out = acc;
    }
}

/// One window element into the accumulator. A by-value array (in-place
/// updates made LLVM turn the max's select into masked stores to the stack)
/// and a plain loop (`array::from_fn` may stay un-inlined, losing the
/// `#[target_feature]` context).
#[inline(always)]
fn tap<const L: usize, const MAX: bool>(mut acc: [f32; L], x: &[f32; L]) -> [f32; L] {
    for i in 0..L {
        acc[i] = if MAX {
            fast_max(x[i], acc[i])
        } else {
            acc[i] + x[i]
        };
    }
    acc
}

/// `out[b,y,x,:] = in[b, 2y+offset, 2x+offset, :]`, or 0 where that is out of
/// range: the factorized reduction's path1 (offset 0) and path2 (offset 1,
/// TF pads one zero row/column at the bottom/right for odd sizes).
///
/// Panics if `offset > 1` or `out` is not `[n, ceil(h/2), ceil(w/2), c]`.
pub fn subsample2(input: Nhwc, offset: usize, mut out: NhwcMut) {
    input.validate();
    out.validate();
    assert!(offset <= 1, "subsample2 offset must be 0 or 1");
    let (ho, wo) = (input.h.div_ceil(2), input.w.div_ceil(2));
    assert_eq!(
        out.shape(),
        [input.n, ho, wo, input.c],
        "subsample2 output shape"
    );
    let (c, ops) = (input.c, out.pixel_stride);
    out.par_rows_mut().enumerate().for_each(|(row, dst)| {
        let (b, y) = (row / ho, 2 * (row % ho) + offset);
        for xo in 0..wo {
            let x = 2 * xo + offset;
            let px = &mut dst[xo * ops..][..c];
            if y < input.h && x < input.w {
                px.copy_from_slice(input.pixel((b * input.h + y) * input.w + x));
            } else {
                px.fill(0.0);
            }
        }
    });
}
