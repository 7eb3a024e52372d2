use std::borrow::Cow;

use super::{open_parts, sample, small_blocks};
use crate::testing::{pattern, BundleBuilder, TableOptions};
use crate::{DType, Endianness, TensorBundle};

#[test]
fn writer_round_trips_through_reader() {
    let parts = sample().parts();
    let (_dir, _prefix, bundle) = open_parts(&parts, &small_blocks());
    let bundle = bundle.expect("open");
    let names: Vec<&str> = bundle.entries().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["part", "step", "w"], "key order, slices hidden");
    assert_eq!(bundle.len(), 3);
    assert_eq!(bundle.header().num_shards, 1);
    assert_eq!(bundle.header().endianness, Endianness::Little);
    assert_eq!(bundle.header().producer, 1);
    let w = bundle.entry("w").expect("w");
    assert_eq!(
        (w.dtype, w.shape.as_slice(), w.num_elements(), w.byte_len()),
        (DType::F32, &[2, 3][..], 6, 24)
    );
    assert!(matches!(bundle.tensor_bytes("w").unwrap(), Cow::Borrowed(b) if b == pattern(24, 1)));
    assert_eq!(bundle.tensor_bytes("step").unwrap().as_ref(), pattern(8, 2));
    let part = bundle.entry("part").expect("part");
    assert!(part.is_partitioned() && part.data_location().is_none());
    assert_eq!(part.slices().len(), 2);
    assert!(matches!(bundle.tensor_bytes("part").unwrap(), Cow::Owned(b) if b == pattern(32, 3)));
    let mut out = vec![0u8; 32];
    bundle.read_into("part", &mut out).unwrap();
    assert_eq!(out, pattern(32, 3));
    bundle.verify_all().unwrap();
    assert!(bundle.entry("nope").is_none());
}

#[test]
fn table_has_several_blocks_and_restarts() {
    let parts = sample().parts();
    let index = parts.index(&small_blocks());
    let rows = crate::table::read_table("x".as_ref(), &index).unwrap();
    assert_eq!(rows.len(), 1 + 3 + 2, "header, 3 tensors, 2 slice entries");
    let first = crate::testing::first_data_block(&index);
    assert!(
        first.size < index.len() as u64 / 2,
        "more than one data block"
    );
    // The same rows with TF's defaults: one block.
    let one = parts.index(&TableOptions::default());
    assert_eq!(crate::table::read_table("x".as_ref(), &one).unwrap(), rows);
}

#[test]
fn every_dtype_scalar_and_empty_shape() {
    let mut b = BundleBuilder::new();
    for (i, d) in DType::ALL.into_iter().enumerate() {
        let n = 5 * d.size_bytes();
        b = b.tensor(&format!("t{i:02}"), d, &[5], &pattern(n, i as u64));
    }
    b = b.tensor("empty", DType::F32, &[3, 0], &[]).tensor(
        "scalar",
        DType::F64,
        &[],
        &pattern(8, 9),
    );
    let (_d, _p, bundle) = open_parts(&b.parts(), &TableOptions::default());
    let bundle = bundle.unwrap();
    for (i, d) in DType::ALL.into_iter().enumerate() {
        let name = format!("t{i:02}");
        assert_eq!(bundle.entry(&name).unwrap().dtype, d);
        assert_eq!(
            bundle.tensor_bytes(&name).unwrap().as_ref(),
            pattern(5 * d.size_bytes(), i as u64)
        );
    }
    assert!(bundle.tensor_bytes("empty").unwrap().is_empty());
    assert_eq!(bundle.entry("scalar").unwrap().num_elements(), 1);
}

#[test]
fn big_endian_shards_and_alignment() {
    let data16 = pattern(12, 4);
    let b = sample()
        .tensor("h", DType::F16, &[6], &data16)
        .tensor("flags", DType::Bool, &[3], &[1, 0, 1])
        .big_endian(true)
        .num_shards(3)
        .alignment(8);
    let (dir, _p, bundle) = open_parts(&b.parts(), &small_blocks());
    let bundle = bundle.unwrap();
    assert_eq!(bundle.header().endianness, Endianness::Big);
    assert_eq!(bundle.header().num_shards, 3);
    assert!(dir.path().join("ckpt.data-00002-of-00003").exists());
    // Bytes come back little-endian whatever the stored order.
    assert_eq!(bundle.tensor_bytes("h").unwrap().as_ref(), data16);
    assert_eq!(bundle.tensor_bytes("w").unwrap().as_ref(), pattern(24, 1));
    assert_eq!(
        bundle.tensor_bytes("part").unwrap().as_ref(),
        pattern(32, 3)
    );
    assert!(matches!(
        bundle.tensor_bytes("flags").unwrap(),
        Cow::Borrowed(_)
    ));
    let shards: Vec<usize> = bundle
        .entries()
        .filter_map(|e| e.data_location())
        .map(|l| l.shard_id)
        .collect();
    assert!(
        shards.iter().any(|&s| s > 0),
        "data spread over shards: {shards:?}"
    );
    let offsets: Vec<usize> = bundle
        .entries()
        .filter_map(|e| e.data_location())
        .map(|l| l.offset)
        .collect();
    assert!(offsets.iter().all(|o| o % 8 == 0), "{offsets:?}");
    bundle.verify_all().unwrap();
}

#[test]
fn empty_bundle_opens() {
    let (_d, _p, bundle) = open_parts(&BundleBuilder::new().parts(), &TableOptions::default());
    let bundle = bundle.unwrap();
    assert!(bundle.is_empty());
    assert_eq!(bundle.entries().count(), 0);
    bundle.verify_all().unwrap();
}

#[test]
fn large_tensor_is_verified_and_released() {
    // Larger than the 1 MiB threshold where verify_all drops pages after checksumming.
    let data = pattern(3 << 20, 7);
    let b = BundleBuilder::new().tensor("big", DType::U8, &[data.len()], &data);
    let (_d, prefix, bundle) = open_parts(&b.parts(), &TableOptions::default());
    let bundle = bundle.unwrap();
    bundle.verify_all().unwrap();
    assert_eq!(bundle.tensor_bytes("big").unwrap().as_ref(), data);
    assert!(format!("{bundle:?}").contains("entries: 1"));
    assert_eq!(bundle.prefix(), prefix);
    drop(TensorBundle::open(&prefix).unwrap());
}
