//! Photo sets at dataset scale, for `amoeba classify` and `amoeba eval`.
//!
//! Owns, in the order a run uses them:
//! - [`inputs`]: the photos of a run, from files, folders (walked, sorted) and list files,
//!   in one stable order, each with the key its ground truth and records are matched by;
//! - [`Shard`]: a deterministic contiguous split `K/N` of that order, so that shard outputs
//!   concatenated in shard order are the unsharded run's output;
//! - [`stream`]: photos preprocessed by a bounded pool of threads while the caller runs the
//!   previous batch, delivered in order, at most a window of them held at once;
//! - [`truth`]: ground-truth files (`filename class` per line, class a 1-based ImageNet index
//!   or a WordNet id);
//! - [`records`]: one JSON object per photo (JSON Lines), and reading a partial file back to
//!   resume a run;
//! - [`report`]: top-1/top-5 tallies per class, their merge across shards and the JSON report;
//! - [`features`]: many photos' feature vectors into one safetensors file, spilled to disk.
//!
//! Does not own: decoding and resizing (crate `preprocess`, called through a function the
//! caller passes), the network, or how results are printed (the binary).

pub mod features;
pub mod inputs;
pub mod records;
pub mod report;
mod shard;
pub mod stream;
pub mod truth;

pub use inputs::{Photo, PhotoList};
pub use shard::{Shard, ShardError};
