//! Arithmetic kernels of the AmoebaNet forward pass, NHWC float32.
//!
//! This crate owns the arithmetic: a GEMM by weights packed at load time
//! ([`PackedWeights`], [`gemm_packed`]: AVX-512, AVX2+FMA or plain-Rust
//! microkernels, picked at run time, that read NHWC pixels in place; or, for weights made by
//! [`PackedWeights::new_bf16`], the bf16 GEMM of `bf16.rs` on AMX or AVX512-BF16) behind the
//! pointwise, im2col and dense convolutions, the
//! hand-written depthwise and pooling loops, TF's SAME/VALID padding rules and
//! batch-norm folding. It does not own the network topology or any file format.
//!
//! Tensors are passed as [`Nhwc`]/[`NhwcMut`] views whose pixels may be
//! strided, so an op can read from or write into a channel slice of a
//! concatenation buffer. Shape mismatches are programming errors and panic.
//! Kernels are parallel with rayon (in the current pool) and allocate only in
//! the caller-reusable im2col `scratch` of [`conv2d_with`].

mod batch_norm;
mod bf16;
mod conv;
mod depthwise;
mod elementwise;
mod packed;
mod padding;
mod pool;
mod simd;
mod view;

#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

pub use batch_norm::{batch_norm_scale_shift, fold_batch_norm};
pub use bf16::{from_bf16, to_bf16, Bf16Engine};
pub use conv::{
    conv2d, conv2d_with, dense, pointwise, pointwise_accumulate, pointwise_with, ConvGeom,
};
pub use depthwise::depthwise;
pub use elementwise::{add, add_assign, batch_norm, copy, global_mean, relu};
pub use packed::{gemm_packed, LhsRows, PackedWeights};
pub use padding::{output_size, Padding};
pub use pool::{avg_pool, avg_pool_accumulate, max_pool, max_pool_accumulate, subsample2};
pub use view::{Nhwc, NhwcMut};
