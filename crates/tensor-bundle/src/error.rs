//! The one error type of the crate. Every variant names the file it is about, so a message
//! printed on its own still says where to look.

use std::path::PathBuf;

/// Why a bundle could not be opened or a tensor could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// `<prefix>.index` could not be opened or read.
    #[error(
        "cannot read checkpoint index {path}: {source}; pass the checkpoint prefix \
         (e.g. `<module>/variables/variables`), not a directory or a `.index`/`.data` file"
    )]
    MissingIndex {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `<prefix>.index` exists but is not a regular file, is over the size cap, or cannot
    /// be read.
    #[error("cannot read checkpoint index {path}: {source}")]
    UnreadableIndex {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A data shard `<prefix>.data-NNNNN-of-NNNNN` could not be opened or mapped.
    #[error(
        "cannot open data shard {path}: {source}; the checkpoint is incomplete \
         (copy every `.data-*` file next to the `.index`)"
    )]
    MissingShard {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A data shard exists but is not a regular file or cannot be mapped.
    #[error("cannot read data shard {path}: {source}")]
    UnreadableShard {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The index file is shorter than a table footer.
    #[error("{path} is too short to be a table ({len} bytes, a footer alone is 48): the file is truncated or not a checkpoint index")]
    TooShort { path: PathBuf, len: u64 },
    /// The footer does not end with LevelDB's table magic.
    #[error("{path}: bad table magic {found:#018x} (expected 0xdb4775248b80fb57): not a TensorFlow V2 checkpoint index, or the file is corrupt")]
    BadMagic { path: PathBuf, found: u64 },
    /// A block handle points outside the file.
    #[error("{path}: truncated block: {what} at offset {offset} with {size} bytes (+5 trailer) runs past the end of the {file_len}-byte file")]
    TruncatedBlock {
        path: PathBuf,
        what: &'static str,
        offset: u64,
        size: u64,
        file_len: u64,
    },
    /// A block's trailer checksum does not match its contents.
    #[error("{path}: block checksum mismatch in the block at offset {offset} (stored {stored:#010x}, computed {computed:#010x}): the index file is corrupt")]
    BlockChecksum {
        path: PathBuf,
        offset: u64,
        stored: u32,
        computed: u32,
    },
    /// A block is Snappy-compressed, which TensorFlow never writes for bundles.
    #[error("{path}: the block at offset {offset} is Snappy-compressed, which this reader does not support (TensorFlow writes bundle indexes uncompressed; re-save the checkpoint with TensorFlow)")]
    SnappyBlock { path: PathBuf, offset: u64 },
    /// A block trailer has a compression type other than none (0) or Snappy (1).
    #[error(
        "{path}: bad block type {kind} in the block at offset {offset} (expected 0 = uncompressed)"
    )]
    BadBlockType {
        path: PathBuf,
        offset: u64,
        kind: u8,
    },
    /// Entry framing inside a block (varints, prefix lengths, restarts, key order) is wrong.
    #[error("{path}: malformed table entry in the block at offset {offset}: {detail}")]
    MalformedEntry {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    /// The first key of the table is not the empty header key.
    #[error("{path}: the first key of the table is {first_key:?}, not the empty bundle-header key: not a V2 checkpoint index (a V1 checkpoint?)")]
    MissingHeader { path: PathBuf, first_key: String },
    /// The BundleHeaderProto has values this reader refuses.
    #[error("{path}: bad bundle header: {detail}")]
    BadHeader { path: PathBuf, detail: String },
    /// A value could not be decoded as its protobuf message.
    #[error("{path}: malformed protobuf in the value of key {key:?}: {source}")]
    Protobuf {
        path: PathBuf,
        key: String,
        source: prost::DecodeError,
    },
    /// A value that could not be walked, or whose decoding would exceed the per-entry cap.
    #[error("{path}: malformed protobuf in the value of key {key:?}: {source}")]
    HostileProtobuf {
        path: PathBuf,
        key: String,
        source: tf_proto::BoundedDecodeError,
    },
    /// The tensor's bytes do not match the checksum stored in its entry.
    #[error("{path}: checksum mismatch for tensor {name:?} (stored {stored:#010x}, computed {computed:#010x}): the data file is corrupt")]
    TensorChecksum {
        path: PathBuf,
        name: String,
        stored: u32,
        computed: u32,
    },
    /// An entry's `[offset, offset+size)` is not inside its data shard.
    #[error("{path}: tensor {name:?} at offset {offset} with {size} bytes lies beyond the end of the {shard_len}-byte shard: the data file is truncated")]
    EntryOutOfBounds {
        path: PathBuf,
        name: String,
        offset: i64,
        size: i64,
        shard_len: u64,
    },
    /// An entry's byte size is not element count × element size.
    #[error("{path}: tensor {name:?} has {size} bytes but its dtype and shape need {expected}")]
    SizeMismatch {
        path: PathBuf,
        name: String,
        size: i64,
        expected: u64,
    },
    /// The shape's element or byte count does not fit in memory-size arithmetic.
    #[error(
        "{path}: tensor {name:?} has shape {shape:?} whose size overflows (limit {limit} bytes)"
    )]
    ShapeOverflow {
        path: PathBuf,
        name: String,
        shape: Vec<i64>,
        limit: u64,
    },
    /// The shape is not a fully defined shape (negative dims, unknown rank, rank too high).
    #[error("{path}: tensor {name:?} has a bad shape: {detail}")]
    BadShape {
        path: PathBuf,
        name: String,
        detail: String,
    },
    /// An entry names a data shard that the header does not have.
    #[error("{path}: tensor {name:?} is in shard {shard_id}, but the header says there are {num_shards} shards")]
    ShardOutOfRange {
        path: PathBuf,
        name: String,
        shard_id: i32,
        num_shards: i32,
    },
    /// A partitioned tensor's slices are inconsistent or missing.
    #[error("{path}: partitioned tensor {name:?} has bad slices: {detail}")]
    BadSlices {
        path: PathBuf,
        name: String,
        detail: String,
    },
    /// The tensor's dtype has no fixed-size byte layout this reader supports.
    #[error("{path}: tensor {name:?} has dtype {dtype} which this reader does not support (only fixed-size numeric and bool dtypes are)")]
    UnsupportedDType {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    /// A tensor name (a table key) is not valid UTF-8.
    #[error("{path}: table key {key:?} is not a valid UTF-8 tensor name")]
    BadKey { path: PathBuf, key: String },
    /// No tensor with that name is in the bundle.
    #[error("{path}: no tensor named {name:?} in the checkpoint")]
    NotFound { path: PathBuf, name: String },
    /// The caller's output buffer has the wrong length.
    #[error("{path}: tensor {name:?} has {expected} bytes but the output buffer has {actual}")]
    BufferSize {
        path: PathBuf,
        name: String,
        expected: usize,
        actual: usize,
    },
}
