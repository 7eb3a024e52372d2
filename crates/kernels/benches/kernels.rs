//! Throughput of the kernels at AmoebaNet-A (F=448) shapes:
//! `cargo bench -p kernels`. Plain main (no criterion): each case is run
//! until ~0.5 s has passed and the best time is reported.

use kernels::*;
use std::time::{Duration, Instant};

/// Best wall time of `f` over repeated runs within a time budget.
fn best_time(mut f: impl FnMut()) -> Duration {
    f(); // warm-up: thread pool, page faults, gemm's packing buffers
    let (start, mut best, mut runs) = (Instant::now(), Duration::MAX, 0);
    while runs < 3 || (start.elapsed() < Duration::from_millis(500) && runs < 1000) {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
        runs += 1;
    }
    best
}

fn filled(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
        .collect()
}

fn bench_pointwise(hw: usize, cin: usize, cout: usize) {
    let input = filled(hw * hw * cin);
    let wts = PackedWeights::new(cin, cout, &filled(cin * cout));
    let bias = filled(cout);
    let mut out = vec![0.0; hw * hw * cout];
    let t = best_time(|| {
        let o = NhwcMut::new(&mut out, [1, hw, hw, cout]);
        pointwise(Nhwc::new(&input, [1, hw, hw, cin]), &wts, &bias, 1, o);
    });
    let gflops = 2.0 * (hw * hw * cin * cout) as f64 / t.as_secs_f64() / 1e9;
    println!(
        "pointwise  {hw:>3}x{hw:<3} {cin:>4} -> {cout:<4}  {:>8.3} ms  {gflops:>6.1} GFLOP/s",
        ms(t)
    );
}

/// The pointwise GEMM both ways (the `gemm` crate on row-major weights, no
/// ReLU, and [`gemm_packed`] on weights packed at load time, ReLU on input), with the weights warm in
/// cache and cold (cycling through copies worth 96 MiB, as a forward pass at
/// batch 1 touches each weight once).
fn bench_packed(batch: usize, hw: usize, cin: usize, cout: usize) {
    let m = batch * hw * hw;
    let input = filled(m * cin);
    let bias = filled(cout);
    let copies = ((96 << 20) / (4 * cin * cout)).max(1);
    let wts: Vec<Vec<f32>> = (0..copies).map(|_| filled(cin * cout)).collect();
    let packed: Vec<PackedWeights> = wts
        .iter()
        .map(|w| PackedWeights::new(cin, cout, w))
        .collect();
    let bf16: Vec<PackedWeights> = wts
        .iter()
        .map(|w| PackedWeights::new_bf16(cin, cout, w))
        .collect();
    let mut out = vec![0.0; m * cout];
    let flop = 2.0 * (m * cin * cout) as f64;
    for cold in [false, true] {
        let mut i = 0;
        let t_gemm = best_time(|| {
            i = if cold { (i + 1) % copies } else { 0 };
            gemm_crate(m, cout, cin, &mut out, &input, &wts[i]);
        });
        let t_packed = best_time(|| {
            i = if cold { (i + 1) % copies } else { 0 };
            let lhs = LhsRows {
                data: &input,
                rows: m,
                offset: |r| r * cin,
                relu: true,
            };
            gemm_packed(&lhs, &packed[i], &bias, false, &mut out, cout);
        });
        let t_bf16 = best_time(|| {
            i = if cold { (i + 1) % copies } else { 0 };
            let lhs = LhsRows {
                data: &input,
                rows: m,
                offset: |r| r * cin,
                relu: true,
            };
            gemm_packed(&lhs, &bf16[i], &bias, false, &mut out, cout);
        });
        let g = |t: Duration| flop / t.as_secs_f64() / 1e9;
        println!(
            "gemm {batch}x{hw:>3}x{hw:<3} {cin:>4} -> {cout:<4} {}  gemm crate {:>8.3} ms {:>6.1} GFLOP/s   packed {:>8.3} ms {:>6.1} GFLOP/s   bf16 ({}) {:>8.3} ms {:>6.1} GFLOP/s",
            if cold { "cold" } else { "warm" },
            ms(t_gemm), g(t_gemm), ms(t_packed), g(t_packed),
            kernels::Bf16Engine::detect().name(), ms(t_bf16), g(t_bf16)
        );
    }
}

/// `dst = lhs @ rhs` (row-major) with the `gemm` crate, both threads.
fn gemm_crate(m: usize, n: usize, k: usize, dst: &mut [f32], lhs: &[f32], rhs: &[f32]) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    // SAFETY: the assert above keeps every element addressed inside the slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        )
    }
}

fn bench_conv(hw: usize, c: usize, kh: usize, kw: usize) {
    let input = filled(hw * hw * c);
    let wts = PackedWeights::new(kh * kw * c, c, &filled(kh * kw * c * c));
    let bias = filled(c);
    let mut out = vec![0.0; hw * hw * c];
    let mut scratch = Vec::new();
    let geom = ConvGeom {
        kh,
        kw,
        stride: [1, 1],
        padding: Padding::Same,
    };
    let t = best_time(|| {
        let o = NhwcMut::new(&mut out, [1, hw, hw, c]);
        conv2d_with(
            Nhwc::new(&input, [1, hw, hw, c]),
            &wts,
            geom,
            &bias,
            true,
            &mut scratch,
            o,
        );
    });
    let gflops = 2.0 * (hw * hw * kh * kw * c * c) as f64 / t.as_secs_f64() / 1e9;
    println!(
        "conv2d {kh}x{kw} {hw:>3}x{hw:<3} {c:>4} -> {c:<4}  {:>8.3} ms  {gflops:>6.1} GFLOP/s",
        ms(t)
    );
}

fn bench_stem() {
    let input = filled(331 * 331 * 3);
    let wts = PackedWeights::new(27, 32, &filled(27 * 32));
    let bias = filled(32);
    let mut out = vec![0.0; 165 * 165 * 32];
    let t = best_time(|| {
        let o = NhwcMut::new(&mut out, [1, 165, 165, 32]);
        conv2d(
            Nhwc::new(&input, [1, 331, 331, 3]),
            &wts,
            3,
            3,
            [2, 2],
            Padding::Valid,
            &bias,
            o,
        );
    });
    let gflops = 2.0 * (165 * 165 * 27 * 32) as f64 / t.as_secs_f64() / 1e9;
    println!(
        "stem conv 3x3/2 331x331x3 -> 32  {:>8.3} ms  {gflops:>6.1} GFLOP/s",
        ms(t)
    );
}

fn bench_depthwise(hw: usize, c: usize, k: usize, s: usize) {
    let input = filled(hw * hw * c);
    let wts = filled(k * k * c);
    let o_hw = hw.div_ceil(s);
    let mut out = vec![0.0; o_hw * o_hw * c];
    let t = best_time(|| {
        let o = NhwcMut::new(&mut out, [1, o_hw, o_hw, c]);
        depthwise(Nhwc::new(&input, [1, hw, hw, c]), &wts, k, s, true, o);
    });
    let gflops = 2.0 * (o_hw * o_hw * k * k * c) as f64 / t.as_secs_f64() / 1e9;
    println!(
        "depthwise {k}x{k}/{s} {hw}x{hw}x{c}  {:>8.3} ms  {gflops:>6.1} GFLOP/s",
        ms(t)
    );
}

fn bench_pool(hw: usize, c: usize, s: usize, max: bool) {
    let input = filled(hw * hw * c);
    let o_hw = hw.div_ceil(s);
    let mut out = vec![0.0; o_hw * o_hw * c];
    let t = best_time(|| {
        let (i, o) = (
            Nhwc::new(&input, [1, hw, hw, c]),
            NhwcMut::new(&mut out, [1, o_hw, o_hw, c]),
        );
        if max {
            max_pool(i, 3, s, o)
        } else {
            avg_pool(i, 3, s, o)
        }
    });
    let bytes = 4.0 * (hw * hw * c + o_hw * o_hw * c) as f64;
    let name = if max { "max" } else { "avg" };
    println!(
        "{name}_pool 3x3/{s} {hw}x{hw}x{c}  {:>8.3} ms  {:>6.1} GB/s (in+out)",
        ms(t),
        bytes / t.as_secs_f64() / 1e9
    );
}

fn bench_add(hw: usize, c: usize) {
    let a = filled(hw * hw * c);
    let b = filled(hw * hw * c);
    let mut out = vec![0.0; hw * hw * c];
    let t = best_time(|| {
        let s = [1, hw, hw, c];
        add(
            Nhwc::new(&a, s),
            Nhwc::new(&b, s),
            NhwcMut::new(&mut out, s),
        );
    });
    let bytes = 12.0 * (hw * hw * c) as f64;
    println!(
        "add {hw}x{hw}x{c}  {:>8.3} ms  {:>6.1} GB/s",
        ms(t),
        bytes / t.as_secs_f64() / 1e9
    );
}

fn ms(t: Duration) -> f64 {
    t.as_secs_f64() * 1e3
}

/// `cargo bench -p kernels -- WORD...` runs only the groups named
/// (peak, pointwise, packed, conv, depthwise, pool, add).
fn wanted(group: &str) -> bool {
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    words.is_empty() || words.iter().any(|w| group.contains(w.as_str()))
}

fn main() {
    println!("rayon threads: {}", rayon::current_num_threads());
    #[cfg(target_arch = "x86_64")]
    if wanted("peak") {
        bench_peak();
    }
    if wanted("pointwise") {
        pointwise_group();
    }
    if wanted("packed") {
        bench_packed(1, 42, 448, 448);
        bench_packed(1, 21, 896, 896);
        bench_packed(1, 11, 1792, 1792);
        bench_packed(1, 11, 10752, 1792);
        bench_packed(8, 42, 448, 448);
        bench_packed(8, 11, 1792, 1792);
    }
    if wanted("conv") {
        conv_group();
    }
    if wanted("depthwise") {
        depthwise_group();
    }
    if wanted("pool") {
        pool_group();
    }
    if wanted("add") {
        bench_add(42, 1792);
    }
}

fn pointwise_group() {
    bench_pointwise(42, 448, 448);
    bench_pointwise(21, 896, 896);
    bench_pointwise(11, 1792, 1792);
    bench_pointwise(42, 1792, 448);
    bench_pointwise(83, 112, 112);
}

fn conv_group() {
    bench_conv(42, 112, 1, 7);
    bench_conv(42, 112, 7, 1);
    bench_stem();
}

fn depthwise_group() {
    for s in [1, 2] {
        for k in [3, 5, 7] {
            bench_depthwise(42, 448, k, s);
        }
    }
    bench_depthwise(11, 1792, 5, 1);
    bench_depthwise(83, 112, 7, 1);
}

fn pool_group() {
    for s in [1, 2] {
        bench_pool(42, 448, s, false);
        bench_pool(42, 448, s, true);
    }
}

/// 12 independent chains of 16-lane FMAs: the core's FMA throughput, i.e.
/// the GFLOP/s ceiling for the GEMM numbers above. Intrinsics, because with
/// plain arrays LLVM interchanges the loops into one serial chain per lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_chains(iters: usize, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm512_set1_ps(0.999), _mm512_set1_ps(1e-3));
    let mut acc = [_mm512_set1_ps(seed); 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    let total = acc
        .iter()
        .fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v));
    _mm512_reduce_add_ps(total)
}

#[cfg(target_arch = "x86_64")]
fn bench_peak() {
    if !std::is_x86_feature_detected!("avx512f") {
        return;
    }
    let iters = 20_000_000;
    let flops = 2.0 * 16.0 * 12.0 * iters as f64;
    let run = || {
        let t = Instant::now();
        // SAFETY: avx512f was detected above.
        let (n, seed) = std::hint::black_box((iters, 1.0));
        std::hint::black_box(unsafe { fma_chains(n, seed) });
        t.elapsed()
    };
    let one = (0..3).map(|_| run()).min().unwrap();
    let both = (0..3)
        .map(|_| {
            let t = Instant::now();
            rayon::join(run, run);
            t.elapsed()
        })
        .min()
        .unwrap();
    println!(
        "peak FMA 1 thread   {:>6.1} GFLOP/s",
        flops / one.as_secs_f64() / 1e9
    );
    println!(
        "peak FMA 2 threads  {:>6.1} GFLOP/s",
        2.0 * flops / both.as_secs_f64() / 1e9
    );
}
