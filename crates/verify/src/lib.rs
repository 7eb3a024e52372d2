//! Verification of a forward pass against TensorFlow's golden outputs.
//!
//! Owns: reading a golden safetensors file (`images`, `logits`, `features`,
//! `cell_output/<scope>`), the comparison rules (tolerance, top-k agreement), and the report
//! with its PASS/FAIL verdict. Does not own: running the network (`nasnet-forward`) or
//! making goldens (TensorFlow, through `cargo xtask golden`).
//!
//! The default bar, per tensor: `max |ours - golden| <= atol * max(1, max |golden|)`
//! (plus `rtol * |golden|` per element when `rtol` is set), and for logits the same top-5
//! classes in the same order for every image.

mod compare;
mod golden;

pub use compare::{verify, Comparison, Options, Report, TopK};
pub use golden::{Golden, GoldenError};
