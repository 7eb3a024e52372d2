//! Opening TF1 Hub modules without TensorFlow.
//!
//! Owns: reading a module folder or a `.tar.gz`/`.tgz` archive of one (safely: no links, no
//! escaping paths, a cap on extracted bytes), `tfhub_module.pb`, every MetaGraphDef of
//! `saved_model.pb` with its tags, signatures and the `image_module_info` attachment, telling a
//! hub module from a plain SavedModel, and access to the variables through
//! [`tensor_bundle::TensorBundle`].
//!
//! Does not own: what the graph or the variable names mean (crate `nasnet-genotype`), nor
//! the byte layout of the checkpoint (crate `tensor-bundle`).

mod archive;
mod error;
mod module;
mod signature;
mod summary;

pub use archive::{ArchiveLimits, DEFAULT_MAX_EXTRACTED_BYTES, MAX_ARCHIVE_ENTRIES};
pub use error::ModuleError;
pub use module::{
    cache_dir, cache_entries, clear_cache, set_archive_cache, CachedExtraction, GraphVariant,
    HubModule, ModuleFormat, CACHE_ENV, MAX_WEIGHTS_NOTE_BYTES,
};
pub use signature::{Signature, TensorSpec};
pub use summary::{ModuleSummary, VariableSummary, VariantSummary};
pub use tensor_bundle;
pub use tf_proto;
