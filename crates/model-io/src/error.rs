//! Errors of opening and converting models.

use std::path::PathBuf;

/// Why a model could not be opened or converted.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Module(#[from] hub_module::ModuleError),

    #[error(transparent)]
    Bundle(#[from] hub_module::tensor_bundle::BundleError),

    #[error("{path}: {source}")]
    Genotype {
        path: PathBuf,
        #[source]
        source: nasnet_genotype::GenotypeError,
    },

    #[error(transparent)]
    Forward(#[from] nasnet_forward::ForwardError),

    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },

    #[error("{path}: cannot write: {source} (check that the folder exists and is writable)")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Output(#[from] safe_fs::OutputError),

    #[error("{path}: interrupted; nothing was written")]
    Interrupted { path: PathBuf },

    #[error("{path}: ONNX export: {source}")]
    Export {
        path: PathBuf,
        #[source]
        source: onnx_export::ExportError,
    },

    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
