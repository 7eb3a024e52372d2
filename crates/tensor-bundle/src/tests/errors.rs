//! One test per [`BundleError`] variant: the message names the file and the problem.

use super::{open_index, open_parts, sample, small_blocks};
use crate::table::BlockHandle;
use crate::testing::{
    first_data_block, fix_checksums, set_index_handle, BundleParts, TableOptions,
};
use crate::{BundleError, TensorBundle};
use tf_proto::tensorflow::{BundleHeaderProto, VersionDef};
use tf_proto::Message;

/// Asserts the error's message contains every fragment, and returns the error.
fn check(result: Result<impl std::fmt::Debug, BundleError>, fragments: &[&str]) -> BundleError {
    let err = result.expect_err("expected an error");
    let msg = err.to_string();
    for f in fragments {
        assert!(msg.contains(f), "message {msg:?} lacks {f:?}");
    }
    err
}

fn parts() -> BundleParts {
    sample().parts()
}

fn open_with(edit: impl FnOnce(&mut BundleParts)) -> Result<TensorBundle, BundleError> {
    let mut p = parts();
    edit(&mut p);
    open_parts(&p, &TableOptions::default()).2
}

fn header(num_shards: i32, endianness: i32, min_consumer: i32) -> BundleHeaderProto {
    BundleHeaderProto {
        num_shards,
        endianness,
        version: Some(VersionDef {
            producer: 1,
            min_consumer,
            bad_consumers: vec![],
        }),
    }
}

#[test]
fn missing_index() {
    let dir = tempfile::tempdir().unwrap();
    let err = check(
        TensorBundle::open(&dir.path().join("nothere")),
        &["nothere.index", "cannot read checkpoint index", "prefix"],
    );
    assert!(matches!(err, BundleError::MissingIndex { .. }));
}

#[test]
fn missing_shard() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = parts()
        .write(dir.path(), "ckpt", &TableOptions::default())
        .unwrap();
    std::fs::remove_file(dir.path().join("ckpt.data-00000-of-00001")).unwrap();
    let err = check(
        TensorBundle::open(&prefix),
        &["ckpt.data-00000-of-00001", "cannot open data shard"],
    );
    assert!(matches!(err, BundleError::MissingShard { .. }));
}

#[test]
fn too_short() {
    let (_d, r) = open_index(&parts(), &[0u8; 47]);
    assert!(matches!(
        check(r, &["ckpt.index", "too short to be a table", "47 bytes"]),
        BundleError::TooShort { .. }
    ));
}

#[test]
fn bad_magic() {
    let mut index = parts().index(&TableOptions::default());
    *index.last_mut().unwrap() ^= 1;
    let (_d, r) = open_index(&parts(), &index);
    assert!(matches!(
        check(r, &["ckpt.index", "bad table magic"]),
        BundleError::BadMagic { .. }
    ));
}

#[test]
fn truncated_block() {
    let mut index = parts().index(&TableOptions::default());
    set_index_handle(
        &mut index,
        BlockHandle {
            offset: 10,
            size: 1 << 40,
        },
    );
    let (_d, r) = open_index(&parts(), &index);
    let err = check(r, &["ckpt.index", "truncated block", "index block"]);
    assert!(matches!(err, BundleError::TruncatedBlock { .. }));
}

#[test]
fn block_checksum_mismatch() {
    let mut index = parts().index(&TableOptions::default());
    index[3] ^= 0x40;
    let (_d, r) = open_index(&parts(), &index);
    let err = check(r, &["ckpt.index", "block checksum mismatch"]);
    assert!(matches!(err, BundleError::BlockChecksum { .. }));
}

#[test]
fn snappy_block() {
    let opts = TableOptions {
        block_type: 1,
        ..TableOptions::default()
    };
    let r = open_parts(&parts(), &opts).2;
    assert!(matches!(
        check(r, &["ckpt.index", "Snappy", "not support"]),
        BundleError::SnappyBlock { .. }
    ));
}

#[test]
fn bad_block_type() {
    let opts = TableOptions {
        block_type: 7,
        ..TableOptions::default()
    };
    let r = open_parts(&parts(), &opts).2;
    assert!(matches!(
        check(r, &["ckpt.index", "bad block type 7"]),
        BundleError::BadBlockType { .. }
    ));
}

#[test]
fn malformed_entry_lengths() {
    let mut index = parts().index(&TableOptions::default());
    let block = first_data_block(&index);
    // The first entry's key length (its second varint) now runs past the block.
    index[block.offset as usize + 1] = 0x7f;
    fix_checksums(&mut index);
    let (_d, r) = open_index(&parts(), &index);
    let err = check(r, &["ckpt.index", "malformed table entry", "run past"]);
    assert!(matches!(err, BundleError::MalformedEntry { .. }));
}

#[test]
fn malformed_entry_bad_varint_and_restarts() {
    let mut index = parts().index(&small_blocks());
    let block = first_data_block(&index);
    index[block.offset as usize..block.offset as usize + 5].fill(0xff);
    fix_checksums(&mut index);
    let (_d, r) = open_index(&parts(), &index);
    check(r, &["ckpt.index", "malformed table entry", "varint"]);
    let mut index = parts().index(&small_blocks());
    let block = first_data_block(&index);
    // The restart count: larger than the block can hold.
    let at = (block.offset + block.size - 4) as usize;
    index[at..at + 4].copy_from_slice(&1000u32.to_le_bytes());
    fix_checksums(&mut index);
    let (_d, r) = open_index(&parts(), &index);
    check(r, &["ckpt.index", "restart count"]);
}

#[test]
fn missing_header() {
    let r = open_with(|p| {
        p.rows.remove(&Vec::new());
    });
    let err = check(r, &["ckpt.index", "first key", "part", "header"]);
    assert!(matches!(err, BundleError::MissingHeader { .. }));
}

#[test]
fn bad_header() {
    for (h, problem) in [
        (header(0, 0, 0), "num_shards is 0"),
        (header(1_000_000, 0, 0), "num_shards is 1000000"),
        (header(1, 5, 0), "unknown endianness 5"),
        (header(1, 0, 2), "unsupported version"),
    ] {
        let r = open_with(|p| p.set_header(&h));
        let err = check(r, &["ckpt.index", "bad bundle header", problem]);
        assert!(matches!(err, BundleError::BadHeader { .. }));
    }
}

#[test]
fn malformed_protobuf() {
    let r = open_with(|p| {
        p.rows.insert(b"w".to_vec(), vec![0x0a, 0xff]);
    });
    let err = check(r, &["ckpt.index", "malformed protobuf", "\"w\""]);
    assert!(matches!(
        err,
        BundleError::Protobuf { .. } | BundleError::HostileProtobuf { .. }
    ));
    let r = open_with(|p| {
        p.rows.insert(Vec::new(), vec![0x08]);
    });
    check(r, &["ckpt.index", "malformed protobuf"]);
}

#[test]
fn tensor_checksum_mismatch() {
    let mut p = parts();
    let offset = p.entry(b"w").offset as usize;
    p.shards[0][offset] ^= 1;
    let (_d, _prefix, bundle) = open_parts(&p, &TableOptions::default());
    let bundle = bundle.expect("opens: data is only checked on read");
    let err = check(
        bundle.tensor_bytes("w"),
        &["ckpt.data-00000-of-00001", "checksum mismatch", "\"w\""],
    );
    assert!(matches!(err, BundleError::TensorChecksum { .. }));
    check(bundle.verify_all(), &["checksum mismatch", "\"w\""]);
    check(bundle.verify("w"), &["checksum mismatch"]);
    let mut out = vec![0u8; 24];
    check(bundle.read_into("w", &mut out), &["checksum mismatch"]);
}

#[test]
fn entry_beyond_shard() {
    let r = open_with(|p| p.edit_entry(b"w", |e| e.offset = 1000));
    let err = check(r, &["ckpt.data-00000-of-00001", "\"w\"", "beyond the end"]);
    assert!(matches!(err, BundleError::EntryOutOfBounds { .. }));
    let r = open_with(|p| p.edit_entry(b"w", |e| e.offset = -4));
    check(r, &["ckpt.data-00000-of-00001", "beyond the end"]);
}

#[test]
fn size_mismatch() {
    let r = open_with(|p| p.edit_entry(b"w", |e| e.size = 20));
    let err = check(r, &["ckpt.index", "\"w\"", "20 bytes", "need 24"]);
    assert!(matches!(err, BundleError::SizeMismatch { .. }));
}

#[test]
fn shape_overflow() {
    let huge = crate::testing::shape_proto(&[1 << 31, 1 << 31, 1 << 31]);
    let r = open_with(|p| p.edit_entry(b"w", |e| e.shape = Some(huge)));
    let err = check(r, &["ckpt.index", "\"w\"", "overflows"]);
    assert!(matches!(err, BundleError::ShapeOverflow { .. }));
}

#[test]
fn bad_shape() {
    let mut negative = crate::testing::shape_proto(&[2, 3]);
    negative.dim[1].size = -1;
    let r = open_with(|p| p.edit_entry(b"w", |e| e.shape = Some(negative)));
    let err = check(r, &["ckpt.index", "\"w\"", "bad shape", "negative"]);
    assert!(matches!(err, BundleError::BadShape { .. }));
    let mut unknown = crate::testing::shape_proto(&[]);
    unknown.unknown_rank = true;
    check(
        open_with(|p| p.edit_entry(b"w", |e| e.shape = Some(unknown))),
        &["unknown rank"],
    );
    let deep = crate::testing::shape_proto(&[1; 33]);
    check(
        open_with(|p| p.edit_entry(b"w", |e| e.shape = Some(deep))),
        &["rank 33"],
    );
}

#[test]
fn shard_out_of_range() {
    let r = open_with(|p| p.edit_entry(b"w", |e| e.shard_id = 3));
    let err = check(r, &["ckpt.index", "\"w\"", "shard 3", "1 shards"]);
    assert!(matches!(err, BundleError::ShardOutOfRange { .. }));
}

#[test]
fn bad_slices() {
    use crate::testing::slice_proto;
    let overlapping = |p: &mut BundleParts| {
        p.edit_entry(b"part", |e| e.slices[1] = slice_proto(&[(2, 2), (0, 2)]));
    };
    let err = check(
        open_with(overlapping),
        &["ckpt.index", "\"part\"", "bad slices"],
    );
    assert!(matches!(err, BundleError::BadSlices { .. }));
    let outside = |p: &mut BundleParts| {
        p.edit_entry(b"part", |e| e.slices[1] = slice_proto(&[(3, 2), (0, 2)]))
    };
    check(
        open_with(outside),
        &["\"part\"", "outside the full dimension"],
    );
    let key = crate::slice::encode_slice_key(b"part", &[(3, 1), (0, 2)]);
    let missing = |p: &mut BundleParts| {
        p.rows.remove(&key);
    };
    check(
        open_with(missing),
        &["\"part\"", "missing slice entry for slice 1"],
    );
    let gap = |p: &mut BundleParts| p.edit_entry(b"part", |e| e.slices.truncate(1));
    check(open_with(gap), &["\"part\"", "cover 6 of the 8"]);
    let wrong_rank =
        |p: &mut BundleParts| p.edit_entry(b"part", |e| e.slices[0] = slice_proto(&[(0, 3)]));
    check(open_with(wrong_rank), &["\"part\"", "1 extents for rank 2"]);
}

#[test]
fn unsupported_dtype_is_listed_and_refused() {
    let mut p = parts();
    p.edit_entry(b"w", |e| e.dtype = 7);
    let (_d, _prefix, bundle) = open_parts(&p, &TableOptions::default());
    let bundle = bundle.expect("opens");
    assert!(bundle.entry("w").is_none());
    assert_eq!(bundle.unsupported().len(), 1);
    assert_eq!(bundle.unsupported()[0].dtype_name(), "DT_STRING (7)");
    let err = check(
        bundle.tensor_bytes("w"),
        &["ckpt.index", "\"w\"", "DT_STRING", "does not support"],
    );
    assert!(matches!(err, BundleError::UnsupportedDType { .. }));
}

#[test]
fn not_found_buffer_size_and_bad_key() {
    let (_d, _prefix, bundle) = open_parts(&parts(), &TableOptions::default());
    let bundle = bundle.unwrap();
    let err = check(
        bundle.tensor_bytes("nope"),
        &["ckpt.index", "no tensor named \"nope\""],
    );
    assert!(matches!(err, BundleError::NotFound { .. }));
    let err = check(
        bundle.read_into("w", &mut [0u8; 3]),
        &["ckpt.index", "\"w\"", "24 bytes", "has 3"],
    );
    assert!(matches!(err, BundleError::BufferSize { .. }));
    let r = open_with(|p| {
        let w = p.rows[b"w".as_slice()].clone();
        p.rows.insert(vec![b'x', 0xff], w);
    });
    assert!(matches!(
        check(r, &["ckpt.index", "not a valid UTF-8"]),
        BundleError::BadKey { .. }
    ));
}

#[test]
fn keys_out_of_order() {
    // Two blocks whose keys go backwards: build each block's rows separately.
    let p = parts();
    let rows: Vec<(Vec<u8>, Vec<u8>)> = p.rows.clone().into_iter().collect();
    let mut swapped = rows.clone();
    let n = swapped.len();
    swapped.swap(n - 1, n - 2);
    let index = crate::testing::build_table(&swapped, &small_blocks());
    let (_d, r) = open_index(&p, &index);
    check(r, &["ckpt.index", "keys out of order"]);
}

#[test]
fn fifos_in_place_of_the_index_or_a_shard_are_refused_at_once() {
    let mkfifo = |path: &std::path::Path| {
        std::fs::remove_file(path).unwrap();
        assert!(std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap()
            .success());
    };
    for file in ["ckpt.index", "ckpt.data-00000-of-00001"] {
        let dir = tempfile::tempdir().unwrap();
        let prefix = parts()
            .write(dir.path(), "ckpt", &TableOptions::default())
            .unwrap();
        mkfifo(&dir.path().join(file));
        let err = check(
            TensorBundle::open(&prefix),
            &[file, "FIFO", "not a regular file"],
        );
        assert!(
            matches!(
                err,
                BundleError::UnreadableIndex { .. } | BundleError::UnreadableShard { .. }
            ),
            "{err}"
        );
    }
}

#[test]
fn an_entry_that_would_decode_to_gigabytes_is_refused_before_decoding() {
    // 10 M empty dims: 20 MB in the index, hundreds of MB decoded.
    let dir = tempfile::tempdir().unwrap();
    let mut parts = parts();
    let mut value = parts.entry(b"w").encode_to_vec();
    let dim = [0x12u8, 0x00]; // TensorShapeProto.dim, empty
    let mut shape = Vec::new();
    for _ in 0..10_000_000 {
        shape.extend_from_slice(&dim);
    }
    // BundleEntryProto.shape = 2: tag, length, then the dims.
    value.push(0x12);
    let mut len = shape.len() as u64;
    while len >= 0x80 {
        value.push((len as u8) | 0x80);
        len >>= 7;
    }
    value.push(len as u8);
    value.extend_from_slice(&shape);
    parts.rows.insert(b"w".to_vec(), value);
    let prefix = parts
        .write(dir.path(), "ckpt", &TableOptions::default())
        .unwrap();
    let err = check(
        TensorBundle::open(&prefix),
        &["ckpt.index", "\"w\"", "MiB cap"],
    );
    assert!(matches!(err, BundleError::HostileProtobuf { .. }), "{err}");
}
