//! `fixtures/conformance/` is a copy of the workplace's `../shared/conformance/` (TensorFlow's
//! exports from the official code and their goldens), so that a plain clone's tests find it.
//! Where the original exists beside the repository, every file of it must be here, byte for
//! byte; on a clone without it there is nothing to compare, and the test says so.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
        }
    }
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_committed_conformance_data_is_the_official_data() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = repo.join("fixtures/conformance");
    let original = repo.join("../shared/conformance");
    assert!(copy.join("amoebanet_a_n6_f16/saved_model.pb").is_file());
    if !original.is_dir() {
        eprintln!("no ../shared/conformance beside the repository: the copy is not compared");
        return;
    }
    let mut listed = Vec::new();
    files(&original, &original, &mut listed);
    assert!(listed.len() >= 10, "{listed:?}");
    for rel in listed {
        // The copy's README carries a note on where it comes from above the original text.
        if rel == Path::new("README.md") {
            let ours = std::fs::read_to_string(copy.join(&rel)).unwrap();
            let theirs = std::fs::read_to_string(original.join(&rel)).unwrap();
            assert!(
                ours.ends_with(&theirs),
                "fixtures/conformance/README.md differs"
            );
            continue;
        }
        assert_eq!(
            sha256(&copy.join(&rel)),
            sha256(&original.join(&rel)),
            "fixtures/conformance/{} differs from ../shared/conformance",
            rel.display()
        );
    }
}
