//! A dense owned NHWC tensor, the unit the network passes between cells, and the per-thread
//! pool its buffers are recycled through.
//!
//! Why a pool: a forward pass at batch 1 makes about 0.9 GB of activation buffers of a few
//! MB each (hundreds of MB at batch 8). Fresh from the allocator, each page of them is a
//! page fault and a kernel-side clear (~8% of the pass, `perf`, 2026-11-25); recycled, they
//! cost nothing, and a buffer that the next kernel overwrites entirely need not be zeroed
//! ([`Tensor::for_overwrite`]).

use kernels::{Nhwc, NhwcMut};
use std::cell::{Cell, RefCell};

/// A dense float32 tensor in NHWC order. Dropped during a forward pass on this thread, it
/// returns its buffer to this thread's pool (see [`release_pooled_buffers`]); dropped
/// anywhere else, it is freed.
#[derive(Debug, PartialEq)]
pub struct Tensor {
    pub data: Vec<f32>,
    pub shape: [usize; 4],
}

impl Clone for Tensor {
    /// A copy in a buffer from the pool (a derived `clone` would allocate afresh, and the
    /// copy would then join the pool at its drop, one more buffer every pass).
    fn clone(&self) -> Tensor {
        let mut t = Tensor::for_overwrite(self.shape);
        if t.data.len() == self.data.len() {
            t.data.copy_from_slice(&self.data);
        } else {
            // `data` is public: a tensor whose data does not fill its shape is cloned as is.
            t.data = self.data.clone();
        }
        t
    }
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: [usize; 4]) -> Tensor {
        let mut t = Tensor::for_overwrite(shape);
        t.data.fill(0.0);
        t
    }

    /// A tensor whose values are unspecified (but initialized: left over from an earlier
    /// tensor, or zero), for a kernel that writes every element before any is read.
    pub fn for_overwrite(shape: [usize; 4]) -> Tensor {
        let len = shape.iter().product();
        let data = POOL
            .try_with(|p| p.borrow_mut().take(len))
            .ok()
            .flatten()
            .unwrap_or_else(|| vec![0.0; len]);
        Tensor { data, shape }
    }

    /// Wraps data; `None` when the length does not match the shape.
    pub fn from_vec(data: Vec<f32>, shape: [usize; 4]) -> Option<Tensor> {
        (data.len() == shape.iter().product::<usize>()).then_some(Tensor { data, shape })
    }

    /// Images `range` of the batch, as a new tensor.
    ///
    /// Panics if `range` is not within the batch.
    pub fn batch_range(&self, range: std::ops::Range<usize>) -> Tensor {
        let [_, h, w, c] = self.shape;
        let per = h * w * c;
        let mut t = Tensor::for_overwrite([range.len(), h, w, c]);
        t.data
            .copy_from_slice(&self.data[range.start * per..range.end * per]);
        t
    }

    pub fn view(&self) -> Nhwc<'_> {
        Nhwc::new(&self.data, self.shape)
    }

    pub fn view_mut(&mut self) -> NhwcMut<'_> {
        NhwcMut::new(&mut self.data, self.shape)
    }

    pub fn channels(&self) -> usize {
        self.shape[3]
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        // Only a thread that runs passes takes buffers back out of its pool: a tensor dropped
        // outside a pass (a caller's input batch, outputs made on a worker and dropped by
        // the caller) would otherwise pile up in a pool nothing draws from, batch after
        // batch (issue 19: ~6 MB more peak RSS per photo classified).
        if PASS_DEPTH.try_with(Cell::get).unwrap_or(0) == 0 {
            return;
        }
        let data = std::mem::take(&mut self.data);
        // During thread teardown the pool may be gone: the buffer is then simply freed.
        let _ = POOL.try_with(|p| p.borrow_mut().give(data));
    }
}

/// Marks the current thread as running a forward pass while it lives: tensors dropped
/// meanwhile go back to this thread's pool. Nests.
pub(crate) struct InPass(());

impl InPass {
    pub(crate) fn enter() -> InPass {
        let _ = PASS_DEPTH.try_with(|d| {
            if d.get() == 0 {
                let _ = POOL.try_with(|p| p.borrow_mut().generation += 1);
            }
            d.set(d.get() + 1)
        });
        InPass(())
    }
}

impl Drop for InPass {
    /// At the end of the outermost pass, the pool keeps only the buffers this pass used, so
    /// that it holds at most one pass's working set however many passes run.
    fn drop(&mut self) {
        let _ = PASS_DEPTH.try_with(|d| {
            d.set(d.get().saturating_sub(1));
            if d.get() == 0 {
                let _ = POOL.try_with(|p| p.borrow_mut().keep_this_generation());
            }
        });
    }
}

/// Frees the buffers this thread's pool holds (the pool refills as tensors are dropped).
pub fn release_pooled_buffers() {
    let _ = POOL.try_with(|p| p.borrow_mut().clear());
}

/// Bytes this thread's pool holds now.
pub fn pooled_bytes() -> usize {
    POOL.try_with(|p| p.borrow().bytes).unwrap_or(0)
}

thread_local! {
    /// How many [`InPass`] guards this thread holds.
    static PASS_DEPTH: Cell<u32> = const { Cell::new(0) };
    static POOL: RefCell<BufferPool> = const { RefCell::new(BufferPool::new()) };
}

/// Most bytes a thread's pool keeps; more are freed, largest first. A pass's working set
/// (all live activations at once) is ~0.1 GB at batch 1 and under 1 GB at batch 8.
const POOL_MAX_BYTES: usize = 2 << 30;

/// Buffers at least this size are pooled; smaller ones are cheap to allocate.
const POOL_MIN_LEN: usize = 1 << 12;

/// Free buffers, each reused for a request of at least half its capacity (so a large buffer
/// does not end up holding a small tensor while a large one is allocated anew).
struct BufferPool {
    /// Each buffer with the generation (pass) that last gave it back.
    free: Vec<(Vec<f32>, u64)>,
    /// Sum of the capacities in `free`, in bytes.
    bytes: usize,
    /// The current (or last) outermost pass on this thread.
    generation: u64,
}

impl BufferPool {
    const fn new() -> BufferPool {
        BufferPool {
            free: Vec::new(),
            bytes: 0,
            generation: 0,
        }
    }

    /// Frees every buffer that the current generation did not give back.
    fn keep_this_generation(&mut self) {
        let generation = self.generation;
        self.free.retain(|(_, g)| *g == generation);
        self.bytes = self.free.iter().map(|(v, _)| v.capacity() * 4).sum();
    }

    /// The smallest free buffer of capacity `len..=2*len`, made `len` long (values left
    /// over, zeros past its old length).
    fn take(&mut self, len: usize) -> Option<Vec<f32>> {
        if len < POOL_MIN_LEN {
            return None;
        }
        let (i, _) = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, (v, _))| v.capacity() >= len && v.capacity() / 2 <= len)
            .min_by_key(|(_, (v, _))| v.capacity())?;
        let (mut v, _) = self.free.swap_remove(i);
        self.bytes -= v.capacity() * 4;
        v.resize(len, 0.0);
        Some(v)
    }

    fn give(&mut self, v: Vec<f32>) {
        if v.len() < POOL_MIN_LEN {
            return;
        }
        self.bytes += v.capacity() * 4;
        self.free.push((v, self.generation));
        while self.bytes > POOL_MAX_BYTES {
            let Some((i, _)) = self
                .free
                .iter()
                .enumerate()
                .max_by_key(|(_, (v, _))| v.capacity())
            else {
                break;
            };
            let (v, _) = self.free.swap_remove(i);
            self.bytes -= v.capacity() * 4;
        }
    }

    fn clear(&mut self) {
        self.free.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_buffer_is_reused_and_zeros_are_zero() {
        release_pooled_buffers();
        let _pass = InPass::enter();
        let shape = [1, 16, 16, 100];
        let mut a = Tensor::for_overwrite(shape);
        a.data.fill(7.0);
        let ptr = a.data.as_ptr();
        drop(a);
        assert_eq!(pooled_bytes(), 25600 * 4);
        let b = Tensor::for_overwrite([1, 16, 16, 90]);
        assert_eq!(b.data.as_ptr(), ptr, "same buffer");
        assert_eq!(b.data.len(), 23040);
        drop(b);
        let z = Tensor::zeros(shape);
        assert!(z.data.iter().all(|&v| v == 0.0));
        drop(z);
        // Far smaller requests do not take a large buffer.
        let small = Tensor::for_overwrite([1, 8, 8, 100]);
        assert_ne!(small.data.as_ptr(), ptr);
        release_pooled_buffers();
        assert_eq!(pooled_bytes(), 0);
    }

    #[test]
    fn a_tensor_dropped_outside_a_pass_is_freed_not_pooled() {
        release_pooled_buffers();
        drop(Tensor::zeros([1, 16, 16, 100]));
        assert_eq!(pooled_bytes(), 0);
        {
            let _outer = InPass::enter();
            {
                let _inner = InPass::enter();
            }
            // Still inside the outer pass: pooled.
            drop(Tensor::zeros([1, 16, 16, 100]));
            assert_eq!(pooled_bytes(), 25600 * 4);
        }
        let outside = Tensor::from_vec(vec![0.0; 25600], [1, 16, 16, 100]);
        drop(outside);
        assert_eq!(pooled_bytes(), 25600 * 4, "the pass is over: freed");
        release_pooled_buffers();
    }

    #[test]
    fn a_pass_keeps_only_the_buffers_it_used() {
        release_pooled_buffers();
        {
            let _pass = InPass::enter();
            drop(Tensor::zeros([1, 16, 16, 100]));
            drop(Tensor::zeros([1, 8, 8, 100]));
        }
        assert_eq!(pooled_bytes(), (25600 + 6400) * 4);
        {
            let _pass = InPass::enter();
            // Takes the large buffer back and returns it; the small one stays unused.
            drop(Tensor::zeros([1, 16, 16, 100]));
        }
        assert_eq!(pooled_bytes(), 25600 * 4, "the unused buffer was freed");
        release_pooled_buffers();
    }

    #[test]
    fn a_clone_takes_its_buffer_from_the_pool() {
        release_pooled_buffers();
        let _pass = InPass::enter();
        let a = Tensor::zeros([1, 16, 16, 100]);
        drop(Tensor::zeros([1, 16, 16, 100]));
        let pooled = pooled_bytes();
        let b = a.clone();
        assert_eq!(a, b);
        assert_eq!(pooled_bytes(), pooled - 25600 * 4);
        drop((a, b));
        release_pooled_buffers();
    }

    #[test]
    fn the_pool_is_bounded() {
        let mut pool = BufferPool::new();
        for _ in 0..3 {
            pool.give(vec![0.0; POOL_MAX_BYTES / 4 / 2]);
        }
        assert!(pool.bytes <= POOL_MAX_BYTES);
        assert_eq!(pool.free.len(), 2);
    }
}
