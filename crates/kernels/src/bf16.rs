//! The bfloat16 GEMM: weights rounded to bf16 once at load, activations rounded as a task
//! packs them, products summed in f32.
//!
//! Two engines, picked at run time ([`Bf16Engine::detect`]):
//! - **AMX** (`tdpbf16ps` on 16x32 by 32x16 tiles, eight tile registers; Sapphire Rapids and
//!   later): the microkernel owns a 32x32 block of the output as four accumulator tiles.
//!   Linux hands out the 8 KiB tile state only to a process that asked
//!   (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`), asked once here; the
//!   instructions are written as inline assembly, since Rust's AMX intrinsics are unstable.
//! - **AVX512-BF16** (`vdpbf16ps`: 16 lanes, each adding a pair of products): an 8x32 block in
//!   sixteen zmm accumulators.
//!
//! Both read the same layouts. Weights ([`Bf16Weights`]): panels of 32 output columns, K in
//! pairs ("VNNI" order), so that row `q` of a panel is `w[2q][j], w[2q+1][j]` for its 32
//! columns `j` (128 bytes: two AMX B-tile rows). Activations: a task copies its rows into a
//! bf16 buffer of `k_pad` values a row (ReLU applied, K padded with zeros to a multiple of
//! 32), so that the ragged NHWC pixel rows become one tile-loadable matrix. Rounding is to
//! nearest even, as `vcvtne2ps2bf16` does, except that it (and the dot-product instructions)
//! flush denormals to zero where [`to_bf16`] keeps them; no result changes by more than a
//! denormal.

use crate::packed::{DstPtr, LhsRows};
use rayon::prelude::*;

/// Output columns per weight panel (two AMX tiles of 16).
const PANEL: usize = 32;
/// Output rows per microkernel block (two AMX tiles of 16).
const BLOCK_ROWS: usize = 32;
/// K per AMX tile: 32 bf16 values, 64 bytes a row.
const K_TILE: usize = 32;
/// Row blocks per task at most: 512 rows of `k_pad` bf16 (at K = 2688, 2.7 MB: L2-sized).
const TASK_ROW_BLOCKS: usize = 16;
/// Below this many multiply-adds, waking the thread pool costs more than it saves.
const PARALLEL_MACS: usize = 1 << 18;

/// f32 to bf16, rounded to nearest even (NaN stays NaN).
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// bf16 to f32 (exact).
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// A `k x n` weight matrix in bf16, in the layout the microkernels read (module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Bf16Weights {
    k: usize,
    n: usize,
    k_pad: usize,
    data: Vec<u16>,
}

impl Bf16Weights {
    /// Rounds and packs the row-major `k x n` matrix `w`.
    ///
    /// Panics if `w.len() != k * n`.
    pub fn new(k: usize, n: usize, w: &[f32]) -> Bf16Weights {
        assert_eq!(w.len(), k * n, "weights must be k x n");
        let k_pad = k.next_multiple_of(K_TILE);
        let panels = n.div_ceil(PANEL);
        let mut data = vec![0u16; panels * k_pad * PANEL];
        if data.is_empty() {
            return Bf16Weights { k, n, k_pad, data };
        }
        // Panels are independent: packed in parallel (468M weights at load, full size).
        data.par_chunks_mut(k_pad * PANEL)
            .enumerate()
            .for_each(|(p, panel)| {
                let cols = PANEL.min(n - p * PANEL);
                for (i, row) in w.chunks_exact(n).enumerate() {
                    let src = &row[p * PANEL..][..cols];
                    let pairs = &mut panel[(i / 2) * PANEL * 2..][..PANEL * 2];
                    for (j, &x) in src.iter().enumerate() {
                        pairs[2 * j + i % 2] = to_bf16(x);
                    }
                }
            });
        Bf16Weights { k, n, k_pad, data }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 2
    }

    /// Panel `p`: `k_pad / 2` rows of 32 column pairs.
    fn panel(&self, p: usize) -> &[u16] {
        &self.data[p * self.k_pad * PANEL..][..self.k_pad * PANEL]
    }

    /// The rounded matrix back in row-major f32 (what the GEMM multiplies by).
    pub fn to_row_major(&self) -> Vec<f32> {
        let mut w = vec![0.0; self.k * self.n];
        for i in 0..self.k {
            for j in 0..self.n {
                let (p, jj) = (j / PANEL, j % PANEL);
                w[i * self.n + j] = from_bf16(self.panel(p)[((i / 2) * PANEL + jj) * 2 + i % 2]);
            }
        }
        w
    }
}

/// What runs a bf16 GEMM on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Engine {
    Amx,
    Avx512Bf16,
    /// No bf16 hardware: the plain-Rust reference (correct, slow; callers run f32 instead).
    Portable,
}

impl Bf16Engine {
    /// The best engine this CPU (and kernel) offers, found once per process.
    pub fn detect() -> Bf16Engine {
        static BEST: std::sync::OnceLock<Bf16Engine> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Bf16Engine::available()[0])
    }

    /// Every engine available here, best first (the portable one always).
    pub fn available() -> Vec<Bf16Engine> {
        let mut engines = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if x86::amx_usable() {
                engines.push(Bf16Engine::Amx);
            }
            if x86::avx512_bf16() {
                engines.push(Bf16Engine::Avx512Bf16);
            }
        }
        engines.push(Bf16Engine::Portable);
        engines
    }

    /// Whether this engine has bf16 hardware behind it.
    pub fn is_hardware(self) -> bool {
        self != Bf16Engine::Portable
    }

    pub fn name(self) -> &'static str {
        match self {
            Bf16Engine::Amx => "AMX-BF16",
            Bf16Engine::Avx512Bf16 => "AVX512-BF16",
            Bf16Engine::Portable => "portable",
        }
    }
}

/// [`crate::gemm_packed`] with bf16 weights: `dst[i][j] (+)= bf16(relu?(lhs_row(i))) @ w +
/// bias[j]`, summed in f32.
///
/// Panics if a row offset, `dst` or `bias` is out of bounds.
pub fn gemm_bf16<F: Fn(usize) -> usize + Sync>(
    lhs: &LhsRows<F>,
    w: &Bf16Weights,
    bias: &[f32],
    accumulate: bool,
    dst: &mut [f32],
    dst_rs: usize,
) {
    gemm_bf16_with(lhs, w, bias, accumulate, dst, dst_rs, Bf16Engine::detect())
}

/// [`gemm_bf16`] on a given engine (tests run every one the CPU has).
pub fn gemm_bf16_with<F: Fn(usize) -> usize + Sync>(
    lhs: &LhsRows<F>,
    w: &Bf16Weights,
    bias: &[f32],
    accumulate: bool,
    dst: &mut [f32],
    dst_rs: usize,
    engine: Bf16Engine,
) {
    // The engines' code assumes the CPU has their instructions: only detected ones come here.
    assert!(
        Bf16Engine::available().contains(&engine),
        "{} is not available on this CPU",
        engine.name()
    );
    let (m, n, k) = (lhs.rows, w.n, w.k);
    let Some(offsets) = crate::packed::checked_offsets(lhs, k, n, bias, dst, dst_rs) else {
        return;
    };
    let row_blocks = m.div_ceil(BLOCK_ROWS);
    let tasks = row_blocks.div_ceil(TASK_ROW_BLOCKS);
    let panels = n.div_ceil(PANEL);
    let threads = if m.saturating_mul(n).saturating_mul(k) < PARALLEL_MACS {
        1
    } else {
        rayon::current_num_threads()
    };
    // Enough tasks for every thread: split the columns when rows are few.
    let col_tasks = if tasks >= 2 * threads {
        1
    } else {
        panels.min((2 * threads).div_ceil(tasks))
    };
    let dst_ptr = DstPtr(dst.as_mut_ptr());
    let job = Job {
        data: lhs.data,
        offsets: &offsets,
        relu: lhs.relu,
        w,
        bias,
        accumulate,
        dst_rs,
        m,
        engine,
    };
    let task = |t: usize| {
        let (rt, ct) = (t / col_tasks, t % col_tasks);
        let rows =
            rt * TASK_ROW_BLOCKS * BLOCK_ROWS..m.min((rt + 1) * TASK_ROW_BLOCKS * BLOCK_ROWS);
        let cols = ct * panels / col_tasks..(ct + 1) * panels / col_tasks;
        let dst = dst_ptr;
        // SAFETY: `rows` x the columns of panels `cols` is this task's own block of `dst`,
        // whose bounds were checked above.
        unsafe { job.run(rows, cols, dst.0) };
    };
    if threads == 1 {
        (0..tasks * col_tasks).for_each(task);
    } else {
        (0..tasks * col_tasks).into_par_iter().for_each(task);
    }
}

/// One GEMM call's checked inputs.
struct Job<'a> {
    data: &'a [f32],
    offsets: &'a [usize],
    relu: bool,
    w: &'a Bf16Weights,
    bias: &'a [f32],
    accumulate: bool,
    dst_rs: usize,
    m: usize,
    engine: Bf16Engine,
}

impl Job<'_> {
    /// Output rows `rows` and weight panels `panels`.
    ///
    /// # Safety
    /// `dst` must be valid for rows `rows` (stride `dst_rs`) and the columns of `panels`,
    /// with no other thread touching that block.
    unsafe fn run(
        &self,
        rows: std::ops::Range<usize>,
        panels: std::ops::Range<usize>,
        dst: *mut f32,
    ) {
        let k_pad = self.w.k_pad;
        let blocks = rows.len().div_ceil(BLOCK_ROWS);
        // This task's rows in bf16, `k_pad` a row, zero past K and past the last row.
        let mut a = vec![0u16; blocks * BLOCK_ROWS * k_pad];
        for (r, i) in rows.clone().enumerate() {
            let src = &self.data[self.offsets[i]..][..self.w.k];
            pack_row(src, self.relu, &mut a[r * k_pad..][..k_pad], self.engine);
        }
        let mut c = [0f32; BLOCK_ROWS * PANEL];
        #[cfg(target_arch = "x86_64")]
        let amx = (self.engine == Bf16Engine::Amx).then(x86::TileConfig::load);
        for b in 0..blocks {
            let a_block = &a[b * BLOCK_ROWS * k_pad..][..BLOCK_ROWS * k_pad];
            let r0 = rows.start + b * BLOCK_ROWS;
            for p in panels.clone() {
                let panel = self.w.panel(p);
                match self.engine {
                    #[cfg(target_arch = "x86_64")]
                    Bf16Engine::Amx => x86::amx_block(a_block, panel, k_pad, &mut c),
                    #[cfg(target_arch = "x86_64")]
                    Bf16Engine::Avx512Bf16 => x86::avx512_block(a_block, panel, k_pad, &mut c),
                    _ => portable_block(a_block, panel, k_pad, &mut c),
                }
                self.store(&c, r0, p, dst);
            }
        }
        #[cfg(target_arch = "x86_64")]
        drop(amx);
    }

    /// Adds the bias to a 32x32 block and writes (or adds) its live part into `dst`.
    ///
    /// # Safety
    /// As [`Job::run`], for rows `r0..` and panel `p`.
    unsafe fn store(&self, c: &[f32; BLOCK_ROWS * PANEL], r0: usize, p: usize, dst: *mut f32) {
        let rows = BLOCK_ROWS.min(self.m - r0);
        let c0 = p * PANEL;
        let cols = PANEL.min(self.w.n - c0);
        let bias = &self.bias[c0..c0 + cols];
        for r in 0..rows {
            // SAFETY: row r0 + r < m and columns c0..c0 + cols < n lie in this task's block of
            // `dst`, inside the extent `gemm_bf16_with` checked.
            let out = std::slice::from_raw_parts_mut(dst.add((r0 + r) * self.dst_rs + c0), cols);
            let sums = &c[r * PANEL..][..cols];
            if self.accumulate {
                for ((o, s), b) in out.iter_mut().zip(sums).zip(bias) {
                    *o += s + b;
                }
            } else {
                for ((o, s), b) in out.iter_mut().zip(sums).zip(bias) {
                    *o = s + b;
                }
            }
        }
    }
}

/// One activation row into bf16 (ReLU first when asked); `dst` is `k_pad` long, its tail zero.
fn pack_row(src: &[f32], relu: bool, dst: &mut [u16], engine: Bf16Engine) {
    #[cfg(target_arch = "x86_64")]
    if engine != Bf16Engine::Portable {
        // SAFETY: the engine exists only where the CPU has AVX512-BF16 (AMX CPUs have it
        // too: `amx_usable` checks), and `dst` holds at least `src.len()` values.
        return unsafe { x86::pack_row(src, relu, dst) };
    }
    let _ = engine;
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = to_bf16(if relu { x.max(0.0) } else { x });
    }
}

/// The plain-Rust 32x32 block: the same sums in f32 (not fused, so the last bits may differ
/// from the hardware's).
fn portable_block(a: &[u16], panel: &[u16], k_pad: usize, c: &mut [f32; BLOCK_ROWS * PANEL]) {
    c.fill(0.0);
    for q in 0..k_pad / 2 {
        let row = &panel[q * PANEL * 2..][..PANEL * 2];
        for r in 0..BLOCK_ROWS {
            let (a0, a1) = (
                from_bf16(a[r * k_pad + 2 * q]),
                from_bf16(a[r * k_pad + 2 * q + 1]),
            );
            for j in 0..PANEL {
                c[r * PANEL + j] += a0 * from_bf16(row[2 * j]) + a1 * from_bf16(row[2 * j + 1]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{BLOCK_ROWS, K_TILE, PANEL};
    use std::arch::x86_64::*;

    /// AVX512-BF16, with AVX512F and BW for the loads and masked stores around it.
    pub(super) fn avx512_bf16() -> bool {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512bf16")
    }

    /// AMX-TILE and AMX-BF16 in CPUID, AVX512-BF16 (used to pack rows), and the kernel's
    /// permission to use the tile data state (asked for once here).
    pub(super) fn amx_usable() -> bool {
        // CPUID leaf 7 sub-leaf 0, EDX: bit 22 AMX-BF16, bit 24 AMX-TILE.
        let leaf7 = __cpuid_count(7, 0);
        let cpu = (leaf7.edx >> 22) & 1 == 1 && (leaf7.edx >> 24) & 1 == 1;
        cpu && avx512_bf16() && request_tile_permission()
    }

    /// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: 0 on success. Without it the
    /// first tile instruction raises SIGILL.
    #[cfg(not(target_os = "linux"))]
    fn request_tile_permission() -> bool {
        // Only Linux is known to need (and to have) this request; elsewhere AMX is not used.
        false
    }

    #[cfg(target_os = "linux")]
    fn request_tile_permission() -> bool {
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let ret: i64;
        // SAFETY: arch_prctl with ARCH_REQ_XCOMP_PERM only asks the kernel to allow a state
        // component for this process; it reads and writes no memory of ours. `syscall`
        // clobbers rcx and r11, declared.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => ret,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret == 0
    }

    /// The tile configuration of the microkernel, loaded for the lifetime of the value
    /// (one GEMM task on one thread) and released at its drop.
    pub(super) struct TileConfig(());

    /// Palette 1; tiles 0-7 all 16 rows of 64 bytes: C tiles 0-3 (16x16 f32), A tiles 4-5
    /// (16 rows x 32 bf16), B tiles 6-7 (16 K pairs x 16 columns x 2 bf16).
    #[repr(C, align(64))]
    struct Config([u8; 64]);

    impl TileConfig {
        pub(super) fn load() -> TileConfig {
            let mut cfg = Config([0; 64]);
            cfg.0[0] = 1;
            for t in 0..8 {
                cfg.0[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
                cfg.0[48 + t] = 16; // rows
            }
            // SAFETY: only constructed where `amx_usable` said yes (the engine is AMX); the
            // config is a valid palette-1 layout, 64 bytes, 64-byte aligned.
            unsafe {
                std::arch::asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
            }
            TileConfig(())
        }
    }

    impl Drop for TileConfig {
        fn drop(&mut self) {
            // SAFETY: releases the tile state this value configured.
            unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
        }
    }

    /// `c = a_block @ panel` (32 rows x 32 columns, K = `k_pad`) with AMX tiles. Must run
    /// while a [`TileConfig`] is alive on this thread.
    pub(super) fn amx_block(
        a: &[u16],
        panel: &[u16],
        k_pad: usize,
        c: &mut [f32; BLOCK_ROWS * PANEL],
    ) {
        assert!(a.len() >= BLOCK_ROWS * k_pad && panel.len() >= k_pad * PANEL);
        let a_stride = k_pad * 2; // bytes between A rows
        let b_stride = PANEL * 4; // bytes between B rows (K pairs)
        let c_stride = PANEL * 4;
        // SAFETY: tiles were configured by the caller's TileConfig (16 rows x 64 bytes).
        // Every load stays within `a` (rows 0..32, bytes kb*64.. +64 of k_pad*2 a row) and
        // `panel` (pairs kb*16..+16, 128 bytes each), both checked above; the stores write
        // the 32x32 f32 `c`.
        unsafe {
            std::arch::asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
            let a_ptr = a.as_ptr() as *const u8;
            let b_ptr = panel.as_ptr() as *const u8;
            for kb in 0..k_pad / K_TILE {
                let a0 = a_ptr.add(kb * 64);
                let a1 = a0.add(16 * a_stride);
                let b0 = b_ptr.add(kb * 16 * b_stride);
                let b1 = b0.add(64);
                std::arch::asm!(
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    "tileloadd tmm5, [{a1} + {sa}*1]",
                    "tileloadd tmm6, [{b0} + {sb}*1]",
                    "tileloadd tmm7, [{b1} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a0 = in(reg) a0,
                    a1 = in(reg) a1,
                    b0 = in(reg) b0,
                    b1 = in(reg) b1,
                    sa = in(reg) a_stride,
                    sb = in(reg) b_stride,
                    options(nostack, readonly)
                );
            }
            let c_ptr = c.as_mut_ptr() as *mut u8;
            std::arch::asm!(
                "tilestored [{c0} + {s}*1], tmm0",
                "tilestored [{c1} + {s}*1], tmm1",
                "tilestored [{c2} + {s}*1], tmm2",
                "tilestored [{c3} + {s}*1], tmm3",
                c0 = in(reg) c_ptr,
                c1 = in(reg) c_ptr.add(64),
                c2 = in(reg) c_ptr.add(16 * c_stride),
                c3 = in(reg) c_ptr.add(16 * c_stride + 64),
                s = in(reg) c_stride,
                options(nostack)
            );
        }
    }

    /// `c = a_block @ panel` with `vdpbf16ps`, eight rows at a time.
    pub(super) fn avx512_block(
        a: &[u16],
        panel: &[u16],
        k_pad: usize,
        c: &mut [f32; BLOCK_ROWS * PANEL],
    ) {
        assert!(a.len() >= BLOCK_ROWS * k_pad && panel.len() >= k_pad * PANEL);
        for r0 in (0..BLOCK_ROWS).step_by(8) {
            // SAFETY: the engine exists only where the CPU has AVX512-BF16; bounds above.
            unsafe { avx512_rows(a, panel, k_pad, r0, c) };
        }
    }

    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn avx512_rows(
        a: &[u16],
        panel: &[u16],
        k_pad: usize,
        r0: usize,
        c: &mut [f32; BLOCK_ROWS * PANEL],
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; 8];
        let a_ptr = a.as_ptr().add(r0 * k_pad) as *const u32;
        let b_ptr = panel.as_ptr();
        for q in 0..k_pad / 2 {
            let b0: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(b_ptr.add(q * PANEL * 2) as *const _));
            let b1: __m512bh =
                std::mem::transmute(_mm512_loadu_si512(b_ptr.add(q * PANEL * 2 + 32) as *const _));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                // `a` is u16 data: its u32 pairs may be only 2-byte aligned.
                let pair = a_ptr.add(r * k_pad / 2 + q).read_unaligned();
                let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair as i32));
                acc_r[0] = _mm512_dpbf16_ps(acc_r[0], av, b0);
                acc_r[1] = _mm512_dpbf16_ps(acc_r[1], av, b1);
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let out = c.as_mut_ptr().add((r0 + r) * PANEL);
            _mm512_storeu_ps(out, acc_r[0]);
            _mm512_storeu_ps(out.add(16), acc_r[1]);
        }
    }

    /// One row to bf16 with `vcvtne2ps2bf16` (round to nearest even), ReLU first if asked.
    ///
    /// # Safety
    /// The CPU must have AVX512-BF16 and BW; `dst.len() >= src.len()`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn pack_row(src: &[f32], relu: bool, dst: &mut [u16]) {
        let zero = _mm512_setzero_ps();
        let n = src.len();
        let mut i = 0;
        while i < n {
            let left = n - i;
            let m_lo: __mmask16 = if left >= 16 {
                0xffff
            } else {
                (1u32 << left) as u16 - 1
            };
            let left_hi = left.saturating_sub(16);
            let m_hi: __mmask16 = if left_hi >= 16 {
                0xffff
            } else {
                ((1u32 << left_hi) - 1) as u16
            };
            let mut lo = _mm512_maskz_loadu_ps(m_lo, src.as_ptr().add(i));
            let mut hi = _mm512_maskz_loadu_ps(m_hi, src.as_ptr().add(i + 16.min(left)));
            if relu {
                lo = _mm512_max_ps(lo, zero);
                hi = _mm512_max_ps(hi, zero);
            }
            let packed: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
            let mask = if left >= 32 {
                u32::MAX
            } else {
                (1u64 << left) as u32 - 1
            };
            _mm512_mask_storeu_epi16(dst.as_mut_ptr().add(i) as *mut _, mask, packed);
            i += 32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(
            from_bf16(to_bf16(1.0 + 1.0 / 256.0)),
            1.0,
            "a tie rounds to even"
        );
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
        assert_eq!(from_bf16(to_bf16(-0.0)).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn empty_matrices_pack_and_multiply() {
        for (k, n) in [(0, 5), (5, 0), (0, 0)] {
            let w = Bf16Weights::new(k, n, &[]);
            assert_eq!(w.to_row_major(), Vec::<f32>::new());
            let a = vec![1.0; 3 * k];
            let lhs = LhsRows {
                data: &a,
                rows: 3,
                offset: |i| i * k,
                relu: false,
            };
            let bias = vec![0.5; n];
            let mut dst = vec![9.0; 3 * n];
            gemm_bf16(&lhs, &w, &bias, false, &mut dst, n);
            assert!(dst.iter().all(|&v| v == 0.5), "K = 0: the bias");
        }
    }

    #[test]
    fn packing_round_trips_the_rounded_values() {
        let (k, n) = (37, 45);
        let w = filled(k * n, 3);
        let packed = Bf16Weights::new(k, n, &w);
        let back = packed.to_row_major();
        for (a, b) in w.iter().zip(&back) {
            assert_eq!(from_bf16(to_bf16(*a)), *b);
        }
    }

    /// Every engine this CPU has against f32 sums of the bf16-rounded inputs, on ragged
    /// shapes, strided rows, ReLU and accumulation. Engines the CPU lacks are skipped
    /// (named on stderr), so this passes on any CPU.
    #[test]
    fn every_engine_matches_the_rounded_reference() {
        let engines = Bf16Engine::available();
        for missing in [Bf16Engine::Amx, Bf16Engine::Avx512Bf16] {
            if !engines.contains(&missing) {
                eprintln!("bf16: {} not on this CPU, not tested here", missing.name());
            }
        }
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 31, 33),
            (33, 64, 32),
            (70, 100, 97),
            (300, 448, 64),
            (17, 2688, 40),
        ] {
            for relu in [false, true] {
                for accumulate in [false, true] {
                    for &engine in &engines {
                        check(m, k, n, relu, accumulate, engine);
                    }
                }
            }
        }
    }

    fn check(m: usize, k: usize, n: usize, relu: bool, accumulate: bool, engine: Bf16Engine) {
        let stride = k + 3; // rows are strided, as NHWC channel slices are
        let a = filled(m * stride, 1);
        let w = filled(k * n, 2);
        let bias = filled(n, 4);
        let packed = Bf16Weights::new(k, n, &w);
        let wr = packed.to_row_major();
        let dst_rs = n + 2;
        let old = filled(m * dst_rs, 5);
        let mut dst = old.clone();
        let lhs = LhsRows {
            data: &a,
            rows: m,
            offset: |i| i * stride,
            relu,
        };
        gemm_bf16_with(&lhs, &packed, &bias, accumulate, &mut dst, dst_rs, engine);
        for i in 0..m {
            for j in 0..n {
                let mut sum = 0f64;
                for kk in 0..k {
                    let x = a[i * stride + kk];
                    let x = from_bf16(to_bf16(if relu { x.max(0.0) } else { x }));
                    sum += f64::from(x) * f64::from(wr[kk * n + j]);
                }
                let want =
                    sum as f32 + bias[j] + if accumulate { old[i * dst_rs + j] } else { 0.0 };
                let got = dst[i * dst_rs + j];
                let tol = 1e-5 * (k as f32).sqrt() * 4.0 + 1e-6 * want.abs();
                assert!(
                    (got - want).abs() <= tol,
                    "{engine:?} m{m} k{k} n{n} relu {relu} acc {accumulate}: [{i}][{j}] {got} vs {want}"
                );
            }
            // Columns past n are untouched.
            for j in n..dst_rs {
                assert_eq!(dst[i * dst_rs + j], old[i * dst_rs + j]);
            }
        }
    }
}
