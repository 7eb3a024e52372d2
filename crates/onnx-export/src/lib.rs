//! The ONNX export of a NASNet-family network.
//!
//! Owns: turning a validated network plan ([`NetworkSpec`]) and its weights (any
//! [`WeightSource`], in TensorFlow layout) into an ONNX model ([`OnnxGraph`]), and writing it
//! as protobuf to any `Write` with the weights streamed one tensor at a time, embedded or as
//! ONNX external data ([`OnnxGraph::write`]). The ONNX protobuf types are generated from the
//! vendored `proto/onnx/onnx.proto` ([`onnx`]).
//!
//! The graph follows the plan exactly as the forward pass (`nasnet-forward`) runs it: input
//! `images` float32 NHWC `[N, H, W, 3]` in [0, 1] (dynamic batch, the hub signature),
//! transposed to NCHW and scaled by the module's `images * scale + offset`; TF's SAME padding
//! as explicit pads (the extra pixel at the bottom and right); average pools with
//! `count_include_pad = 0`; the factorized reduction's one-pixel shift as a pad and a strided
//! slice; ReLU before the convolutions that have one. Inference batch norm is folded into the
//! convolution before it (weights scaled, bias added) in f64 as the forward pass folds it:
//! one op fewer per layer, and every runtime would fuse it anyway. Outputs: `features`
//! `[N, D]` (the global average pool) and, for classification modules, `logits` `[N, classes]`.
//! Opset 17 of the default domain only, IR version 8.
//!
//! Does not own: reading module files or choosing where to write (crate `model-io`), running
//! the model (ONNX Runtime and others, checked by `cargo xtask check-onnx`).

mod error;
mod graph;
mod write;

pub use error::ExportError;
pub use graph::{FoldedBn, Initializer, OnnxGraph, Recipe};
pub use write::{append_metadata, Weights};

/// The generated ONNX protobuf types.
#[allow(clippy::all, missing_docs)]
pub mod onnx {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use nasnet_forward::WeightSource;
use nasnet_genotype::NetworkSpec;

/// The ONNX opset of the default domain the graph uses.
pub const OPSET: i64 = 17;

/// The ONNX IR version written (that of opset 17).
pub const IR_VERSION: i64 = 8;

/// A protobuf message may not reach 2 GiB, so a model whose weights would take it there must
/// keep them as external data.
pub const MAX_EMBEDDED_BYTES: u64 = (2 << 30) - (64 << 20);

/// Builds the ONNX graph of `spec` reading `weights` (every variable checked for its shape
/// now, so that writing cannot fail on one), with `metadata` as the model's metadata props.
pub fn build(
    spec: &NetworkSpec,
    weights: &dyn WeightSource,
    metadata: Vec<(String, String)>,
) -> Result<OnnxGraph, ExportError> {
    graph::Builder::new(spec, weights).build(metadata)
}
