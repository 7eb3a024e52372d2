//! Conformance: read checkpoints that TensorFlow wrote and compare every variable with the
//! listing TensorFlow itself produced (`xtask/python/list_checkpoint.py` →
//! `fixtures/tf-read/<module>.variables.tsv`): name, dtype, shape, byte count, sha256.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tensor_bundle::TensorBundle;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One TSV row: dtype, shape, nbytes, sha256 (as text, exactly as written).
type Listing = BTreeMap<String, [String; 4]>;

fn read_listing(path: &Path) -> Listing {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; regenerate it with xtask/python/list_checkpoint.py",
            path.display()
        )
    });
    let mut rows = Listing::new();
    for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [name, dtype, shape, nbytes, sha] = cols[..] else {
            panic!("{}: bad row {line:?}", path.display())
        };
        rows.insert(
            name.into(),
            [dtype.into(), shape.into(), nbytes.into(), sha.into()],
        );
    }
    rows
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Our reading of the bundle, in the listing's format.
fn list_bundle(prefix: &Path) -> Listing {
    let bundle = TensorBundle::open(prefix).unwrap_or_else(|e| panic!("{e}"));
    bundle.verify_all().unwrap_or_else(|e| panic!("{e}"));
    let mut rows = Listing::new();
    for e in bundle.entries() {
        let bytes = bundle
            .tensor_bytes(&e.name)
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(bytes.len(), e.byte_len());
        let shape: Vec<String> = e.shape.iter().map(|d| d.to_string()).collect();
        let row = [
            e.dtype.name().into(),
            shape.join(","),
            bytes.len().to_string(),
            hex(&Sha256::digest(&bytes)),
        ];
        rows.insert(e.name.clone(), row);
    }
    // The listing writes strings as `string <shape> - -`; we refuse them on read and do not
    // decode their shape, so only the dtype is compared ("?" below).
    for u in bundle.unsupported() {
        let dtype = if u.tf_dtype == 7 {
            "string"
        } else {
            "unsupported"
        };
        rows.insert(
            u.name.clone(),
            [dtype.into(), "?".into(), "-".into(), "-".into()],
        );
    }
    rows
}

/// Compares every row, reporting all differences at once.
fn check_module(module_dir: &Path, listing: &Path, expected_count: Option<usize>) {
    assert!(
        module_dir.join("variables/variables.index").is_file(),
        "conformance module missing: {} (expected a TF1 Hub module with variables/variables.index; \
         the official ones are in fixtures/conformance, the project's in fixtures/modules)",
        module_dir.display()
    );
    let want = read_listing(listing);
    let got = list_bundle(&module_dir.join("variables/variables"));
    compare(listing, &want, &got, expected_count);
}

fn compare(listing: &Path, want: &Listing, got: &Listing, expected_count: Option<usize>) {
    if let Some(n) = expected_count {
        assert_eq!(
            want.len(),
            n,
            "{} should list {n} variables",
            listing.display()
        );
    }
    let mut problems = Vec::new();
    for (name, row) in want {
        match got.get(name) {
            None => problems.push(format!("{name}: missing from our reading")),
            Some(ours) if ours[1] == "?" && ours[0] == row[0] => {}
            Some(ours) if ours != row => {
                problems.push(format!("{name}: TF {row:?}, ours {ours:?}"))
            }
            Some(_) => {}
        }
    }
    problems.extend(
        got.keys()
            .filter(|k| !want.contains_key(*k))
            .map(|k| format!("{k}: not in TF's listing")),
    );
    assert!(
        problems.is_empty(),
        "{} differences:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert_eq!(got.len(), want.len());
}

#[test]
fn amoebanet_a_n6_f16_matches_tensorflow() {
    let root = repo_root();
    check_module(
        &root.join("fixtures/conformance/amoebanet_a_n6_f16"),
        &root.join("fixtures/tf-read/amoebanet_a_n6_f16.variables.tsv"),
        Some(676),
    );
}

/// A module the project built (`fixtures/modules/<name>`) against its TensorFlow listing
/// `fixtures/tf-read/modules.<name>.variables.tsv`.
fn project_module(name: &str, count: usize) {
    let root = repo_root();
    check_module(
        &root.join("fixtures/modules").join(name),
        &root.join(format!("fixtures/tf-read/modules.{name}.variables.tsv")),
        Some(count),
    );
}

#[test]
fn fixture_amoebanet_a_n3_f8_matches_tensorflow() {
    project_module("amoebanet_a_n3_f8", 492);
}

#[test]
fn fixture_amoebanet_a_n3_f8_feature_vector_matches_tensorflow() {
    project_module("amoebanet_a_n3_f8_feature_vector", 490);
}

#[test]
fn fixture_amoebanet_a_n6_f16_matches_tensorflow() {
    project_module("amoebanet_a_n6_f16", 676);
}

#[test]
fn fixture_amoebanet_c_n3_f8_224_matches_tensorflow() {
    project_module("amoebanet_c_n3_f8_224", 578);
}

/// Every module under `fixtures/modules/<name>/variables/` must have a TensorFlow listing
/// (run `xtask/python/list_checkpoint.py` for new ones) and match it.
#[test]
fn every_project_fixture_matches_tensorflow() {
    let root = repo_root();
    let Ok(dirs) = std::fs::read_dir(root.join("fixtures/modules")) else {
        return;
    };
    for dir in dirs.flatten().map(|d| d.path()) {
        if !dir.join("variables/variables.index").is_file() {
            continue;
        }
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let listing = root.join(format!("fixtures/tf-read/modules.{name}.variables.tsv"));
        check_module(&dir, &listing, None);
    }
}

/// A checkpoint TensorFlow saved with every common dtype, a string, two partitioned
/// variables (keys with 2-byte ordered-code numbers) and two data shards (`MergeBundles`).
#[test]
fn sample_checkpoint_matches_tensorflow() {
    let dir = repo_root().join("fixtures/tf-read");
    let prefix = dir.join("sample/variables");
    let want = read_listing(&dir.join("sample.variables.tsv"));
    let got = list_bundle(&prefix);
    compare(&dir.join("sample.variables.tsv"), &want, &got, Some(16));
    let bundle = TensorBundle::open(&prefix).unwrap();
    assert_eq!(bundle.header().num_shards, 2);
    assert_eq!(bundle.len(), 15, "16 variables, one of them a string");
    assert_eq!(bundle.unsupported()[0].name, "vocab");
    for (name, parts) in [("part/rows", 3), ("part/cols", 2)] {
        let e = bundle.entry(name).unwrap();
        assert!(e.is_partitioned(), "{name}");
        assert_eq!(e.slices().len(), parts, "{name}");
    }
    assert_eq!(
        bundle.entry("part/cols").unwrap().slices()[1].start,
        [0, 100]
    );
    let shards: std::collections::BTreeSet<usize> = bundle
        .entries()
        .filter_map(|e| e.data_location())
        .map(|l| l.shard_id)
        .collect();
    assert_eq!(shards.len(), 2, "plain tensors in both shards");
}
