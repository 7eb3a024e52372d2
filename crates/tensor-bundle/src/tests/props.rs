//! Property tests: random bundles round-trip; random damage never panics.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{open_index, sample, small_blocks};
use crate::slice::{decode_slice_key, encode_slice_key, ordered_code};
use crate::testing::{fix_checksums, pattern, BundleBuilder, TableOptions};
use crate::{DType, TensorBundle};

fn dtype() -> impl Strategy<Value = DType> {
    prop::sample::select(DType::ALL.to_vec())
}

/// name → (dtype, shape, seed); a BTreeMap so names are unique.
fn tensors() -> impl Strategy<Value = BTreeMap<String, (DType, Vec<usize>, u64)>> {
    let tensor = (
        dtype(),
        prop::collection::vec(0usize..5, 0..4),
        any::<u64>(),
    );
    prop::collection::btree_map("[a-z][a-z0-9_/]{0,20}", tensor, 0..24)
}

fn table_options() -> impl Strategy<Value = TableOptions> {
    (16usize..600, 1usize..20).prop_map(|(block_size, restart_interval)| TableOptions {
        block_size,
        restart_interval,
        block_type: 0,
    })
}

/// Opens a damaged bundle and, if it opens, reads everything: must never panic.
fn exercise(result: Result<TensorBundle, crate::BundleError>) {
    if let Ok(bundle) = result {
        for e in bundle.entries() {
            let _ = bundle.tensor_bytes(&e.name);
        }
        let _ = bundle.verify_all();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_bundles_round_trip(
        list in tensors(),
        opts in table_options(),
        shards in 1usize..4,
        big in any::<bool>(),
    ) {
        let mut b = BundleBuilder::new().num_shards(shards).big_endian(big);
        for (name, (d, shape, seed)) in &list {
            let n: usize = shape.iter().product::<usize>() * d.size_bytes();
            b = b.tensor(name, *d, shape, &pattern(n, *seed));
        }
        let (_dir, _p, bundle) = super::open_parts(&b.parts(), &opts);
        let bundle = bundle.unwrap();
        let names: Vec<&String> = list.keys().collect();
        let read: Vec<&String> = bundle.entries().map(|e| &e.name).collect();
        prop_assert_eq!(read, names);
        for (name, (d, shape, seed)) in &list {
            let e = bundle.entry(name).unwrap();
            prop_assert_eq!(e.dtype, *d);
            prop_assert_eq!(&e.shape, shape);
            let n = e.byte_len();
            let got = bundle.tensor_bytes(name).unwrap().into_owned();
            prop_assert_eq!(got, pattern(n, *seed));
        }
        bundle.verify_all().unwrap();
    }

    #[test]
    fn damaged_index_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
        reseal in any::<bool>(),
    ) {
        let parts = sample().num_shards(2).parts();
        let mut index = parts.index(&small_blocks());
        for (at, byte) in &edits {
            let i = at.index(index.len());
            index[i] = *byte;
        }
        if let Some(cut) = cut {
            index.truncate(cut.index(index.len()));
        }
        if reseal {
            // Past the block checksums, so the entry and proto parsers see the damage.
            fix_checksums(&mut index);
        }
        exercise(open_index(&parts, &index).1);
    }

    #[test]
    fn damaged_entries_never_panic(
        key in prop::sample::select(vec![b"w".to_vec(), b"part".to_vec(), b"step".to_vec(), Vec::new()]),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut parts = sample().parts();
        let value = parts.rows.get_mut(&key).unwrap();
        for (at, byte) in &edits {
            let i = at.index(value.len());
            value[i] = *byte;
        }
        let index = parts.index(&TableOptions::default());
        exercise(open_index(&parts, &index).1);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = crate::table::read_table("x".as_ref(), &bytes);
        let _ = decode_slice_key(&bytes);
        let _ = ordered_code::read_signed_num_increasing(&bytes);
    }

    #[test]
    fn signed_numbers_round_trip_in_order(a in any::<i64>(), b in any::<i64>()) {
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        ordered_code::write_signed_num_increasing(&mut ea, a);
        ordered_code::write_signed_num_increasing(&mut eb, b);
        prop_assert_eq!(ordered_code::read_signed_num_increasing(&ea), Some((a, ea.len())));
        prop_assert_eq!(a.cmp(&b), ea.cmp(&eb));
    }

    #[test]
    fn slice_keys_round_trip(
        name in prop::collection::vec(any::<u8>(), 0..20),
        extents in prop::collection::vec((any::<i64>(), any::<i64>()), 0..5),
    ) {
        let key = encode_slice_key(&name, &extents);
        prop_assert_eq!(key.first(), Some(&0u8));
        prop_assert_eq!(decode_slice_key(&key), Some((name, extents)));
    }
}
