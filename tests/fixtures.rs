//! `amoeba verify` on every fixture TensorFlow made (fixtures/manifest.json), from the module
//! directly, from its .tar.gz where there is one, and from the converted safetensors file.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(root().join("fixtures/manifest.json"))
        .expect("fixtures/manifest.json");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("valid manifest");
    manifest["fixtures"]
        .as_array()
        .expect("fixtures list")
        .clone()
}

fn verify(model: &Path, golden: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args([
            "verify",
            model.to_str().unwrap(),
            "--golden",
            golden.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("PASS"),
        "{} vs {}:\n{stdout}\n{}",
        model.display(),
        golden.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_fixture_verifies_from_module_archive_and_converted_file() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 4, "expected the committed fixtures");
    let tmp = tempfile::tempdir().unwrap();
    for f in fixtures {
        let golden = root().join("fixtures").join(f["golden"].as_str().unwrap());
        let module = root().join("fixtures").join(f["module"].as_str().unwrap());
        verify(&module, &golden);
        if let Some(tgz) = f["module_tar_gz"].as_str() {
            verify(&root().join("fixtures").join(tgz), &golden);
        }
        let converted = tmp
            .path()
            .join(format!("{}.safetensors", f["name"].as_str().unwrap()));
        let out = Command::new(env!("CARGO_BIN_EXE_amoeba"))
            .args([
                "convert",
                module.to_str().unwrap(),
                "-o",
                converted.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        verify(&converted, &golden);
    }
}
