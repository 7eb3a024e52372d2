//! Validated bundle entries: a `BundleEntryProto` checked against the header, its dtype,
//! its shape and the lengths of the data shards, so that reading can no longer fail on
//! anything but the data's checksum.

use std::collections::BTreeMap;
use std::path::Path;

use tf_proto::tensorflow::tensor_slice_proto::extent::HasLength;
use tf_proto::tensorflow::{BundleEntryProto, TensorShapeProto, TensorSliceProto};

use crate::dtype::{tf_dtype_name, DType};
use crate::error::BundleError;
use crate::slice::{check_cover, encode_slice_key, resolve_slice, TensorSlice};

/// Highest rank accepted; TensorFlow's own limit (`TensorShape::MaxDimensions`) is 254, but
/// no real weight has more than a handful of dimensions.
pub const MAX_RANK: usize = 32;
/// Most slices accepted for one partitioned tensor (the overlap check is quadratic).
pub const MAX_SLICES: usize = 4096;

/// Where one stored buffer is: which shard, and which bytes of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataLocation {
    pub shard_id: usize,
    pub offset: usize,
    pub size: usize,
    /// `Mask(crc32c(bytes as stored))`.
    pub masked_crc32c: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Storage {
    Plain(DataLocation),
    Partitioned(Vec<(TensorSlice, DataLocation)>),
}

/// One user tensor of the bundle (partitioned tensors appear once, under their full name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: DType,
    /// Full shape; empty for a scalar.
    pub shape: Vec<usize>,
    pub(crate) storage: Storage,
}

impl TensorEntry {
    /// Product of the dimensions (1 for a scalar). Checked at open not to overflow.
    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// `num_elements() × dtype.size_bytes()`: the length of [`crate::TensorBundle::tensor_bytes`].
    pub fn byte_len(&self) -> usize {
        self.num_elements() * self.dtype.size_bytes()
    }

    /// Whether the tensor is stored as several slices (a partitioned variable).
    pub fn is_partitioned(&self) -> bool {
        matches!(self.storage, Storage::Partitioned(_))
    }

    /// The stored slices of a partitioned tensor; empty for a plain one.
    pub fn slices(&self) -> Vec<&TensorSlice> {
        match &self.storage {
            Storage::Plain(_) => Vec::new(),
            Storage::Partitioned(parts) => parts.iter().map(|(s, _)| s).collect(),
        }
    }

    /// Where the bytes of a plain tensor are; `None` for a partitioned one.
    pub fn data_location(&self) -> Option<DataLocation> {
        match &self.storage {
            Storage::Plain(loc) => Some(*loc),
            Storage::Partitioned(_) => None,
        }
    }

    /// Every stored buffer of the tensor (one, or one per slice).
    pub(crate) fn locations(&self) -> Vec<DataLocation> {
        match &self.storage {
            Storage::Plain(loc) => vec![*loc],
            Storage::Partitioned(parts) => parts.iter().map(|(_, l)| *l).collect(),
        }
    }
}

/// A table entry whose dtype has no supported fixed-size layout (string, variant, complex,
/// quantized, ...). It is listed by [`crate::TensorBundle::unsupported`] and refused on read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedEntry {
    pub name: String,
    /// The raw `tensorflow.DataType` value.
    pub tf_dtype: i32,
}

impl UnsupportedEntry {
    /// A readable dtype name such as `DT_STRING (7)`.
    pub fn dtype_name(&self) -> String {
        tf_dtype_name(self.tf_dtype)
    }
}

/// What the entry checks need to know about the bundle.
pub(crate) struct Context<'a> {
    pub index_path: &'a Path,
    pub num_shards: usize,
    pub shard_lens: &'a [u64],
    pub shard_paths: &'a [std::path::PathBuf],
    /// Slice entries (keys starting with 0x00), still encoded.
    pub slice_values: &'a BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Either a readable tensor or one to list as unsupported.
pub(crate) enum Parsed {
    Tensor(TensorEntry),
    Unsupported(UnsupportedEntry),
}

impl Context<'_> {
    pub fn decode(&self, key: &str, value: &[u8]) -> Result<BundleEntryProto, BundleError> {
        decode_value(self.index_path, key, value, ".tensorflow.BundleEntryProto")
    }

    /// Validates one user entry (not a slice entry).
    pub fn parse(&self, name: &str, proto: &BundleEntryProto) -> Result<Parsed, BundleError> {
        let Some(dtype) = DType::from_tf(proto.dtype) else {
            return Ok(Parsed::Unsupported(UnsupportedEntry {
                name: name.to_owned(),
                tf_dtype: proto.dtype,
            }));
        };
        let shape = self.shape(name, proto.shape.as_ref(), dtype)?;
        let storage = if proto.slices.is_empty() {
            Storage::Plain(self.location(name, proto, dtype, &shape)?)
        } else {
            Storage::Partitioned(self.slices(name, proto, dtype, &shape)?)
        };
        Ok(Parsed::Tensor(TensorEntry {
            name: name.to_owned(),
            dtype,
            shape,
            storage,
        }))
    }

    /// A fully defined shape whose byte size fits in `isize`.
    fn shape(
        &self,
        name: &str,
        proto: Option<&TensorShapeProto>,
        dtype: DType,
    ) -> Result<Vec<usize>, BundleError> {
        // An absent shape message is TensorFlow's default: a scalar.
        let Some(proto) = proto else {
            return Ok(Vec::new());
        };
        let bad = |detail: String| BundleError::BadShape {
            path: self.index_path.to_owned(),
            name: name.to_owned(),
            detail,
        };
        if proto.unknown_rank {
            return Err(bad("unknown rank".into()));
        }
        if proto.dim.len() > MAX_RANK {
            return Err(bad(format!("rank {} exceeds {MAX_RANK}", proto.dim.len())));
        }
        let dims: Vec<i64> = proto.dim.iter().map(|d| d.size).collect();
        let shape = dims
            .iter()
            .map(|&d| {
                usize::try_from(d).map_err(|_| bad(format!("negative dimension in {dims:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let limit = isize::MAX as usize;
        let bytes = shape
            .iter()
            .try_fold(dtype.size_bytes(), |n, &d| n.checked_mul(d))
            .filter(|&n| n <= limit);
        match bytes {
            Some(_) => Ok(shape),
            None => Err(BundleError::ShapeOverflow {
                path: self.index_path.to_owned(),
                name: name.to_owned(),
                shape: dims,
                limit: limit as u64,
            }),
        }
    }

    /// Checks shard id, size against dtype × shape, and bounds within the shard.
    fn location(
        &self,
        name: &str,
        proto: &BundleEntryProto,
        dtype: DType,
        shape: &[usize],
    ) -> Result<DataLocation, BundleError> {
        let shard_id = usize::try_from(proto.shard_id)
            .ok()
            .filter(|&s| s < self.num_shards)
            .ok_or_else(|| BundleError::ShardOutOfRange {
                path: self.index_path.to_owned(),
                name: name.to_owned(),
                shard_id: proto.shard_id,
                num_shards: self.num_shards as i32,
            })?;
        // Cannot overflow: checked by `shape`.
        let expected = shape.iter().product::<usize>() * dtype.size_bytes();
        if usize::try_from(proto.size).ok() != Some(expected) {
            return Err(BundleError::SizeMismatch {
                path: self.index_path.to_owned(),
                name: name.to_owned(),
                size: proto.size,
                expected: expected as u64,
            });
        }
        let shard_len = self.shard_lens.get(shard_id).copied().unwrap_or(0);
        let offset = usize::try_from(proto.offset).ok().filter(|&o| {
            o.checked_add(expected)
                .is_some_and(|end| end as u64 <= shard_len)
        });
        let out_of_bounds = || BundleError::EntryOutOfBounds {
            path: self.shard_paths.get(shard_id).cloned().unwrap_or_default(),
            name: name.to_owned(),
            offset: proto.offset,
            size: proto.size,
            shard_len,
        };
        let offset = offset.ok_or_else(out_of_bounds)?;
        Ok(DataLocation {
            shard_id,
            offset,
            size: expected,
            masked_crc32c: proto.crc32c,
        })
    }

    /// Resolves every slice of a partitioned tensor and its stored slice entry.
    fn slices(
        &self,
        name: &str,
        proto: &BundleEntryProto,
        dtype: DType,
        shape: &[usize],
    ) -> Result<Vec<(TensorSlice, DataLocation)>, BundleError> {
        let bad = |detail: String| BundleError::BadSlices {
            path: self.index_path.to_owned(),
            name: name.to_owned(),
            detail,
        };
        if proto.slices.len() > MAX_SLICES {
            return Err(bad(format!(
                "{} slices (at most {MAX_SLICES} are accepted)",
                proto.slices.len()
            )));
        }
        let mut parts = Vec::with_capacity(proto.slices.len());
        for (i, slice_proto) in proto.slices.iter().enumerate() {
            let extents = raw_extents(slice_proto);
            let slice =
                resolve_slice(&extents, shape).map_err(|d| bad(format!("slice {i}: {d}")))?;
            let key = encode_slice_key(name.as_bytes(), &extents);
            let label = format!("{name} (slice {i})");
            let value = self.slice_values.get(&key).ok_or_else(|| {
                bad(format!(
                    "missing slice entry for slice {i} (key {key:02x?})"
                ))
            })?;
            let part = self.decode(&label, value)?;
            if part.dtype != proto.dtype || !part.slices.is_empty() {
                return Err(bad(format!(
                    "slice {i}'s entry has another dtype or is itself sliced"
                )));
            }
            let part_shape = self.shape(&label, part.shape.as_ref(), dtype)?;
            if part_shape != slice.length {
                return Err(bad(format!(
                    "slice {i}'s entry has shape {part_shape:?}, its extents say {:?}",
                    slice.length
                )));
            }
            let location = self.location(&label, &part, dtype, &part_shape)?;
            parts.push((slice, location));
        }
        let total = shape.iter().product();
        let slices: Vec<TensorSlice> = parts.iter().map(|(s, _)| s.clone()).collect();
        check_cover(&slices, total).map_err(bad)?;
        Ok(parts)
    }
}

/// A slice proto's extents as (start, length), with −1 for "whole dimension"
/// (`TensorSlice::TensorSlice(const TensorSliceProto&)`), which is what the key encodes.
fn raw_extents(proto: &TensorSliceProto) -> Vec<(i64, i64)> {
    proto
        .extent
        .iter()
        .map(|e| match e.has_length {
            Some(HasLength::Length(l)) => (e.start, l),
            None => (e.start, -1),
        })
        .collect()
}

/// 16 MiB: the most one index value may take decoded (a real entry is well under 1 KiB, a
/// partitioned one a few KiB); checked before decoding, so an entry of a hundred million
/// empty dimensions (2 bytes each on disk) is refused instead of allocated.
pub const MAX_DECODED_VALUE_BYTES: u64 = 16 << 20;

/// Decodes one index value as the message `full_name` under [`MAX_DECODED_VALUE_BYTES`].
pub(crate) fn decode_value<M: prost::Message + Default>(
    index_path: &std::path::Path,
    key: &str,
    value: &[u8],
    full_name: &str,
) -> Result<M, BundleError> {
    tf_proto::decode_bounded(value, full_name, MAX_DECODED_VALUE_BYTES).map_err(|e| match e {
        tf_proto::BoundedDecodeError::Malformed(source) => BundleError::Protobuf {
            path: index_path.to_owned(),
            key: key.to_owned(),
            source,
        },
        hostile => BundleError::HostileProtobuf {
            path: index_path.to_owned(),
            key: key.to_owned(),
            source: hostile,
        },
    })
}
