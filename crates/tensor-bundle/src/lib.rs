//! Reader for TensorFlow V2 checkpoints ("tensor bundles"), written from the format
//! description alone: no TensorFlow, no C++.
//!
//! **Owns:** the `<prefix>.index` table (LevelDB's table format: footer, block handles,
//! prefix-compressed entries, restart arrays, masked-CRC32C block trailers), the
//! `BundleHeaderProto` and `BundleEntryProto` values in it, the data shards
//! `<prefix>.data-NNNNN-of-NNNNN` (memory-mapped at open), tensor checksums, element types
//! ([`DType`]), endianness, and partitioned tensors (slices, their `ordered_code` keys, and
//! their assembly into one full tensor).
//!
//! **Does not own:** graphs, signatures or hub modules (see `hub-module`), nor what a
//! variable name *means*; names are returned exactly as stored.
//!
//! Nothing read from a file is trusted: block handles, varints, prefix lengths, shapes,
//! offsets and sizes are all checked (with checked arithmetic) against the files' lengths
//! when the bundle is opened, so that reading can only fail on a checksum mismatch. No input
//! makes this crate panic.
//!
//! ```no_run
//! # fn main() -> Result<(), tensor_bundle::BundleError> {
//! let bundle = tensor_bundle::TensorBundle::open("module/variables/variables".as_ref())?;
//! for entry in bundle.entries() {
//!     let bytes = bundle.tensor_bytes(&entry.name)?; // little-endian, C order, CRC checked
//!     println!("{} {} {:?} {}", entry.name, entry.dtype, entry.shape, bytes.len());
//! }
//! # Ok(()) }
//! ```
//!
//! **Unsupported dtypes** (string, variant, complex, quantized, float8, ...) do not stop a
//! bundle from opening: such entries are left out of [`TensorBundle::entries`], listed by
//! [`TensorBundle::unsupported`], and refused by [`TensorBundle::tensor_bytes`] with
//! [`BundleError::UnsupportedDType`] naming the tensor.
//!
//! **Memory maps:** data shards are mapped read-only; like every mmap-based reader this
//! assumes nobody truncates or rewrites the files while the bundle is open.

mod bundle;
mod dtype;
mod entry;
mod error;
pub mod slice;
pub mod table;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use bundle::{shard_path, BundleHeader, Endianness, TensorBundle};
pub use dtype::{tf_dtype_name, DType};
pub use entry::{DataLocation, TensorEntry, UnsupportedEntry, MAX_RANK, MAX_SLICES};
pub use error::BundleError;
pub use slice::TensorSlice;
pub use table::checksum;
