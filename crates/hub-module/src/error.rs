//! Errors of opening a module. Every variant names the file and what is wrong.

use std::path::PathBuf;

/// Why a module could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("{path}: no such file or folder")]
    NotFound { path: PathBuf },

    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{path}: not a TF1 Hub module or SavedModel: it has no saved_model.pb \
         (point the tool at the folder that holds saved_model.pb and variables/, or at the .tar.gz)"
    )]
    NotAModule { path: PathBuf },

    #[error(
        "{path}: unsupported hub module format {format} with required features [{features}]; \
         only format 3 with no required features exists"
    )]
    UnsupportedFormat {
        path: PathBuf,
        format: i32,
        features: String,
    },

    #[error("{path}: malformed protobuf ({what}): {source}")]
    MalformedProto {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: prost::DecodeError,
    },

    #[error("{path}: {problem}")]
    Malformed { path: PathBuf, problem: String },

    #[error("{path}: refused ({what}): {source}")]
    TooLargeProto {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: tf_proto::BoundedDecodeError,
    },

    #[error("{archive}: unsafe archive entry {entry:?}: {problem}")]
    UnsafeArchiveEntry {
        archive: PathBuf,
        entry: String,
        problem: String,
    },

    #[error(
        "{archive}: extracting would write more than {limit} bytes; \
         the archive is corrupt or a decompression bomb (raise the limit if it is genuine)"
    )]
    ArchiveTooLarge { archive: PathBuf, limit: u64 },

    #[error("{archive}: not a readable gzip-compressed tar archive: {source}")]
    BadArchive {
        archive: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Bundle(#[from] tensor_bundle::BundleError),
}
