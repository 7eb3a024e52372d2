//! Tests of the whole reader against bundles made by [`crate::testing`].

mod errors;
mod props;
mod round_trip;

use std::path::PathBuf;

use crate::testing::{pattern, BundleBuilder, BundleParts, TableOptions};
use crate::{BundleError, DType, TensorBundle};

/// A bundle with a plain, a scalar and a partitioned tensor, in three data blocks.
pub(crate) fn sample() -> BundleBuilder {
    BundleBuilder::new()
        .tensor("w", DType::F32, &[2, 3], &pattern(24, 1))
        .tensor("step", DType::I64, &[], &pattern(8, 2))
        .sliced(
            "part",
            DType::F32,
            &[4, 2],
            &pattern(32, 3),
            &[vec![(0, 3), (0, -1)], vec![(3, 1), (0, 2)]],
        )
}

pub(crate) fn small_blocks() -> TableOptions {
    TableOptions {
        block_size: 48,
        restart_interval: 2,
        block_type: 0,
    }
}

/// Writes the parts to a fresh directory as `ckpt.*` and opens them.
pub(crate) fn open_parts(
    parts: &BundleParts,
    opts: &TableOptions,
) -> (
    tempfile::TempDir,
    PathBuf,
    Result<TensorBundle, BundleError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = parts.write(dir.path(), "ckpt", opts).expect("write bundle");
    let result = TensorBundle::open(&prefix);
    (dir, prefix, result)
}

/// Writes a raw index next to the parts' shards and opens it.
pub(crate) fn open_index(
    parts: &BundleParts,
    index: &[u8],
) -> (tempfile::TempDir, Result<TensorBundle, BundleError>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = parts
        .write(dir.path(), "ckpt", &TableOptions::default())
        .expect("write");
    std::fs::write(dir.path().join("ckpt.index"), index).expect("write index");
    let result = TensorBundle::open(&prefix);
    (dir, result)
}
