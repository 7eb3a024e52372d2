//! Every field of a real index table and of its bundle entries, truncated or corrupted.
//!
//! Starting from a fixture checkpoint: the index cut at every length; every byte flipped
//! (with and without its block's checksum repaired, so that corruption reaches the entry
//! parser and the protobuf decoder behind the CRC); and each `BundleEntryProto` field set to
//! hostile values. Nothing may panic; corrupt input must fail with a message naming the
//! file (and the tensor, for entry fields).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tensor_bundle::table::{checksum, read_table, write_varint, BlockHandle, TRAILER_LEN};
use tensor_bundle::{BundleError, TensorBundle};

const FIXTURE: &str = "../../fixtures/modules/amoebanet_a_n3_f8_feature_vector/variables";
const NAME: &str = "stem/conv0/weights";

fn fixture() -> (Vec<u8>, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let index = std::fs::read(dir.join("variables.index")).unwrap();
    (index, dir.join("variables.data-00000-of-00001"))
}

/// A folder holding `ckpt.index` (given) and the fixture's shard as `ckpt.data-…`.
fn bundle_dir(index: &[u8], shard: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ckpt.index"), index).unwrap();
    std::fs::copy(shard, dir.path().join("ckpt.data-00000-of-00001")).unwrap();
    dir
}

/// The first data block's handle (the first index-block entry's value).
fn first_data_block(index: &[u8]) -> BlockHandle {
    let path = Path::new("x.index");
    let rows = read_table(path, index).unwrap();
    assert!(!rows.is_empty());
    // The data blocks precede the metaindex and index blocks; the first starts at 0.
    let footer = &index[index.len() - 48..];
    let (_meta, used) = BlockHandle::decode(footer).unwrap();
    let (idx, _) = BlockHandle::decode(&footer[used..]).unwrap();
    let idx_block = &index[idx.offset as usize..(idx.offset + idx.size) as usize];
    // First index entry: shared=0, key length, value length, key, value (a handle).
    let (klen, a) = tensor_bundle::table::read_varint(&idx_block[1..], 5).unwrap();
    let (_vlen, b) = tensor_bundle::table::read_varint(&idx_block[1 + a..], 5).unwrap();
    let value = &idx_block[1 + a + b + klen as usize..];
    BlockHandle::decode(value).unwrap().0
}

/// Recomputes the masked CRC of the block at `handle` after its contents were edited.
fn reseal(index: &mut [u8], handle: BlockHandle) {
    let start = handle.offset as usize;
    let end = start + handle.size as usize;
    let crc = checksum::masked_crc32c(&index[start..=end]);
    index[end + 1..end + TRAILER_LEN].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn index_cut_at_every_length_fails_cleanly() {
    let (index, _) = fixture();
    let path = Path::new("cut.index");
    for len in 0..index.len() {
        let err = read_table(path, &index[..len]).expect_err("a cut index must not parse");
        assert!(err.to_string().contains("cut.index"), "{err}");
    }
}

#[test]
fn every_byte_flipped_fails_or_changes_nothing() {
    let (index, _) = fixture();
    let path = Path::new("flip.index");
    let good = read_table(path, &index).unwrap();
    for at in 0..index.len() {
        let mut bad = index.clone();
        bad[at] ^= 0x5a;
        // Unused footer padding is the only place a flip may go unnoticed.
        if let Ok(rows) = read_table(path, &bad) {
            assert_eq!(rows, good, "flip at {at} changed the table silently");
        }
    }
}

#[test]
fn corruption_behind_a_valid_checksum_reaches_the_parsers_without_panic() {
    let (index, shard) = fixture();
    let block = first_data_block(&index);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&shard, dir.path().join("ckpt.data-00000-of-00001")).unwrap();
    let prefix = dir.path().join("ckpt");
    // Every 5th byte keeps the test short; the mask hits varints, keys, protos and restarts.
    for at in (block.offset as usize..(block.offset + block.size) as usize).step_by(5) {
        let mut bad = index.clone();
        bad[at] ^= 0xa5;
        reseal(&mut bad, block);
        if read_table(Path::new("x"), &bad).is_err() {
            continue;
        }
        std::fs::write(dir.path().join("ckpt.index"), &bad).unwrap();
        if let Ok(bundle) = TensorBundle::open(&prefix) {
            // A checksum mismatch is the only error left once a bundle opens.
            if let Err(e) = bundle.verify_all() {
                assert!(matches!(e, BundleError::TensorChecksum { .. }), "{e}");
            }
        }
    }
}

/// The fields of one entry, re-encoded by hand (no protobuf library in this test).
#[derive(Clone)]
struct Fields {
    dtype: i64,
    shape: Option<Vec<i64>>,
    unknown_rank: bool,
    shard_id: i64,
    offset: i64,
    size: i64,
    crc: u32,
    slices: Option<Vec<u8>>,
}

impl Fields {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        field_varint(&mut out, 1, self.dtype as u64);
        if let Some(shape) = &self.shape {
            let mut s = Vec::new();
            for &d in shape {
                let mut dim = Vec::new();
                field_varint(&mut dim, 1, d as u64);
                field_bytes(&mut s, 2, &dim);
            }
            if self.unknown_rank {
                field_varint(&mut s, 3, 1);
            }
            field_bytes(&mut out, 2, &s);
        }
        field_varint(&mut out, 3, self.shard_id as u64);
        field_varint(&mut out, 4, self.offset as u64);
        field_varint(&mut out, 5, self.size as u64);
        out.push(6 << 3 | 5);
        out.extend_from_slice(&self.crc.to_le_bytes());
        if let Some(slices) = &self.slices {
            field_bytes(&mut out, 7, slices);
        }
        out
    }
}

fn field_varint(out: &mut Vec<u8>, field: u64, value: u64) {
    write_varint(out, field << 3);
    write_varint(out, value);
}

fn field_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    write_varint(out, field << 3 | 2);
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A one-block table of `rows` (every entry a restart point).
fn table(rows: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    fn block(rows: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut restarts = vec![];
        for (k, v) in rows {
            restarts.push(out.len() as u32);
            for n in [0, k.len(), v.len()] {
                write_varint(&mut out, n as u64);
            }
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        if restarts.is_empty() {
            restarts.push(0);
        }
        restarts
            .iter()
            .for_each(|r| out.extend_from_slice(&r.to_le_bytes()));
        out.extend_from_slice(&(restarts.len() as u32).to_le_bytes());
        out
    }
    fn put(file: &mut Vec<u8>, contents: &[u8]) -> BlockHandle {
        let h = BlockHandle {
            offset: file.len() as u64,
            size: contents.len() as u64,
        };
        file.extend_from_slice(contents);
        file.push(0);
        let crc = checksum::masked_crc32c(&file[h.offset as usize..]);
        file.extend_from_slice(&crc.to_le_bytes());
        h
    }
    let list: Vec<(&[u8], &[u8])> = rows.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    let mut file = Vec::new();
    let data = put(&mut file, &block(&list));
    let mut handle = Vec::new();
    data.encode(&mut handle);
    let meta = put(&mut file, &block(&[]));
    let idx = put(&mut file, &block(&[(&[0xff][..], &handle[..])]));
    let mut footer = Vec::new();
    meta.encode(&mut footer);
    idx.encode(&mut footer);
    footer.resize(40, 0);
    footer.extend_from_slice(&tensor_bundle::table::TABLE_MAGIC.to_le_bytes());
    file.extend_from_slice(&footer);
    file
}

/// Opens the fixture with `NAME`'s entry replaced by `fields` (the other rows as stored).
fn open_with(fields: &Fields) -> Result<TensorBundle, BundleError> {
    open_dir(fields).1
}

/// Opening or, failing that, reading `NAME`: the first error.
fn open_and_read(fields: &Fields) -> Result<(), BundleError> {
    let (_dir, bundle) = open_dir(fields);
    bundle?.tensor_bytes(NAME).map(|_| ())
}

fn open_dir(fields: &Fields) -> (tempfile::TempDir, Result<TensorBundle, BundleError>) {
    let (index, shard) = fixture();
    let mut rows: BTreeMap<Vec<u8>, Vec<u8>> = read_table(Path::new("x"), &index)
        .unwrap()
        .into_iter()
        .collect();
    rows.insert(NAME.as_bytes().to_vec(), fields.encode());
    let dir = bundle_dir(&table(&rows), &shard);
    let bundle = TensorBundle::open(&dir.path().join("ckpt"));
    (dir, bundle)
}

fn original() -> Fields {
    let (_, shard) = fixture();
    let dir = bundle_dir(&fixture().0, &shard);
    let bundle = TensorBundle::open(&dir.path().join("ckpt")).unwrap();
    let e = bundle.entry(NAME).unwrap();
    let loc = e.data_location().unwrap();
    Fields {
        dtype: 1,
        shape: Some(e.shape.iter().map(|&d| d as i64).collect()),
        unknown_rank: false,
        shard_id: 0,
        offset: loc.offset as i64,
        size: loc.size as i64,
        crc: loc.masked_crc32c,
        slices: None,
    }
}

#[test]
fn each_entry_field_corrupted() {
    let good = original();
    assert!(open_with(&good).is_ok(), "the re-encoded entry must open");
    type Edit = fn(&mut Fields);
    let cases: Vec<(&str, Edit, &str)> = vec![
        // Unknown dtypes open (listed as unsupported) and are refused on read.
        ("dtype invalid", |f| f.dtype = 0, "DT_INVALID"),
        ("dtype negative", |f| f.dtype = -1, NAME),
        ("dtype huge", |f| f.dtype = i64::from(i32::MAX), NAME),
        ("dtype string", |f| f.dtype = 7, "DT_STRING"),
        ("dtype wider", |f| f.dtype = 2, "bytes"), // DT_DOUBLE: size no longer matches
        (
            "shape negative",
            |f| f.shape = Some(vec![-1, 3]),
            "negative",
        ),
        (
            "shape unknown rank",
            |f| f.unknown_rank = true,
            "unknown rank",
        ),
        ("shape rank 40", |f| f.shape = Some(vec![1; 40]), "rank"),
        (
            "shape overflow",
            |f| f.shape = Some(vec![i64::MAX, 2]),
            "overflow",
        ),
        (
            "shape product overflow",
            |f| f.shape = Some(vec![1 << 32, 1 << 32]),
            "overflow",
        ),
        (
            "shape over shard",
            |f| {
                f.shape = Some(vec![1 << 30]);
                f.size = 4 << 30;
            },
            "data-00000-of-00001",
        ),
        ("shard negative", |f| f.shard_id = -1, "shard"),
        ("shard out of range", |f| f.shard_id = 1, "shard"),
        ("offset negative", |f| f.offset = -1, "data-00000-of-00001"),
        (
            "offset past the end",
            |f| f.offset = i64::MAX,
            "data-00000-of-00001",
        ),
        (
            "offset + size overflow",
            |f| f.offset = i64::MAX - 2,
            "data-00000-of-00001",
        ),
        ("size negative", |f| f.size = -1, "bytes"),
        ("size zero", |f| f.size = 0, "bytes"),
        ("size huge", |f| f.size = i64::MAX, "bytes"),
        ("slices garbage", |f| f.slices = Some(vec![0xff, 0xff]), ""),
        (
            "slices without entries",
            |f| f.slices = Some(vec![]),
            "slice",
        ),
    ];
    for (what, edit, fragment) in cases {
        let mut fields = good.clone();
        edit(&mut fields);
        let Err(err) = open_and_read(&fields) else {
            panic!("{what}: opened and read");
        };
        let msg = err.to_string();
        assert!(msg.contains("ckpt"), "{what}: {msg}");
        assert!(msg.contains(fragment), "{what}: {msg}");
    }
}

#[test]
fn wrong_checksum_fails_on_read_naming_the_tensor() {
    let mut fields = original();
    fields.crc ^= 1;
    let bundle = open_with(&fields).unwrap();
    let err = bundle.tensor_bytes(NAME).unwrap_err();
    assert!(matches!(err, BundleError::TensorChecksum { .. }), "{err}");
    assert!(err.to_string().contains(NAME), "{err}");
}

#[test]
fn missing_shape_is_a_scalar_and_then_a_size_mismatch() {
    let mut fields = original();
    fields.shape = None;
    let err = open_with(&fields).expect_err("opened");
    assert!(err.to_string().contains(NAME), "{err}");
}
