//! Kernels against the naive references in `reference.rs`, on random shapes
//! (odd sizes, strides 1-2, strided channel views on both sides, channel
//! counts off the SIMD widths), plus the exact TF padding cases of the network.

use crate::reference::{self, Dense};
use crate::*;
use proptest::prelude::*;

const SENTINEL: f32 = 12345.0;

/// Deterministic values in [-1, 1) (splitmix64), so a failing proptest case
/// is reproduced by its seed alone.
fn rand_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A tensor stored as channels `off..off+c` of a wider buffer (`extra` more channels).
struct Buf {
    data: Vec<f32>,
    shape: [usize; 4],
    ps: usize,
    off: usize,
}

impl Buf {
    fn random(shape: [usize; 4], extra: usize, seed: u64) -> Buf {
        let ps = shape[3] + extra;
        let data = rand_vec(shape[0] * shape[1] * shape[2] * ps, seed);
        Buf {
            data,
            shape,
            ps,
            off: extra / 2,
        }
    }
    fn sentinel(shape: [usize; 4], extra: usize) -> Buf {
        let ps = shape[3] + extra;
        let data = vec![SENTINEL; shape[0] * shape[1] * shape[2] * ps];
        Buf {
            data,
            shape,
            ps,
            off: extra.div_ceil(2),
        }
    }
    fn wide_shape(&self) -> [usize; 4] {
        [self.shape[0], self.shape[1], self.shape[2], self.ps]
    }
    fn view(&self) -> Nhwc<'_> {
        Nhwc::new(&self.data, self.wide_shape()).channels(self.off..self.off + self.shape[3])
    }
    fn view_mut(&mut self) -> NhwcMut<'_> {
        let range = self.off..self.off + self.shape[3];
        let shape = self.wide_shape();
        NhwcMut::new(&mut self.data, shape).channels_mut(range)
    }
    /// Values inside the view match `want` within `tol` relative to the
    /// magnitude of the summed terms; everything outside is untouched.
    fn check(&self, want: &Dense, tol: f64) {
        assert_eq!(self.shape, want.shape, "shape");
        let c = self.shape[3];
        for (p, px) in self.data.chunks(self.ps).enumerate() {
            for (ch, &got) in px.iter().enumerate() {
                if ch < self.off || ch >= self.off + c {
                    assert_eq!(
                        got, SENTINEL,
                        "pixel {p} channel {ch} outside the view was written"
                    );
                    continue;
                }
                let i = p * c + ch - self.off;
                let (v, m) = (want.val[i], want.mag[i]);
                let err = (f64::from(got) - v).abs();
                assert!(
                    err <= tol * (m + 1e-3),
                    "pixel {p} channel {ch}: got {got}, want {v} (mag {m})"
                );
            }
        }
    }
}

fn kernel_size() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 3, 5, 7])
}

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![Just(Padding::Same), Just(Padding::Valid)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn conv2d_matches_reference(
        n in 1usize..3, h in 1usize..11, w in 1usize..11, cin in 1usize..10, cout in 1usize..21,
        kh in kernel_size(), kw in kernel_size(), sh in 1usize..3, sw in 1usize..3,
        pad in padding(), relu_in in any::<bool>(), extra in 0usize..4, seed in any::<u64>(),
    ) {
        let input = Buf::random([n, h, w, cin], extra, seed);
        let wts = rand_vec(kh * kw * cin * cout, seed ^ 1);
        let bias = rand_vec(cout, seed ^ 2);
        let want = reference::conv2d(&input.view(), &wts, kh, kw, [sh, sw], pad, &bias, relu_in);
        let mut out = Buf::sentinel(want.shape, extra);
        let geom = ConvGeom { kh, kw, stride: [sh, sw], padding: pad };
        conv2d_with(input.view(), &PackedWeights::new(kh * kw * cin, cout, &wts), geom, &bias, relu_in, &mut Vec::new(), out.view_mut());
        out.check(&want, 1e-5);
    }

    #[test]
    fn pointwise_matches_reference(
        n in 1usize..3, h in 1usize..12, w in 1usize..12, cin in 1usize..40, cout in 1usize..40,
        stride in 1usize..4, relu_in in any::<bool>(), extra in 0usize..4, seed in any::<u64>(),
    ) {
        let input = Buf::random([n, h, w, cin], extra, seed);
        let wts = rand_vec(cin * cout, seed ^ 1);
        let bias = rand_vec(cout, seed ^ 2);
        let want = reference::conv2d(&input.view(), &wts, 1, 1, [stride; 2], Padding::Same, &bias, relu_in);
        let mut out = Buf::sentinel(want.shape, extra);
        let packed = PackedWeights::new(cin, cout, &wts);
        pointwise_with(input.view(), &packed, &bias, stride, relu_in, out.view_mut());
        out.check(&want, 1e-5);
        if !relu_in {
            let mut out2 = Buf::sentinel(want.shape, extra);
            pointwise(input.view(), &packed, &bias, stride, out2.view_mut());
            out2.check(&want, 1e-5);
        }
    }

    #[test]
    fn pointwise_accumulate_adds_onto_out(
        n in 1usize..3, h in 1usize..9, w in 1usize..9, cin in 1usize..30, cout in 1usize..30,
        stride in 1usize..3, relu_in in any::<bool>(), extra in 0usize..4, seed in any::<u64>(),
    ) {
        let input = Buf::random([n, h, w, cin], extra, seed);
        let wts = rand_vec(cin * cout, seed ^ 1);
        let bias = rand_vec(cout, seed ^ 2);
        let mut want = reference::conv2d(&input.view(), &wts, 1, 1, [stride; 2], Padding::Same, &bias, relu_in);
        let base = Buf::random(want.shape, 0, seed ^ 3);
        let mut out = Buf::sentinel(want.shape, extra);
        copy(base.view(), out.view_mut());
        for (i, b) in base.data.iter().enumerate() {
            want.val[i] += f64::from(*b);
            want.mag[i] += f64::from(b.abs());
        }
        pointwise_accumulate(input.view(), &PackedWeights::new(cin, cout, &wts), &bias, stride, relu_in, out.view_mut());
        out.check(&want, 1e-5);
    }

    #[test]
    fn depthwise_matches_reference(
        n in 1usize..3, h in 1usize..12, w in 1usize..12, c in 1usize..90,
        k in kernel_size(), stride in 1usize..3, relu_in in any::<bool>(),
        extra in 0usize..4, seed in any::<u64>(),
    ) {
        let input = Buf::random([n, h, w, c], extra, seed);
        let wts = rand_vec(k * k * c, seed ^ 1);
        let want = reference::depthwise(&input.view(), &wts, k, stride, relu_in);
        let mut out = Buf::sentinel(want.shape, extra);
        depthwise(input.view(), &wts, k, stride, relu_in, out.view_mut());
        out.check(&want, 1e-5);
    }

    #[test]
    fn pools_match_reference(
        n in 1usize..3, h in 1usize..12, w in 1usize..12, c in 1usize..90,
        k in 1usize..6, stride in 1usize..3, max in any::<bool>(),
        extra in 0usize..4, seed in any::<u64>(),
    ) {
        let input = Buf::random([n, h, w, c], extra, seed);
        let want = reference::pool(&input.view(), k, stride, max);
        let mut out = Buf::sentinel(want.shape, extra);
        if max {
            max_pool(input.view(), k, stride, out.view_mut());
        } else {
            avg_pool(input.view(), k, stride, out.view_mut());
        }
        out.check(&want, 1e-6);
    }

    #[test]
    fn subsample2_matches_reference(
        n in 1usize..3, h in 1usize..10, w in 1usize..10, c in 1usize..20,
        offset in 0usize..2, extra in 0usize..4, seed in any::<u64>(),
    ) {
        let input = Buf::random([n, h, w, c], extra, seed);
        let v = input.view();
        let shape = [n, h.div_ceil(2), w.div_ceil(2), c];
        let mut want = Dense { shape, val: vec![], mag: vec![] };
        for b in 0..n {
            for y in 0..shape[1] {
                for x in 0..shape[2] {
                    for ch in 0..c {
                        let (yi, xi) = ((2 * y + offset) as isize, (2 * x + offset) as isize);
                        want.val.push(reference::at(&v, b, yi, xi, ch, false).unwrap_or(0.0));
                    }
                }
            }
        }
        want.mag = vec![0.0; want.val.len()];
        let mut out = Buf::sentinel(shape, extra);
        subsample2(v, offset, out.view_mut());
        out.check(&want, 0.0);
    }

    #[test]
    fn elementwise_match_reference(
        n in 1usize..3, h in 1usize..8, w in 1usize..8, c in 1usize..40,
        extra in 0usize..4, seed in any::<u64>(),
    ) {
        let shape = [n, h, w, c];
        let (a, b) = (Buf::random(shape, extra, seed), Buf::random(shape, extra + 1, seed ^ 1));
        let (av, bv) = (a.view(), b.view());
        let scale = rand_vec(c, seed ^ 2);
        let shift = rand_vec(c, seed ^ 3);
        let map = |f: &dyn Fn(usize, f64, f64) -> f64| {
            let mut d = Dense { shape, val: vec![], mag: vec![] };
            for p in 0..n * h * w {
                for ch in 0..c {
                    let x = f64::from(av.pixel(p)[ch]);
                    let y = f64::from(bv.pixel(p)[ch]);
                    let v = f(ch, x, y);
                    d.val.push(v);
                    d.mag.push(v.abs() + x.abs() + y.abs());
                }
            }
            d
        };
        let mut out = Buf::sentinel(shape, extra);
        relu(av, out.view_mut());
        out.check(&map(&|_, x, _| x.max(0.0)), 0.0);
        add(av, bv, out.view_mut());
        out.check(&map(&|_, x, y| x + y), 1e-7);
        copy(av, out.view_mut());
        out.check(&map(&|_, x, _| x), 0.0);
        add_assign(out.view_mut(), bv);
        out.check(&map(&|_, x, y| x + y), 1e-7);
        batch_norm(av, &scale, &shift, out.view_mut());
        let bn = |ch: usize, x: f64, _| x * f64::from(scale[ch]) + f64::from(shift[ch]);
        out.check(&map(&bn), 1e-6);
    }

    #[test]
    fn global_mean_and_dense(
        n in 1usize..4, h in 1usize..8, w in 1usize..8, c in 1usize..40, cout in 1usize..30,
        relu_in in any::<bool>(), extra in 0usize..4, seed in any::<u64>(),
    ) {
        let input = Buf::random([n, h, w, c], extra, seed);
        let mut mean = vec![0.0; n * c];
        global_mean(input.view(), relu_in, &mut mean);
        // A 1x1 "image" of the means through dense == the mean through conv2d with HxW VALID / (h*w).
        let v = input.view();
        for b in 0..n {
            for ch in 0..c {
                let s: f64 = (0..h * w)
                    .map(|p| f64::from(v.pixel(b * h * w + p)[ch]))
                    .map(|x| if relu_in { x.max(0.0) } else { x })
                    .sum();
                prop_assert!((f64::from(mean[b * c + ch]) - s / (h * w) as f64).abs() < 1e-6);
            }
        }
        let wts = rand_vec(c * cout, seed ^ 1);
        let bias = rand_vec(cout, seed ^ 2);
        let mut out = vec![0.0; n * cout];
        dense(&mean, n, &PackedWeights::new(c, cout, &wts), &bias, &mut out);
        let as_img = Nhwc::new(&mean, [n, 1, 1, c]);
        let want = reference::conv2d(&as_img, &wts, 1, 1, [1, 1], Padding::Valid, &bias, false);
        let mut got = Buf { data: out, shape: [n, 1, 1, cout], ps: cout, off: 0 };
        got.check(&want, 1e-5);
        got.data.clear();
    }

    #[test]
    fn folded_batch_norm_equals_conv_then_batch_norm(
        h in 1usize..8, w in 1usize..8, cin in 1usize..12, cout in 1usize..20,
        k in kernel_size(), seed in any::<u64>(),
    ) {
        let input = Buf::random([1, h, w, cin], 0, seed);
        let mut wts = rand_vec(k * k * cin * cout, seed ^ 1);
        let gamma = rand_vec(cout, seed ^ 2);
        let beta = rand_vec(cout, seed ^ 3);
        let mean = rand_vec(cout, seed ^ 4);
        let var: Vec<f32> = rand_vec(cout, seed ^ 5).iter().map(|v| v + 1.5).collect();
        let eps = 1.001e-5;
        let zero = vec![0.0; cout];
        let shape = [1, h, w, cout];
        let (mut conv_out, mut bn_out) = (vec![0.0; h * w * cout], vec![0.0; h * w * cout]);
        conv2d(input.view(), &PackedWeights::new(k * k * cin, cout, &wts), k, k, [1, 1], Padding::Same, &zero, NhwcMut::new(&mut conv_out, shape));
        let (scale, shift) = batch_norm_scale_shift(&gamma, &beta, &mean, &var, eps);
        batch_norm(Nhwc::new(&conv_out, shape), &scale, &shift, NhwcMut::new(&mut bn_out, shape));
        let bias = fold_batch_norm(&mut wts, cout, &gamma, &beta, &mean, &var, eps);
        let mut folded = vec![0.0; h * w * cout];
        conv2d(input.view(), &PackedWeights::new(k * k * cin, cout, &wts), k, k, [1, 1], Padding::Same, &bias, NhwcMut::new(&mut folded, shape));
        for (a, b) in folded.iter().zip(&bn_out) {
            prop_assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}

/// Ones in, ones as weights: each output counts the valid taps of its window,
/// which pins down where TF puts the padding.
fn depthwise_tap_counts(size: usize, k: usize, s: usize) -> (usize, Vec<f32>) {
    let input = vec![1.0; size * size];
    let (o, _, _) = output_size(size, k, s, Padding::Same);
    let mut out = vec![0.0; o * o];
    let v = Nhwc::new(&input, [1, size, size, 1]);
    depthwise(
        v,
        &vec![1.0; k * k],
        k,
        s,
        false,
        NhwcMut::new(&mut out, [1, o, o, 1]),
    );
    (o, out)
}

#[test]
fn tf_same_padding_42_to_21_k3_pads_0_1() {
    let (o, out) = depthwise_tap_counts(42, 3, 2);
    assert_eq!(o, 21);
    assert_eq!(out[0], 9.0, "no padding at the top/left");
    assert_eq!(
        out[o * o - 1],
        4.0,
        "one padded row/column at the bottom/right"
    );
}

#[test]
fn tf_same_padding_42_to_21_k7_pads_2_3() {
    let (o, out) = depthwise_tap_counts(42, 7, 2);
    assert_eq!(o, 21);
    assert_eq!(out[0], 25.0, "two padded rows/columns at the top/left");
    assert_eq!(
        out[o * o - 1],
        16.0,
        "three padded rows/columns at the bottom/right"
    );
}

#[test]
fn tf_same_padding_165_to_83_symmetric() {
    let (o, out) = depthwise_tap_counts(165, 3, 2);
    assert_eq!(o, 83);
    assert_eq!(out[0], 4.0);
    assert_eq!(out[o * o - 1], 4.0);
}

#[test]
fn tf_valid_stem_331_to_165() {
    let input = vec![1.0; 331 * 331 * 3];
    let mut out = vec![0.0; 165 * 165 * 32];
    let v = Nhwc::new(&input, [1, 331, 331, 3]);
    let o = NhwcMut::new(&mut out, [1, 165, 165, 32]);
    conv2d(
        v,
        &PackedWeights::new(27, 32, &[1.0; 27 * 32]),
        3,
        3,
        [2, 2],
        Padding::Valid,
        &[0.5; 32],
        o,
    );
    assert!(out.iter().all(|&v| v == 27.5));
}

#[test]
fn avg_pool_corner_divides_by_valid_count() {
    let input: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let mut out = vec![0.0; 9];
    avg_pool(
        Nhwc::new(&input, [1, 3, 3, 1]),
        3,
        1,
        NhwcMut::new(&mut out, [1, 3, 3, 1]),
    );
    assert_eq!(out[0], (1.0 + 2.0 + 4.0 + 5.0) / 4.0);
    assert_eq!(out[1], (1.0 + 2.0 + 3.0 + 4.0 + 5.0 + 6.0) / 6.0);
    assert_eq!(out[4], 5.0);
    let mut mx = vec![0.0; 9];
    let neg: Vec<f32> = input.iter().map(|v| -v).collect();
    max_pool(
        Nhwc::new(&neg, [1, 3, 3, 1]),
        3,
        1,
        NhwcMut::new(&mut mx, [1, 3, 3, 1]),
    );
    assert_eq!(mx[8], -5.0, "padding must not win a max over negatives");
}

#[test]
fn conv2d_in_several_row_blocks() {
    // wo*K*ho > the im2col budget, so the rows are unfolded in blocks.
    let (h, cin, cout) = (64, 64, 8);
    let input = Buf::random([2, h, h, cin], 3, 7);
    let wts = rand_vec(9 * cin * cout, 8);
    let bias = rand_vec(cout, 9);
    let want = reference::conv2d(
        &input.view(),
        &wts,
        3,
        3,
        [1, 1],
        Padding::Same,
        &bias,
        true,
    );
    let mut out = Buf::sentinel(want.shape, 2);
    let geom = ConvGeom {
        kh: 3,
        kw: 3,
        stride: [1, 1],
        padding: Padding::Same,
    };
    conv2d_with(
        input.view(),
        &PackedWeights::new(9 * cin, cout, &wts),
        geom,
        &bias,
        true,
        &mut Vec::new(),
        out.view_mut(),
    );
    out.check(&want, 1e-5);
}

#[test]
fn large_pointwise_uses_threads_correctly() {
    let input = Buf::random([1, 21, 21, 300], 5, 3);
    let wts = rand_vec(300 * 200, 4);
    let bias = rand_vec(200, 5);
    let want = reference::conv2d(
        &input.view(),
        &wts,
        1,
        1,
        [1, 1],
        Padding::Same,
        &bias,
        false,
    );
    let mut out = Buf::sentinel(want.shape, 7);
    pointwise(
        input.view(),
        &PackedWeights::new(300, 200, &wts),
        &bias,
        1,
        out.view_mut(),
    );
    out.check(&want, 1e-5);
}

#[test]
fn depthwise_register_blocks_on_wide_rows() {
    // Rows wide enough for several 4-pixel interior blocks, with a channel
    // tail after the 32-channel block chunks, both strides.
    for (k, s) in [(3, 1), (5, 1), (5, 2), (7, 1), (7, 2)] {
        let input = Buf::random([2, 9, 23, 70], 3, k as u64);
        let wts = rand_vec(k * k * 70, 11);
        let want = reference::depthwise(&input.view(), &wts, k, s, true);
        let mut out = Buf::sentinel(want.shape, 5);
        depthwise(input.view(), &wts, k, s, true, out.view_mut());
        out.check(&want, 1e-5);
    }
}

type PoolFn = fn(Nhwc, usize, usize, NhwcMut);

#[test]
fn pools_accumulate_onto_out() {
    for (k, s, max) in [
        (3, 1, false),
        (3, 1, true),
        (3, 2, false),
        (3, 2, true),
        (5, 1, true),
    ] {
        let input = Buf::random([2, 7, 9, 70], 3, k as u64 + s as u64);
        let [n, h, w, c] = [2, 7usize.div_ceil(s), 9usize.div_ceil(s), 70];
        let base = Buf::random([n, h, w, c], 0, 99);
        let mut pooled = vec![0.0; n * h * w * c];
        let mut summed = base.data.clone();
        let (pool, pool_acc): (PoolFn, PoolFn) = if max {
            (max_pool, max_pool_accumulate)
        } else {
            (avg_pool, avg_pool_accumulate)
        };
        pool(input.view(), k, s, NhwcMut::new(&mut pooled, [n, h, w, c]));
        pool_acc(input.view(), k, s, NhwcMut::new(&mut summed, [n, h, w, c]));
        for ((got, p), b) in summed.iter().zip(&pooled).zip(&base.data) {
            assert_eq!(*got, p + b, "k{k} s{s} max {max}");
        }
    }
}
