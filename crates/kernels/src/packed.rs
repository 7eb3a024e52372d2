//! GEMM of NHWC activations by weights packed once, at load time.
//!
//! Every pointwise convolution of the network is `out[pixel] += relu?(in[pixel]) @ W`, with
//! `W` fixed for the life of the model. A general GEMM (the `gemm` crate) repacks `W` on
//! every call; at batch 1 each weight is used once per forward pass, so that repacking was
//! ~7% of the pass (`perf`, 2026-11-25). Here `W` is laid out once in [`PackedWeights`]
//! (column panels of [`NR`] floats, K rows each, so the microkernel reads it sequentially),
//! and the activations are not packed at all: the microkernel broadcasts from [`MR`] row
//! pointers, which may be any pixels (strided concat slices, a stride-2 subsample) and
//! applies the ReLU to the broadcast value, where it costs no FMA slot.
//!
//! Blocking (for a core with 32 KiB L1d and 1 MiB L2, Zen 4 here): a task owns a block of
//! up to `MC_PANELS * MR` rows and `NC_PANELS * NR` columns of the output; per K slice of
//! at most `KC` it streams the `KC x 256` weight block (≤ 448 KiB, L2) once per `MR` rows,
//! whose `MR x KC` activations (≤ 11 KiB) stay in L1. Tasks are independent, so rayon runs them on
//! every thread of the current pool.

use rayon::prelude::*;
use std::ops::Range;

/// Output columns per weight panel: four 16-float AVX-512 vectors.
pub const NR: usize = 64;
/// Output rows per microkernel call.
pub const MR: usize = 6;
/// K rows of the weights per pass over a block at most (448: every K above 448 in
/// AmoebaNet-A F448 is a multiple of it; other Ks are cut in equal slices).
const KC: usize = 448;
/// Column panels per task: a `KC x 256` weight block of 448 KiB, under half of L2.
const NC_PANELS: usize = 4;
/// Row panels per task at most (144 rows).
const MC_PANELS: usize = 24;
/// Below this many multiply-adds, waking the thread pool costs more than it saves.
const PARALLEL_MACS: usize = 1 << 18;

/// A `k x n` weight matrix in column panels: panel `p` holds columns `p*NR ..` (the last
/// panel is as wide as the columns left, rounded up to 16 with zero columns), stored
/// row-major `k x width` at offset `p * NR * k`.
///
/// Or, made by [`PackedWeights::new_bf16`], the same matrix rounded to bfloat16 in the
/// layout of the bf16 GEMM (crate::bf16), which [`gemm_packed`] then runs.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedWeights {
    k: usize,
    n: usize,
    data: Vec<f32>,
    /// Set for bf16 weights (`data` is then empty).
    bf16: Option<crate::bf16::Bf16Weights>,
}

impl PackedWeights {
    /// Packs the row-major `k x n` matrix `w` (`w[i*n + j]`).
    ///
    /// Panics if `w.len() != k * n`.
    pub fn new(k: usize, n: usize, w: &[f32]) -> PackedWeights {
        assert_eq!(w.len(), k * n, "weights must be k x n");
        let n_pad = n.next_multiple_of(16);
        let mut data = vec![0.0; k * n_pad];
        for p in 0..n_pad.div_ceil(NR) {
            let (c0, width) = (p * NR, NR.min(n_pad - p * NR));
            let cols = width.min(n - c0.min(n));
            let panel = &mut data[c0 * k..][..k * width];
            for (i, row) in panel.chunks_exact_mut(width).enumerate() {
                row[..cols].copy_from_slice(&w[i * n + c0..][..cols]);
            }
        }
        PackedWeights {
            k,
            n,
            data,
            bf16: None,
        }
    }

    /// Rounds `w` (row-major `k x n`) to bfloat16 for the bf16 GEMM.
    ///
    /// Panics if `w.len() != k * n`.
    pub fn new_bf16(k: usize, n: usize, w: &[f32]) -> PackedWeights {
        PackedWeights {
            k,
            n,
            data: Vec::new(),
            bf16: Some(crate::bf16::Bf16Weights::new(k, n, w)),
        }
    }

    /// Whether these are bf16 weights.
    pub fn is_bf16(&self) -> bool {
        self.bf16.is_some()
    }

    /// Rows (input channels).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns (output channels).
    pub fn n(&self) -> usize {
        self.n
    }

    fn panels(&self) -> usize {
        self.n.next_multiple_of(16).div_ceil(NR)
    }

    /// Panel `p`'s data (`k x width`, row-major) and width.
    fn panel(&self, p: usize) -> (&[f32], usize) {
        let width = NR.min(self.n.next_multiple_of(16) - p * NR);
        (&self.data[p * NR * self.k..][..self.k * width], width)
    }

    /// The matrix back in row-major `k x n` order (the inverse of [`PackedWeights::new`]; for
    /// bf16 weights, the rounded values).
    pub fn to_row_major(&self) -> Vec<f32> {
        if let Some(b) = &self.bf16 {
            return b.to_row_major();
        }
        let mut w = vec![0.0; self.k * self.n];
        for p in 0..self.panels() {
            let (panel, width) = self.panel(p);
            let c0 = p * NR;
            let cols = width.min(self.n - c0);
            for (i, row) in panel.chunks_exact(width).enumerate() {
                w[i * self.n + c0..][..cols].copy_from_slice(&row[..cols]);
            }
        }
        w
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
            + self
                .bf16
                .as_ref()
                .map_or(0, crate::bf16::Bf16Weights::bytes)
    }
}

/// The left-hand rows of a [`gemm_packed`]: row `i` is `data[offset(i)..][..k]`.
pub struct LhsRows<'a, F: Fn(usize) -> usize + Sync> {
    pub data: &'a [f32],
    pub rows: usize,
    pub offset: F,
    /// Apply `max(x, 0)` to every value as it is read.
    pub relu: bool,
}

/// The checked row offsets of a [`gemm_packed`] call.
struct LhsTable<'a> {
    data: &'a [f32],
    offsets: &'a [usize],
}

/// Checks a GEMM call's bias, output extent and left-hand rows (each offset computed once:
/// the kernels use exactly these values, so an `offset` that answered differently on a
/// second call could not lead them astray); `None` when there is nothing to compute
/// (no rows or no columns).
///
/// Panics if a row offset, `dst` or `bias` is out of bounds.
pub(crate) fn checked_offsets<F: Fn(usize) -> usize + Sync>(
    lhs: &LhsRows<F>,
    k: usize,
    n: usize,
    bias: &[f32],
    dst: &[f32],
    dst_rs: usize,
) -> Option<Vec<usize>> {
    let m = lhs.rows;
    assert_eq!(bias.len(), n, "bias length");
    if m == 0 || n == 0 {
        return None;
    }
    let extent = (m - 1).checked_mul(dst_rs).and_then(|e| e.checked_add(n));
    assert!(
        dst_rs >= n && extent.is_some_and(|e| e <= dst.len()),
        "dst too short"
    );
    let offsets = (0..m)
        .map(|i| {
            let off = (lhs.offset)(i);
            assert!(
                off.checked_add(k).is_some_and(|end| end <= lhs.data.len()),
                "lhs row {i} out of bounds"
            );
            off
        })
        .collect();
    Some(offsets)
}

/// Raw output pointer shared by the tasks, which write disjoint tiles.
#[derive(Clone, Copy)]
pub(crate) struct DstPtr(pub(crate) *mut f32);
// SAFETY: tasks write disjoint row x column blocks of the output (see `gemm_packed`).
unsafe impl Send for DstPtr {}
unsafe impl Sync for DstPtr {}

/// `dst[i][j] = lhs_row(i) @ w + bias[j]` for every row `i` and column `j < w.n()`, where
/// row `i` of `dst` starts at `i * dst_rs`; with `accumulate`, `dst[i][j] +=` that instead
/// (the second branch of a sum adds onto the first). The bias is added as the first K
/// slice is stored, so `dst` is not filled beforehand.
///
/// Panics if a row offset, `dst` or `bias` is out of bounds.
pub fn gemm_packed<F: Fn(usize) -> usize + Sync>(
    lhs: &LhsRows<F>,
    w: &PackedWeights,
    bias: &[f32],
    accumulate: bool,
    dst: &mut [f32],
    dst_rs: usize,
) {
    if let Some(b) = &w.bf16 {
        return crate::bf16::gemm_bf16(lhs, b, bias, accumulate, dst, dst_rs);
    }
    let kernel = pick_kernel(Isa::best(), lhs.relu);
    gemm_with(lhs, w, bias, accumulate, dst, dst_rs, kernel)
}

/// [`gemm_packed`] with a given microkernel (tests run every one the CPU has).
fn gemm_with<F: Fn(usize) -> usize + Sync>(
    lhs: &LhsRows<F>,
    w: &PackedWeights,
    bias: &[f32],
    accumulate: bool,
    dst: &mut [f32],
    dst_rs: usize,
    kernel: Kernel,
) {
    let (m, n, k) = (lhs.rows, w.n, w.k);
    let Some(offsets) = checked_offsets(lhs, k, n, bias, dst, dst_rs) else {
        return;
    };
    if k == 0 {
        return fill_rows(dst, dst_rs, m, bias, accumulate);
    }
    let rows_in = LhsTable {
        data: lhs.data,
        offsets: &offsets,
    };
    let threads = if m.saturating_mul(n).saturating_mul(k) < PARALLEL_MACS {
        1
    } else {
        rayon::current_num_threads()
    };
    let grid = TaskGrid::new(m.div_ceil(MR), w.panels(), threads);
    let dst_ptr = DstPtr(dst.as_mut_ptr());
    let task = |t: usize| {
        let (row_panels, panels) = grid.task(t);
        let rows = row_panels.start * MR..m.min(row_panels.end * MR);
        let dst = dst_ptr;
        // SAFETY: `rows` x `panels` is this task's own block of `dst`; bounds checked above.
        unsafe {
            run_block(
                &rows_in, w, bias, accumulate, rows, panels, dst.0, dst_rs, kernel,
            )
        };
    };
    if threads == 1 {
        (0..grid.tasks()).for_each(task);
    } else {
        (0..grid.tasks()).into_par_iter().for_each(task);
    }
}

/// The output split into tasks: `row_blocks x col_blocks` blocks of near-equal size (in
/// `MR`-row and `NR`-column panels), so that every thread gets the same amount of work.
struct TaskGrid {
    row_panels: usize,
    col_panels: usize,
    row_blocks: usize,
    col_blocks: usize,
}

impl TaskGrid {
    fn new(row_panels: usize, col_panels: usize, threads: usize) -> TaskGrid {
        let mut row_blocks = row_panels.div_ceil(MC_PANELS);
        let mut col_blocks = col_panels.div_ceil(NC_PANELS);
        if threads > 1 {
            // Few rows (stage 3 at batch 1): split the columns further instead.
            let want = 4 * threads;
            if row_blocks * col_blocks < want {
                col_blocks = col_panels.min(want.div_ceil(row_blocks));
            }
            // A task count that divides evenly between the threads.
            let per_col = row_blocks.next_multiple_of(threads);
            if per_col <= row_panels {
                row_blocks = per_col;
            }
        }
        TaskGrid {
            row_panels,
            col_panels,
            row_blocks,
            col_blocks,
        }
    }

    fn tasks(&self) -> usize {
        self.row_blocks * self.col_blocks
    }

    /// Task `t`'s row panels and column panels.
    fn task(&self, t: usize) -> (Range<usize>, Range<usize>) {
        let (i, j) = (t / self.col_blocks, t % self.col_blocks);
        let part =
            |total: usize, blocks: usize, b: usize| b * total / blocks..(b + 1) * total / blocks;
        (
            part(self.row_panels, self.row_blocks, i),
            part(self.col_panels, self.col_blocks, j),
        )
    }
}

/// `dst = bias` or `dst += bias` (a GEMM with K = 0).
fn fill_rows(dst: &mut [f32], dst_rs: usize, m: usize, bias: &[f32], accumulate: bool) {
    for row in dst.chunks_mut(dst_rs).take(m) {
        let row = &mut row[..bias.len()];
        if accumulate {
            row.iter_mut().zip(bias).for_each(|(o, b)| *o += b);
        } else {
            row.copy_from_slice(bias);
        }
    }
}

/// Where a microkernel call's `rows x cols` result goes: into `c` (row stride `ldc`), plus
/// `bias[j]` when `bias` is not null, added onto the old values when `load_c`.
struct Store {
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    bias: *const f32,
    load_c: bool,
}

/// The microkernel: `sum_k a_r[k] * b[k*bw + j]` for `r < rows`, `j < cols`, stored as
/// `Store` says.
type Kernel = unsafe fn(usize, &[*const f32; MR], *const f32, usize, &Store);

/// The microkernel families, best first.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Isa {
    Avx512,
    Avx2,
    Portable,
}

impl Isa {
    /// Found once per process: every GEMM call asks.
    fn best() -> Isa {
        static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Isa::available()[0])
    }

    /// Every family this CPU can run, best first (the portable one always).
    fn available() -> Vec<Isa> {
        let mut isas = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                isas.push(Isa::Avx512);
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                isas.push(Isa::Avx2);
            }
        }
        isas.push(Isa::Portable);
        isas
    }
}

/// The microkernel of `isa`, which the caller has checked the CPU supports.
fn pick_kernel(isa: Isa, relu: bool) -> Kernel {
    match (isa, relu) {
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, true) => avx512::kernel::<true>,
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, false) => avx512::kernel::<false>,
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, true) => avx2::kernel::<true>,
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx2, false) => avx2::kernel::<false>,
        (_, true) => portable_kernel::<true>,
        (_, false) => portable_kernel::<false>,
    }
}

/// One task: output rows `rows`, weight panels `panels`, all of K.
///
/// # Safety
/// `dst` must be valid for rows `rows` (stride `dst_rs`) and the columns of `panels`, with
/// no other thread touching that block; every offset in `lhs` must leave `k` values.
#[allow(clippy::too_many_arguments)]
unsafe fn run_block(
    lhs: &LhsTable,
    w: &PackedWeights,
    bias: &[f32],
    accumulate: bool,
    rows: Range<usize>,
    panels: Range<usize>,
    dst: *mut f32,
    dst_rs: usize,
    kernel: Kernel,
) {
    let (n, k) = (w.n, w.k);
    // Equal K slices of at most KC: 448 = one slice, not 384 + a short 64.
    let step = k.div_ceil(k.div_ceil(KC));
    for pc in (0..k).step_by(step) {
        let kc = step.min(k - pc);
        for r0 in rows.clone().step_by(MR) {
            let live = MR.min(rows.end - r0);
            // Pointers past the live rows repeat the last one; the kernel reads only `live`.
            let a: [*const f32; MR] = std::array::from_fn(|r| {
                let off = lhs.offsets[r0 + r.min(live - 1)];
                lhs.data.as_ptr().add(off + pc)
            });
            for p in panels.clone() {
                let (panel, width) = w.panel(p);
                let cols = width.min(n - p * NR);
                let b = panel.as_ptr().add(pc * width);
                let first = pc == 0;
                let store = Store {
                    c: dst.add(r0 * dst_rs + p * NR),
                    ldc: dst_rs,
                    rows: live,
                    cols,
                    bias: if first {
                        bias.as_ptr().add(p * NR)
                    } else {
                        std::ptr::null()
                    },
                    load_c: accumulate || !first,
                };
                kernel(kc, &a, b, width, &store);
            }
        }
    }
}

/// Plain-Rust microkernel for CPUs without AVX-512 (correct, not tuned).
///
/// # Safety
/// As [`Kernel`]: `a[r]` valid for `kc` reads, `b` for `kc` rows of `bw`, `out.c` for
/// `out.rows` rows of stride `out.ldc` and `out.cols` columns, `out.bias` (if not null) for
/// `out.cols` values.
unsafe fn portable_kernel<const RELU: bool>(
    kc: usize,
    a: &[*const f32; MR],
    b: *const f32,
    bw: usize,
    out: &Store,
) {
    let mut acc = [[0.0f32; NR]; MR];
    for kk in 0..kc {
        let brow = std::slice::from_raw_parts(b.add(kk * bw), bw);
        for r in 0..MR {
            let mut av = *a[r].add(kk);
            if RELU {
                av = av.max(0.0);
            }
            for (o, &bv) in acc[r][..bw].iter_mut().zip(brow) {
                *o += av * bv;
            }
        }
    }
    let bias = (!out.bias.is_null()).then(|| std::slice::from_raw_parts(out.bias, out.cols));
    for (r, acc_row) in acc.iter().enumerate().take(out.rows) {
        let crow = std::slice::from_raw_parts_mut(out.c.add(r * out.ldc), out.cols);
        for (j, (o, v)) in crow.iter_mut().zip(acc_row).enumerate() {
            let v = v + bias.map_or(0.0, |b| b[j]);
            *o = if out.load_c { *o + v } else { v };
        }
    }
}

/// `$f::<R, $relu>($args)` with the const `R` equal to the run-time live row count
/// `$rows` (1 to `MR`), so each row count gets its own register-resident tile.
#[cfg(target_arch = "x86_64")]
macro_rules! by_live_rows {
    ($rows:expr, $f:ident, $relu:ident, ($($arg:expr),*)) => {
        match $rows {
            6 => $f::<6, $relu>($($arg),*),
            5 => $f::<5, $relu>($($arg),*),
            4 => $f::<4, $relu>($($arg),*),
            3 => $f::<3, $relu>($($arg),*),
            2 => $f::<2, $relu>($($arg),*),
            _ => $f::<1, $relu>($($arg),*),
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Store, MR};
    use std::arch::x86_64::*;

    /// AVX-512 microkernel: `rows x bw` accumulators in registers (24 of 32 for a full
    /// 6 x 64 tile).
    ///
    /// # Safety
    /// The CPU has AVX-512F; pointers as for `portable_kernel`; `bw` is 16, 32, 48 or 64.
    pub(super) unsafe fn kernel<const RELU: bool>(
        kc: usize,
        a: &[*const f32; MR],
        b: *const f32,
        bw: usize,
        out: &Store,
    ) {
        by_live_rows!(out.rows, by_width, RELU, (kc, a, b, bw, out))
    }

    /// `R` live rows (the last row panel of a matrix whose rows are not a multiple of
    /// `MR` computes only those: at batch 1 stage 3 has 121 rows, 20 panels and one row).
    unsafe fn by_width<const R: usize, const RELU: bool>(
        kc: usize,
        a: &[*const f32; MR],
        b: *const f32,
        bw: usize,
        out: &Store,
    ) {
        match bw {
            64 => tile::<R, 4, RELU>(kc, a, b, out),
            48 => tile::<R, 3, RELU>(kc, a, b, out),
            32 => tile::<R, 2, RELU>(kc, a, b, out),
            _ => tile::<R, 1, RELU>(kc, a, b, out),
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const R: usize, const NV: usize, const RELU: bool>(
        kc: usize,
        a: &[*const f32; MR],
        b: *const f32,
        out: &Store,
    ) {
        let zero = _mm512_setzero_ps();
        let mut acc = [[zero; NV]; R];
        let bw = 16 * NV;
        for kk in 0..kc {
            let bp = b.add(kk * bw);
            let bv: [__m512; NV] = std::array::from_fn(|v| _mm512_loadu_ps(bp.add(16 * v)));
            for r in 0..R {
                let mut av = _mm512_set1_ps(*a[r].add(kk));
                if RELU {
                    av = _mm512_max_ps(av, zero);
                }
                for v in 0..NV {
                    acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
                }
            }
        }
        let masks: [__mmask16; NV] = std::array::from_fn(|v| {
            let lanes = out.cols.saturating_sub(16 * v).min(16);
            ((1u32 << lanes) - 1) as __mmask16
        });
        if !out.bias.is_null() {
            for v in 0..NV {
                let b = _mm512_maskz_loadu_ps(masks[v], out.bias.add(16 * v));
                for acc_row in acc.iter_mut() {
                    acc_row[v] = _mm512_add_ps(acc_row[v], b);
                }
            }
        }
        for (r, acc_row) in acc.iter().enumerate() {
            let crow = out.c.add(r * out.ldc);
            for (v, &sum) in acc_row.iter().enumerate() {
                let p = crow.add(16 * v);
                let sum = if out.load_c {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], p), sum)
                } else {
                    sum
                };
                _mm512_mask_storeu_ps(p, masks[v], sum);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Store, MR};
    use std::arch::x86_64::*;

    /// AVX2+FMA microkernel for CPUs without AVX-512: the panel in strips of 16 columns,
    /// `rows x 2` eight-float accumulators each (12 of the 16 registers for 6 rows).
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; pointers as for `portable_kernel`; `bw` is a multiple of 16.
    pub(super) unsafe fn kernel<const RELU: bool>(
        kc: usize,
        a: &[*const f32; MR],
        b: *const f32,
        bw: usize,
        out: &Store,
    ) {
        by_live_rows!(out.rows, strips, RELU, (kc, a, b, bw, out))
    }

    /// K rows per step: a 64-row slice of a 64-wide panel is 16 KiB and stays in L1 while
    /// its four strips are computed (strip by strip over all of K would stream the panel
    /// from L2 four times).
    const KB: usize = 64;

    #[target_feature(enable = "avx2,fma")]
    unsafe fn strips<const R: usize, const RELU: bool>(
        kc: usize,
        a: &[*const f32; MR],
        b: *const f32,
        bw: usize,
        out: &Store,
    ) {
        let zero = _mm256_setzero_ps();
        let live = (bw / 16).min(out.cols.div_ceil(16)).min(4);
        let mut acc = [[[zero; 2]; R]; 4];
        for k0 in (0..kc).step_by(KB) {
            let kn = KB.min(kc - k0);
            let ak: [*const f32; MR] = std::array::from_fn(|r| a[r].add(k0));
            for (s, acc_s) in acc.iter_mut().enumerate().take(live) {
                *acc_s = strip::<R, RELU>(kn, &ak, b.add(k0 * bw + 16 * s), bw, *acc_s);
            }
        }
        for (s, acc_s) in acc.iter().enumerate().take(live) {
            store::<R>(acc_s, out, 16 * s);
        }
    }

    /// `kn` K rows of one 16-column strip onto `acc`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn strip<const R: usize, const RELU: bool>(
        kn: usize,
        a: &[*const f32; MR],
        b: *const f32,
        bw: usize,
        mut acc: [[__m256; 2]; R],
    ) -> [[__m256; 2]; R] {
        let zero = _mm256_setzero_ps();
        for kk in 0..kn {
            let bp = b.add(kk * bw);
            let bv = [_mm256_loadu_ps(bp), _mm256_loadu_ps(bp.add(8))];
            for r in 0..R {
                let mut av = _mm256_set1_ps(*a[r].add(kk));
                if RELU {
                    av = _mm256_max_ps(av, zero);
                }
                for v in 0..2 {
                    acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
                }
            }
        }
        acc
    }

    /// Columns `c0..c0 + 16` of the tile into `out`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store<const R: usize>(acc: &[[__m256; 2]; R], out: &Store, c0: usize) {
        let mut acc = *acc;
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let masks: [__m256i; 2] = std::array::from_fn(|v| {
            let lanes = out.cols.saturating_sub(c0 + 8 * v).min(8) as i32;
            _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), lane)
        });
        if !out.bias.is_null() {
            for v in 0..2 {
                let bias = _mm256_maskload_ps(out.bias.add(c0 + 8 * v), masks[v]);
                for acc_row in acc.iter_mut() {
                    acc_row[v] = _mm256_add_ps(acc_row[v], bias);
                }
            }
        }
        for (r, acc_row) in acc.iter().enumerate() {
            let crow = out.c.add(r * out.ldc + c0);
            for (v, &sum) in acc_row.iter().enumerate() {
                let p = crow.add(8 * v);
                let sum = if out.load_c {
                    _mm256_add_ps(_mm256_maskload_ps(p, masks[v]), sum)
                } else {
                    sum
                };
                _mm256_maskstore_ps(p, masks[v], sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn reference(
        m: usize,
        k: usize,
        n: usize,
        a: &[f32],
        lda: usize,
        relu: bool,
        w: &[f32],
        c: &mut [f32],
        ldc: usize,
    ) {
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for kk in 0..k {
                    let x = a[i * lda + kk];
                    let x = if relu { x.max(0.0) } else { x };
                    s += x as f64 * w[kk * n + j] as f64;
                }
                c[i * ldc + j] += s as f32;
            }
        }
    }

    fn check(m: usize, k: usize, n: usize, relu: bool, accumulate: bool, kernel: Kernel) {
        let lda = k + 3;
        let ldc = n + 5;
        let a = filled(m * lda, 1);
        let w = filled(k * n, 2);
        let mut got = filled(m * ldc, 3);
        let mut want = got.clone();
        let packed = PackedWeights::new(k, n, &w);
        let lhs = LhsRows {
            data: &a,
            rows: m,
            offset: |i| i * lda,
            relu,
        };
        let bias = filled(n, 4);
        gemm_with(&lhs, &packed, &bias, accumulate, &mut got, ldc, kernel);
        for i in 0..m {
            for j in 0..n {
                let old = if accumulate { want[i * ldc + j] } else { 0.0 };
                want[i * ldc + j] = old + bias[j];
            }
        }
        reference(m, k, n, &a, lda, relu, &w, &mut want, ldc);
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - e).abs() <= 1e-4 * (1.0 + e.abs()) * (k as f32).sqrt(),
                "m{m} k{k} n{n} at {i}: {g} vs {e}"
            );
        }
    }

    #[test]
    fn matches_reference_on_edge_shapes() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (7, 3, 17),
            (13, 300, 70),
            (6, 257, 64),
            (100, 40, 130),
            (121, 520, 600),
            (10, 900, 70),
        ] {
            for isa in Isa::available() {
                for (relu, accumulate) in
                    [(false, false), (true, false), (false, true), (true, true)]
                {
                    check(m, k, n, relu, accumulate, pick_kernel(isa, relu));
                }
            }
        }
    }

    #[test]
    fn packing_round_trips() {
        for (k, n) in [(1, 1), (3, 17), (5, 64), (7, 130), (2, 200)] {
            let w = filled(k * n, 9);
            assert_eq!(PackedWeights::new(k, n, &w).to_row_major(), w, "{k}x{n}");
        }
    }

    #[test]
    fn portable_kernel_matches_reference() {
        let (k, n) = (37, 50);
        let a = filled(MR * k, 4);
        let w = PackedWeights::new(k, n, &filled(k * n, 5));
        let (panel, width) = w.panel(0);
        let ptrs: [*const f32; MR] = std::array::from_fn(|r| a[r * k..].as_ptr());
        let mut got = vec![7.0; MR * n];
        let bias = filled(n, 6);
        let store = Store {
            c: got.as_mut_ptr(),
            ldc: n,
            rows: MR,
            cols: n,
            bias: bias.as_ptr(),
            load_c: false,
        };
        // SAFETY: every pointer covers `k` values; `got` is MR x n; `bias` has n values.
        unsafe { portable_kernel::<true>(k, &ptrs, panel.as_ptr(), width, &store) };
        let mut want: Vec<f32> = (0..MR * n).map(|i| bias[i % n]).collect();
        reference(MR, k, n, &a, k, true, &filled(k * n, 5), &mut want, n);
        for (g, e) in got.iter().zip(&want) {
            assert!((g - e).abs() < 1e-4, "{g} vs {e}");
        }
    }

    #[test]
    fn strided_rows_are_gathered() {
        // Rows 0, 2, 4 of a 6-row matrix: a stride-2 subsample.
        let (k, n) = (5, 20);
        let a = filled(6 * k, 6);
        let w = filled(k * n, 7);
        let mut got = vec![0.0; 3 * n];
        let lhs = LhsRows {
            data: &a,
            rows: 3,
            offset: |i| 2 * i * k,
            relu: false,
        };
        gemm_packed(
            &lhs,
            &PackedWeights::new(k, n, &w),
            &[0.0; 20],
            false,
            &mut got,
            n,
        );
        let picked: Vec<f32> = (0..3).flat_map(|i| a[2 * i * k..][..k].to_vec()).collect();
        let mut want = vec![0.0; 3 * n];
        reference(3, k, n, &picked, k, false, &w, &mut want, n);
        for (g, e) in got.iter().zip(&want) {
            assert!((g - e).abs() < 1e-4, "{g} vs {e}");
        }
    }

    #[test]
    fn task_grid_covers_every_panel_once() {
        for (rows, cols, threads) in [
            (1, 1, 2),
            (21, 28, 2),
            (294, 7, 2),
            (2352, 7, 3),
            (5, 100, 2),
            (40, 3, 1),
        ] {
            let grid = TaskGrid::new(rows, cols, threads);
            let mut seen = vec![0u8; rows * cols];
            for t in 0..grid.tasks() {
                let (r, c) = grid.task(t);
                for i in r {
                    for j in c.clone() {
                        seen[i * cols + j] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "{rows}x{cols} on {threads}");
            if threads > 1 && rows * cols >= 4 * threads {
                assert_eq!(
                    grid.tasks() % threads,
                    0,
                    "{rows}x{cols}: uneven task count"
                );
            }
        }
    }

    #[test]
    fn offsets_are_read_once() {
        // An offset function that lies after the check must not reach the kernels.
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (m, k, n) = (20, 30, 40);
        let a = filled(m * k, 10);
        let w = filled(k * n, 11);
        let calls = AtomicUsize::new(0);
        let offset = |i: usize| {
            if calls.fetch_add(1, Ordering::Relaxed) < m {
                i * k
            } else {
                1 << 40
            }
        };
        let lhs = LhsRows {
            data: &a,
            rows: m,
            offset,
            relu: false,
        };
        let mut got = vec![0.0; m * n];
        gemm_packed(
            &lhs,
            &PackedWeights::new(k, n, &w),
            &vec![0.0; n],
            false,
            &mut got,
            n,
        );
        assert_eq!(calls.load(Ordering::Relaxed), m);
        let mut want = vec![0.0; m * n];
        reference(m, k, n, &a, k, false, &w, &mut want, n);
        for (g, e) in got.iter().zip(&want) {
            assert!((g - e).abs() < 1e-4, "{g} vs {e}");
        }
    }

    #[test]
    fn exact_size_buffers_suffice() {
        // dst ends at the last row's last column; the input at the last row's last value.
        let (m, k, n, lda, ldc) = (13, 37, 70, 50, 90);
        let a = filled((m - 1) * lda + k, 12);
        let w = filled(k * n, 13);
        let mut got = vec![0.0; (m - 1) * ldc + n];
        let lhs = LhsRows {
            data: &a,
            rows: m,
            offset: |i| i * lda,
            relu: true,
        };
        gemm_packed(
            &lhs,
            &PackedWeights::new(k, n, &w),
            &vec![0.5; n],
            false,
            &mut got,
            ldc,
        );
        let mut want = vec![0.0; got.len()];
        for i in 0..m {
            want[i * ldc..][..n].fill(0.5);
        }
        reference(m, k, n, &a, lda, true, &w, &mut want, ldc);
        for (g, e) in got.iter().zip(&want) {
            assert!((g - e).abs() < 1e-4, "{g} vs {e}");
        }
    }

    #[test]
    #[should_panic(expected = "dst too short")]
    fn an_output_extent_that_overflows_panics() {
        let w = PackedWeights::new(1, 1, &[1.0]);
        let lhs = LhsRows {
            data: &[1.0],
            rows: (1 << 32) + 1,
            offset: |_| 0,
            relu: false,
        };
        gemm_packed(&lhs, &w, &[0.0], false, &mut [0.0], 1 << 32);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn row_offset_past_the_data_panics() {
        let w = PackedWeights::new(4, 4, &[0.0; 16]);
        let lhs = LhsRows {
            data: &[0.0; 8],
            rows: 3,
            offset: |i| i * 4,
            relu: false,
        };
        gemm_packed(&lhs, &w, &[0.0; 4], false, &mut [0.0; 12], 4);
    }
}
