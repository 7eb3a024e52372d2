//! Inputs that once crashed a fuzz target or a hostile-input test, kept so they stay fixed.
//!
//! A converted file carries its network description as JSON in `__metadata__`; everything in
//! it is untrusted. Each case edits the description of a real conversion and expects
//! `Model::network()` to fail with a message, not to panic.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use model_io::{keys, Model};

const MODULE: &str = "../../fixtures/modules/amoebanet_a_n3_f8_feature_vector";

/// Converts the smallest fixture once per test into `dir`.
fn converted(dir: &Path) -> PathBuf {
    let module = Model::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join(MODULE)).unwrap();
    let out = dir.join("fv.safetensors");
    model_io::convert(&module, &out, &mut |_, _| ControlFlow::Continue(())).unwrap();
    out
}

/// Rewrites the file's network JSON with `edit` applied, keeping the tensors.
fn edit_network(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta: HashMap<String, String> = header.metadata().clone().unwrap();
    let mut spec: serde_json::Value = serde_json::from_str(&meta[keys::NETWORK]).unwrap();
    edit(&mut spec);
    meta.insert(keys::NETWORK.into(), spec.to_string());
    let out = safetensors::serialize(st.tensors(), Some(meta)).unwrap();
    std::fs::write(path, out).unwrap();
}

#[test]
fn cell_stride_zero_is_an_error_not_a_division_by_zero() {
    // Found while fuzzing converted files: `"stride": 0` in a cell of the description
    // panicked in nasnet-forward's `load_op` (`div_ceil(0)`); now refused when the
    // description is read, naming the file and the field.
    let tmp = tempfile::tempdir().unwrap();
    let path = converted(tmp.path());
    edit_network(&path, |spec| spec["cells"][0]["stride"] = 0.into());
    let err = Model::open(&path)
        .err()
        .expect("a stride-0 description was accepted");
    let msg = err.to_string();
    assert!(
        msg.contains("fv.safetensors") && msg.contains("cells[0].stride") && msg.contains(": 0"),
        "{msg}"
    );
}
