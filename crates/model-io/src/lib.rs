//! The model files of this toolkit.
//!
//! Owns: converting a hub module's variables to a safetensors file (TF names and layouts,
//! the network description, signatures and provenance in `__metadata__`, written to a
//! temporary file and renamed so no partial output is ever left), the exports built on it
//! (ONNX through crate `onnx-export`; a PyTorch `state_dict` in safetensors, [`export_torch`],
//! for `python/amoeba_torch`), and opening either a hub module or such a safetensors file as
//! a [`Model`]: a [`NetworkSpec`] plus weights.
//!
//! Does not own: the checkpoint's byte layout (`tensor-bundle`), the genotype's extraction
//! (`nasnet-genotype`), or running the network (`nasnet-forward`).

mod convert;
mod error;
mod export;
pub mod header;
mod model;
mod torch;
mod weights;

pub use convert::{convert, ConvertReport, Provenance};
pub use error::ModelError;
pub use export::{export_onnx, ExportReport};
pub use header::check_safetensors_bytes;
pub use model::{cache_note, weights_are_random, Model, ModelKind};
pub use torch::{export_torch, torch_keys, TorchExportReport, TORCH_FORMAT};
pub use weights::{ModuleWeights, SafetensorsWeights};

/// `__metadata__` keys written by [`convert`].
pub mod keys {
    /// The [`nasnet_genotype::NetworkSpec`] as JSON.
    pub const NETWORK: &str = "amoeba.network";
    /// The inference variant's signatures as JSON.
    pub const SIGNATURES: &str = "amoeba.signatures";
    /// File name of the source module.
    pub const SOURCE_FILE: &str = "amoeba.source.file";
    /// sha256 (hex) of the source checkpoint's data shards, in shard order.
    pub const SOURCE_SHA256: &str = "amoeba.source.checkpoint_sha256";
    /// `amoeba <version>`.
    pub const TOOL: &str = "amoeba.tool";
    /// Notes from extraction where variable names and graph disagreed (JSON list).
    pub const DISAGREEMENTS: &str = "amoeba.genotype.disagreements";
    /// The source module's note on its weights (its `amoeba_weights` attachment), when it
    /// has one: `random: ...` for the fixtures this project generates.
    pub const WEIGHTS: &str = "amoeba.weights";
}

pub use nasnet_genotype::NetworkSpec;
