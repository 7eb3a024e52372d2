//! A small bundle *writer* for tests and fuzz targets: it builds valid index tables and data
//! shards (optionally partitioned tensors, several shards, big-endian data, several data
//! blocks, restart intervals > 1) so tests can start from a valid bundle and corrupt it.
//!
//! Enabled by the crate feature `testing` (and always in this crate's own tests). It writes
//! what TensorFlow's `BundleWriter` and LevelDB's `TableBuilder` write, byte for byte in the
//! table framing, but is not meant for production checkpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;
use tf_proto::tensorflow::tensor_shape_proto::Dim;
use tf_proto::tensorflow::tensor_slice_proto::{extent::HasLength, Extent};
use tf_proto::tensorflow::{
    BundleEntryProto, BundleHeaderProto, TensorShapeProto, TensorSliceProto, VersionDef,
};

use crate::dtype::DType;
use crate::slice::{encode_slice_key, resolve_slice, TensorSlice};
use crate::table::{checksum, write_varint, BlockHandle, FOOTER_LEN, TABLE_MAGIC};

/// How the index table is laid out.
#[derive(Clone, Debug)]
pub struct TableOptions {
    /// Flush a data block once its entries reach this many bytes (TF: 262144).
    pub block_size: usize,
    /// Entries between restart points in data blocks (TF: 16; the index block uses 1).
    pub restart_interval: usize,
    /// Compression-type byte written in every block trailer (0 = none; 1 = Snappy, for
    /// error tests: the contents are not actually compressed). The CRC is still correct.
    pub block_type: u8,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            block_size: 262_144,
            restart_interval: 16,
            block_type: 0,
        }
    }
}

/// Builds one block: prefix-compressed entries, restart array, restart count.
struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    counter: usize,
    interval: usize,
    last_key: Vec<u8>,
}

impl BlockBuilder {
    fn new(interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            counter: 0,
            interval: interval.max(1),
            last_key: Vec::new(),
        }
    }

    fn add(&mut self, key: &[u8], value: &[u8]) {
        let mut shared = 0;
        if self.counter < self.interval {
            shared = common_prefix(&self.last_key, key);
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.counter = 0;
        }
        write_varint(&mut self.buf, shared as u64);
        write_varint(&mut self.buf, (key.len() - shared) as u64);
        write_varint(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key = key.to_vec();
        self.counter += 1;
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn finish(self) -> Vec<u8> {
        let mut out = self.buf;
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        out
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// LevelDB's `FindShortestSeparator`: a short key in `[start, limit)`.
pub fn shortest_separator(start: &[u8], limit: &[u8]) -> Vec<u8> {
    let i = common_prefix(start, limit);
    if i < start.len() && i < limit.len() {
        let byte = start[i];
        if byte < 0xff && byte + 1 < limit[i] {
            let mut out = start[..=i].to_vec();
            out[i] += 1;
            return out;
        }
    }
    start.to_vec()
}

/// LevelDB's `FindShortSuccessor`: a short key ≥ `key`.
pub fn short_successor(key: &[u8]) -> Vec<u8> {
    match key.iter().position(|&b| b != 0xff) {
        Some(i) => {
            let mut out = key[..=i].to_vec();
            out[i] += 1;
            out
        }
        None => key.to_vec(),
    }
}

fn write_block(out: &mut Vec<u8>, contents: &[u8], block_type: u8) -> BlockHandle {
    let handle = BlockHandle {
        offset: out.len() as u64,
        size: contents.len() as u64,
    };
    out.extend_from_slice(contents);
    let mut with_type = contents.to_vec();
    with_type.push(block_type);
    out.push(block_type);
    out.extend_from_slice(&checksum::masked_crc32c(&with_type).to_le_bytes());
    handle
}

/// Builds a whole table from rows sorted by key (as `TableBuilder` does).
pub fn build_table(rows: &[(Vec<u8>, Vec<u8>)], opts: &TableOptions) -> Vec<u8> {
    let mut out = Vec::new();
    let mut index = BlockBuilder::new(1);
    let mut block = BlockBuilder::new(opts.restart_interval);
    // (handle, last key) of a flushed block whose index key waits for the next key.
    let mut pending: Option<(BlockHandle, Vec<u8>)> = None;
    for (key, value) in rows {
        if let Some((handle, last)) = pending.take() {
            index.add(&shortest_separator(&last, key), &encode_handle(handle));
        }
        block.add(key, value);
        if block.buf.len() >= opts.block_size {
            let last = block.last_key.clone();
            let full = std::mem::replace(&mut block, BlockBuilder::new(opts.restart_interval));
            pending = Some((write_block(&mut out, &full.finish(), opts.block_type), last));
        }
    }
    if !block.is_empty() {
        let last = block.last_key.clone();
        pending = Some((
            write_block(&mut out, &block.finish(), opts.block_type),
            last,
        ));
    }
    if let Some((handle, last)) = pending {
        index.add(&short_successor(&last), &encode_handle(handle));
    }
    let metaindex = write_block(&mut out, &BlockBuilder::new(1).finish(), opts.block_type);
    let index_handle = write_block(&mut out, &index.finish(), opts.block_type);
    out.extend_from_slice(&footer(metaindex, index_handle));
    out
}

fn encode_handle(handle: BlockHandle) -> Vec<u8> {
    let mut v = Vec::new();
    handle.encode(&mut v);
    v
}

fn footer(metaindex: BlockHandle, index: BlockHandle) -> Vec<u8> {
    let mut f = Vec::with_capacity(FOOTER_LEN);
    metaindex.encode(&mut f);
    index.encode(&mut f);
    f.resize(40, 0);
    f.extend_from_slice(&(TABLE_MAGIC as u32).to_le_bytes());
    f.extend_from_slice(&((TABLE_MAGIC >> 32) as u32).to_le_bytes());
    f
}

/// One tensor to write. `data` is its full buffer, little-endian, C order.
#[derive(Clone, Debug)]
pub struct TestTensor {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
    /// Empty for a plain tensor; otherwise (start, length) extents per slice, length −1
    /// meaning the whole dimension (written as an extent without a length).
    pub slices: Vec<Vec<(i64, i64)>>,
}

/// The decoded content of a bundle before it is laid out: table rows (header included) and
/// shard bytes. Tests edit these to make corrupt bundles from valid ones.
#[derive(Clone, Debug, Default)]
pub struct BundleParts {
    pub rows: BTreeMap<Vec<u8>, Vec<u8>>,
    pub shards: Vec<Vec<u8>>,
}

impl BundleParts {
    /// The decoded entry under `key` (panics if absent: test helper).
    pub fn entry(&self, key: &[u8]) -> BundleEntryProto {
        BundleEntryProto::decode(self.rows[key].as_slice()).expect("valid entry")
    }

    pub fn set_entry(&mut self, key: &[u8], proto: &BundleEntryProto) {
        self.rows.insert(key.to_vec(), proto.encode_to_vec());
    }

    /// Decodes, edits and re-encodes the entry under `key`.
    pub fn edit_entry(&mut self, key: &[u8], edit: impl FnOnce(&mut BundleEntryProto)) {
        let mut proto = self.entry(key);
        edit(&mut proto);
        self.set_entry(key, &proto);
    }

    pub fn set_header(&mut self, header: &BundleHeaderProto) {
        self.rows.insert(Vec::new(), header.encode_to_vec());
    }

    /// The `.index` file bytes.
    pub fn index(&self, opts: &TableOptions) -> Vec<u8> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = self.rows.clone().into_iter().collect();
        build_table(&rows, opts)
    }

    /// Writes `<dir>/<name>.index` and the shards; returns the prefix `<dir>/<name>`.
    pub fn write(&self, dir: &Path, name: &str, opts: &TableOptions) -> std::io::Result<PathBuf> {
        let prefix = dir.join(name);
        let n = self.shards.len();
        std::fs::write(dir.join(format!("{name}.index")), self.index(opts))?;
        for (i, shard) in self.shards.iter().enumerate() {
            std::fs::write(crate::bundle::shard_path(&prefix, i, n), shard)?;
        }
        Ok(prefix)
    }
}

/// Collects tensors and lays them out like `BundleWriter` (+ `MergeBundles` for shards).
#[derive(Clone, Debug)]
pub struct BundleBuilder {
    tensors: Vec<TestTensor>,
    num_shards: usize,
    big_endian: bool,
    alignment: usize,
}

impl Default for BundleBuilder {
    fn default() -> Self {
        BundleBuilder {
            tensors: Vec::new(),
            num_shards: 1,
            big_endian: false,
            alignment: 1,
        }
    }
}

impl BundleBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a plain tensor. `data` must hold `shape` × `dtype` bytes, little-endian.
    pub fn tensor(mut self, name: &str, dtype: DType, shape: &[usize], data: &[u8]) -> Self {
        self.tensors.push(TestTensor {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            data: data.to_vec(),
            slices: Vec::new(),
        });
        self
    }

    /// Adds a partitioned tensor stored as the given slices of its full `data`.
    pub fn sliced(
        mut self,
        name: &str,
        dtype: DType,
        shape: &[usize],
        data: &[u8],
        slices: &[Vec<(i64, i64)>],
    ) -> Self {
        self.tensors.push(TestTensor {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            data: data.to_vec(),
            slices: slices.to_vec(),
        });
        self
    }

    /// Spreads tensors (and slices) round-robin over `n` data shards.
    pub fn num_shards(mut self, n: usize) -> Self {
        self.num_shards = n.max(1);
        self
    }

    /// Stores data big-endian and says so in the header.
    pub fn big_endian(mut self, yes: bool) -> Self {
        self.big_endian = yes;
        self
    }

    /// Pads each buffer's offset to a multiple of `n` (`data_alignment`).
    pub fn alignment(mut self, n: usize) -> Self {
        self.alignment = n.max(1);
        self
    }

    pub fn parts(&self) -> BundleParts {
        let mut parts = BundleParts {
            rows: BTreeMap::new(),
            shards: vec![Vec::new(); self.num_shards],
        };
        parts.set_header(&BundleHeaderProto {
            num_shards: self.num_shards as i32,
            endianness: i32::from(self.big_endian),
            version: Some(VersionDef {
                producer: 1,
                ..Default::default()
            }),
        });
        let mut next_shard = 0;
        for t in &self.tensors {
            if t.slices.is_empty() {
                let proto = self.store(&mut parts, &mut next_shard, t.dtype, &t.shape, &t.data);
                parts.set_entry(t.name.as_bytes(), &proto);
            } else {
                self.store_sliced(&mut parts, &mut next_shard, t);
            }
        }
        parts
    }

    /// Lays the bundle out and writes it under `dir` as `<dir>/<name>.*`.
    pub fn write(&self, dir: &Path, name: &str) -> std::io::Result<PathBuf> {
        self.parts().write(dir, name, &TableOptions::default())
    }

    fn store_sliced(&self, parts: &mut BundleParts, next_shard: &mut usize, t: &TestTensor) {
        let mut full = entry_proto(t.dtype, &t.shape);
        for extents in &t.slices {
            let slice = resolve_slice(extents, &t.shape).expect("valid test slice");
            let data = extract_slice(&t.data, &t.shape, &slice, t.dtype.size_bytes());
            let proto = self.store(parts, next_shard, t.dtype, &slice.length, &data);
            parts.set_entry(&encode_slice_key(t.name.as_bytes(), extents), &proto);
            full.slices.push(slice_proto(extents));
        }
        parts.set_entry(t.name.as_bytes(), &full);
    }

    /// Appends one buffer to the next shard and returns its entry.
    fn store(
        &self,
        parts: &mut BundleParts,
        next_shard: &mut usize,
        dtype: DType,
        shape: &[usize],
        data: &[u8],
    ) -> BundleEntryProto {
        let shard_id = *next_shard % self.num_shards;
        *next_shard += 1;
        let mut stored = data.to_vec();
        if self.big_endian && dtype.size_bytes() > 1 {
            stored
                .chunks_exact_mut(dtype.size_bytes())
                .for_each(<[u8]>::reverse);
        }
        let shard = &mut parts.shards[shard_id];
        shard.resize(shard.len().next_multiple_of(self.alignment), 0);
        let mut proto = entry_proto(dtype, shape);
        proto.shard_id = shard_id as i32;
        proto.offset = shard.len() as i64;
        proto.size = stored.len() as i64;
        proto.crc32c = checksum::masked_crc32c(&stored);
        shard.extend_from_slice(&stored);
        proto
    }
}

/// An entry with dtype and shape only.
pub fn entry_proto(dtype: DType, shape: &[usize]) -> BundleEntryProto {
    BundleEntryProto {
        dtype: dtype.to_tf() as i32,
        shape: Some(shape_proto(shape)),
        ..Default::default()
    }
}

pub fn shape_proto(shape: &[usize]) -> TensorShapeProto {
    TensorShapeProto {
        dim: shape
            .iter()
            .map(|&d| Dim {
                size: d as i64,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    }
}

/// A slice proto; length −1 becomes an extent without a length (the whole dimension).
pub fn slice_proto(extents: &[(i64, i64)]) -> TensorSliceProto {
    TensorSliceProto {
        extent: extents
            .iter()
            .map(|&(start, length)| Extent {
                start,
                has_length: (length != -1).then_some(HasLength::Length(length)),
            })
            .collect(),
    }
}

/// The dense C-order bytes of `slice` cut out of a full C-order buffer.
pub fn extract_slice(full: &[u8], shape: &[usize], slice: &TensorSlice, elem: usize) -> Vec<u8> {
    let count: usize = slice.length.iter().product();
    let mut out = Vec::with_capacity(count * elem);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..count {
        let mut flat = 0;
        for d in 0..shape.len() {
            flat = flat * shape[d] + slice.start[d] + index[d];
        }
        out.extend_from_slice(&full[flat * elem..(flat + 1) * elem]);
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < slice.length[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no RNG crate.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Recomputes every block trailer's checksum that can be found (best effort), so that a
/// corrupted index reaches the entry parser instead of stopping at "block checksum mismatch".
pub fn fix_checksums(index: &mut [u8]) {
    let Some(footer_at) = index.len().checked_sub(FOOTER_LEN) else {
        return;
    };
    let Some((meta, used)) = BlockHandle::decode(&index[footer_at..]) else {
        return;
    };
    let Some((handle, _)) = BlockHandle::decode(&index[footer_at + used..]) else {
        return;
    };
    reseal(index, meta);
    if !reseal(index, handle) {
        return;
    }
    let (start, size) = (handle.offset as usize, handle.size as usize);
    let block = index[start..start + size].to_vec();
    let Ok(rows) = crate::table::parse_block(Path::new("index"), 0, &block) else {
        return;
    };
    for (_, value) in rows {
        if let Some((h, _)) = BlockHandle::decode(&value) {
            reseal(index, h);
        }
    }
}

/// Rewrites one block's trailer CRC; false if the handle is out of bounds.
fn reseal(index: &mut [u8], handle: BlockHandle) -> bool {
    let Ok(start) = usize::try_from(handle.offset) else {
        return false;
    };
    let Ok(size) = usize::try_from(handle.size) else {
        return false;
    };
    let Some(end) = start.checked_add(size) else {
        return false;
    };
    if end.checked_add(5).is_none_or(|e| e > index.len()) {
        return false;
    }
    let crc = checksum::masked_crc32c(&index[start..=end]);
    index[end + 1..end + 5].copy_from_slice(&crc.to_le_bytes());
    true
}

/// The handle of the first data block of a valid index (for tests that edit it).
pub fn first_data_block(index: &[u8]) -> BlockHandle {
    let footer_at = index.len() - FOOTER_LEN;
    let (_, used) = BlockHandle::decode(&index[footer_at..]).expect("metaindex handle");
    let (handle, _) = BlockHandle::decode(&index[footer_at + used..]).expect("index handle");
    let block = &index[handle.offset as usize..(handle.offset + handle.size) as usize];
    let rows = crate::table::parse_block(Path::new("index"), 0, block).expect("index block");
    BlockHandle::decode(&rows[0].1).expect("data handle").0
}

/// Replaces the footer's index handle (keeping the metaindex handle and the magic).
pub fn set_index_handle(index: &mut [u8], handle: BlockHandle) {
    let footer_at = index.len() - FOOTER_LEN;
    let (meta, _) = BlockHandle::decode(&index[footer_at..]).expect("metaindex handle");
    let mut f = Vec::new();
    meta.encode(&mut f);
    handle.encode(&mut f);
    f.resize(40, 0);
    index[footer_at..footer_at + 40].copy_from_slice(&f);
}
