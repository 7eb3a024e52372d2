//! Depthwise KxK convolution (depth multiplier 1), SAME padding.
//!
//! NHWC puts a pixel's channels side by side, so the loop over channels is
//! the vector loop: each output pixel is computed in fixed-size channel
//! chunks whose accumulators stay in registers across all k*k taps. Border
//! taps that fall in the zero padding are skipped rather than multiplied.

use crate::padding::{output_size, valid_taps, Padding};
use crate::simd::{fast_max, fmadd, simd_dispatch};
use crate::view::{Nhwc, NhwcMut};
use rayon::prelude::*;

/// Channels per register-resident accumulator block (4 AVX-512 registers).
const CHUNK: usize = 64;

/// Depthwise KxK, weights `[k][k][c]` (TF's `[k,k,c,1]`), stride `s`, SAME
/// padding; `relu_input` applies `max(x,0)` to the input as it is read (the
/// padding stays 0). No bias (the pointwise that follows carries it).
///
/// Panics if `weights.len() != k*k*c` or `out` is not `[n, ceil(h/s), ceil(w/s), c]`.
pub fn depthwise(
    input: Nhwc,
    weights: &[f32],
    k: usize,
    stride: usize,
    relu_input: bool,
    mut out: NhwcMut,
) {
    input.validate();
    out.validate();
    let (ho, pad_top, _) = output_size(input.h, k, stride, Padding::Same);
    let (wo, pad_left, _) = output_size(input.w, k, stride, Padding::Same);
    assert_eq!(
        weights.len(),
        k * k * input.c,
        "depthwise weights must be [k][k][c]"
    );
    assert_eq!(
        out.shape(),
        [input.n, ho, wo, input.c],
        "depthwise output shape"
    );
    let g = Geom {
        k,
        stride,
        pad: [pad_top, pad_left],
        ho,
        out_w: wo,
        out_ps: out.pixel_stride,
    };
    out.par_rows_mut().enumerate().for_each(|(row, dst)| {
        if relu_input {
            row_relu(&input, weights, &g, row, dst)
        } else {
            row_plain(&input, weights, &g, row, dst)
        }
    });
}

pub(crate) struct Geom {
    pub k: usize,
    pub stride: usize,
    pub pad: [usize; 2],
    pub ho: usize,
    pub out_w: usize,
    pub out_ps: usize,
}

simd_dispatch!(fn row_relu(input: &Nhwc, weights: &[f32], g: &Geom, row: usize, dst: &mut [f32]) => row_relu_generic);
simd_dispatch!(fn row_plain(input: &Nhwc, weights: &[f32], g: &Geom, row: usize, dst: &mut [f32]) => row_plain_generic);

#[inline(always)]
fn row_relu_generic<const FMA: bool>(
    input: &Nhwc,
    weights: &[f32],
    g: &Geom,
    row: usize,
    dst: &mut [f32],
) {
    row_generic::<FMA, true>(input, weights, g, row, dst)
}

#[inline(always)]
fn row_plain_generic<const FMA: bool>(
    input: &Nhwc,
    weights: &[f32],
    g: &Geom,
    row: usize,
    dst: &mut [f32],
) {
    row_generic::<FMA, false>(input, weights, g, row, dst)
}

/// One output row: every pixel, every channel.
#[inline(always)]
fn row_generic<const FMA: bool, const RELU: bool>(
    input: &Nhwc,
    weights: &[f32],
    g: &Geom,
    row: usize,
    dst: &mut [f32],
) {
    let (b, yo) = (row / g.ho, row % g.ho);
    let y0 = (yo * g.stride) as isize - g.pad[0] as isize;
    let (dy0, dy1) = valid_taps(y0, g.k, input.h);
    let mut xo = 0;
    while xo < g.out_w {
        let x0 = (xo * g.stride) as isize - g.pad[1] as isize;
        let (dx0, dx1) = valid_taps(x0, g.k, input.w);
        let win = Window {
            // Flat input pixel of tap (0, 0); only valid taps are ever added to it.
            origin: ((b * input.h) as isize + y0) * input.w as isize + x0,
            dy: dy0..dy1,
            dx: dx0..dx1,
        };
        // Where BLOCK pixels all see every horizontal tap, they share each
        // weight load (1.25 loads per FMA instead of 2).
        let last_x0 = x0 + ((BLOCK - 1) * g.stride) as isize;
        if x0 >= 0 && last_x0 + g.k as isize <= input.w as isize && xo + BLOCK <= g.out_w {
            let out = &mut dst[xo * g.out_ps..];
            block::<FMA, RELU>(input, weights, g, &win, out);
            xo += BLOCK;
        } else {
            let px = &mut dst[xo * g.out_ps..][..input.c];
            pixel::<FMA, RELU>(input, weights, g.k, &win, 0, px);
            xo += 1;
        }
    }
}

/// Output pixels per register block of [`block`].
const BLOCK: usize = 4;
/// Channels per pixel in a block: BLOCK x 2 AVX-512 accumulators.
const BLOCK_CHUNK: usize = 32;

/// BLOCK horizontally adjacent interior output pixels starting at `out[0]`.
#[inline(always)]
fn block<const FMA: bool, const RELU: bool>(
    input: &Nhwc,
    weights: &[f32],
    g: &Geom,
    win: &Window,
    out: &mut [f32],
) {
    let c = input.c;
    let mut ch = 0;
    while ch + BLOCK_CHUNK <= c {
        match (g.stride, g.k) {
            (1, 3) => block_chunk_s1::<3, FMA, RELU>(input, weights, g, win, ch, out),
            (1, 5) => block_chunk_s1::<5, FMA, RELU>(input, weights, g, win, ch, out),
            (1, 7) => block_chunk_s1::<7, FMA, RELU>(input, weights, g, win, ch, out),
            _ => block_chunk::<FMA, RELU>(input, weights, g, win, ch, out),
        }
        ch += BLOCK_CHUNK;
    }
    if ch < c {
        for j in 0..BLOCK {
            let shifted = Window {
                origin: win.origin + (j * g.stride) as isize,
                ..win.clone()
            };
            let px = &mut out[j * g.out_ps..][..c];
            pixel::<FMA, RELU>(input, weights, g.k, &shifted, ch, px);
        }
    }
}

#[inline(always)]
fn block_chunk<const FMA: bool, const RELU: bool>(
    input: &Nhwc,
    weights: &[f32],
    g: &Geom,
    win: &Window,
    ch: usize,
    out: &mut [f32],
) {
    const L: usize = BLOCK_CHUNK;
    let (w, c, ps) = (input.w as isize, input.c, input.pixel_stride);
    let x = |p: usize| -> &[f32; L] { input.data[p * ps + ch..][..L].try_into().unwrap() };
    // Four named accumulators rebuilt per tap: with an array of arrays
    // updated in place (or `from_fn` over the block) LLVM kept them on the
    // stack or left a non-inlined call, 5x slower.
    let [mut a0, mut a1, mut a2, mut a3] = [[0.0f32; L]; BLOCK];
    for dy in win.dy.clone() {
        for dx in win.dx.clone() {
            let wt: &[f32; L] = weights[(dy * g.k + dx) * c + ch..][..L].try_into().unwrap();
            let p0 = (win.origin + dy as isize * w + dx as isize) as usize;
            a0 = tap::<L, FMA, RELU>(a0, wt, x(p0));
            a1 = tap::<L, FMA, RELU>(a1, wt, x(p0 + g.stride));
            a2 = tap::<L, FMA, RELU>(a2, wt, x(p0 + 2 * g.stride));
            a3 = tap::<L, FMA, RELU>(a3, wt, x(p0 + 3 * g.stride));
        }
    }
    for (j, acc) in [a0, a1, a2, a3].iter().enumerate() {
        out[j * g.out_ps + ch..][..L].copy_from_slice(acc);
    }
}

/// [`block_chunk`] at stride 1 for a kernel of width `K`: per kernel row, the BLOCK outputs
/// read BLOCK + K - 1 adjacent inputs. Each is loaded and ReLU'd once and meets up to K
/// weights held in registers, instead of being loaded and ReLU'd once per tap (K times):
/// 2.2 loads per FMA become ~0.9 for K = 5 (`cargo bench -p kernels -- depthwise`, one
/// thread: 3x3 and 5x5 25% faster, 7x7 the same).
#[inline(always)]
fn block_chunk_s1<const K: usize, const FMA: bool, const RELU: bool>(
    input: &Nhwc,
    weights: &[f32],
    g: &Geom,
    win: &Window,
    ch: usize,
    out: &mut [f32],
) {
    const L: usize = BLOCK_CHUNK;
    let (w, c, ps) = (input.w as isize, input.c, input.pixel_stride);
    let [mut a0, mut a1, mut a2, mut a3] = [[0.0f32; L]; BLOCK];
    for dy in win.dy.clone() {
        let mut wrow = [[0.0f32; L]; K];
        for (dx, wt) in wrow.iter_mut().enumerate() {
            *wt = weights[(dy * K + dx) * c + ch..][..L].try_into().unwrap();
        }
        let p0 = (win.origin + dy as isize * w) as usize;
        for p in 0..BLOCK + K - 1 {
            let x = act::<L, RELU>(input.data[(p0 + p) * ps + ch..][..L].try_into().unwrap());
            if p < K {
                a0 = tap::<L, FMA, false>(a0, &wrow[p], &x);
            }
            if (1..K + 1).contains(&p) {
                a1 = tap::<L, FMA, false>(a1, &wrow[p - 1], &x);
            }
            if (2..K + 2).contains(&p) {
                a2 = tap::<L, FMA, false>(a2, &wrow[p - 2], &x);
            }
            if (3..K + 3).contains(&p) {
                a3 = tap::<L, FMA, false>(a3, &wrow[p - 3], &x);
            }
        }
    }
    for (j, acc) in [a0, a1, a2, a3].iter().enumerate() {
        out[j * g.out_ps + ch..][..L].copy_from_slice(acc);
    }
}

/// `max(x, 0)` lane by lane when `RELU`, else `x`.
#[inline(always)]
fn act<const L: usize, const RELU: bool>(x: &[f32; L]) -> [f32; L] {
    let mut v = *x;
    if RELU {
        for x in &mut v {
            *x = fast_max(*x, 0.0);
        }
    }
    v
}

/// `acc + wt * act(x)`, lane by lane. A plain loop on a by-value array, not
/// `array::from_fn`: that is not always inlined, and outside the
/// `#[target_feature]` wrapper `mul_add` becomes a libm call (100x slower).
#[inline(always)]
fn tap<const L: usize, const FMA: bool, const RELU: bool>(
    mut acc: [f32; L],
    wt: &[f32; L],
    x: &[f32; L],
) -> [f32; L] {
    for i in 0..L {
        let v = if RELU { fast_max(x[i], 0.0) } else { x[i] };
        acc[i] = fmadd::<FMA>(wt[i], v, acc[i]);
    }
    acc
}

#[derive(Clone)]
pub(crate) struct Window {
    pub origin: isize,
    pub dy: std::ops::Range<usize>,
    pub dx: std::ops::Range<usize>,
}

/// Channels `start..` of one output pixel, in chunks of CHUNK, 16 and 1.
#[inline(always)]
fn pixel<const FMA: bool, const RELU: bool>(
    input: &Nhwc,
    weights: &[f32],
    k: usize,
    win: &Window,
    start: usize,
    px: &mut [f32],
) {
    let c = px.len();
    let mut ch = start;
    while ch + CHUNK <= c {
        chunk::<CHUNK, FMA, RELU>(input, weights, k, win, ch, px);
        ch += CHUNK;
    }
    while ch + 16 <= c {
        chunk::<16, FMA, RELU>(input, weights, k, win, ch, px);
        ch += 16;
    }
    while ch < c {
        chunk::<1, FMA, RELU>(input, weights, k, win, ch, px);
        ch += 1;
    }
}

/// Channels `ch..ch+L` of one output pixel, accumulated in registers.
#[inline(always)]
fn chunk<const L: usize, const FMA: bool, const RELU: bool>(
    input: &Nhwc,
    weights: &[f32],
    k: usize,
    win: &Window,
    ch: usize,
    px: &mut [f32],
) {
    let (w, c, ps) = (input.w as isize, input.c, input.pixel_stride);
    let mut acc = [0.0f32; L];
    for dy in win.dy.clone() {
        for dx in win.dx.clone() {
            let p = (win.origin + dy as isize * w + dx as isize) as usize;
            let x: &[f32; L] = input.data[p * ps + ch..][..L].try_into().unwrap();
            let wt: &[f32; L] = weights[(dy * k + dx) * c + ch..][..L].try_into().unwrap();
            for i in 0..L {
                let v = if RELU { fast_max(x[i], 0.0) } else { x[i] };
                acc[i] = fmadd::<FMA>(wt[i], v, acc[i]);
            }
        }
    }
    px[ch..ch + L].copy_from_slice(&acc);
}
