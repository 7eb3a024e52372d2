//! Broken inputs through the binary: a clear message naming the file, exit code 2, no panic.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture_module() -> PathBuf {
    common::repo(common::FIXTURE_MODULE)
}

fn copy_module(dst: &Path) -> PathBuf {
    common::copy_fixture_module(dst)
}

use common::amoeba_stderr as amoeba;

fn inspect_check(module: &Path) -> (Option<i32>, String) {
    amoeba(&["inspect", "--check", module.to_str().unwrap()])
}

fn assert_error(result: (Option<i32>, String), file: &str, problem: &str) {
    let (code, stderr) = result;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(file),
        "message should name {file}: {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains(&problem.to_lowercase()),
        "message should say {problem:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn modify(path: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    edit(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn intact_module_checks_out() {
    let (code, stderr) = inspect_check(&fixture_module());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("checksums:"), "{stderr}");
}

#[test]
fn missing_variables_index() {
    let tmp = tempfile::tempdir().unwrap();
    let m = copy_module(tmp.path());
    std::fs::remove_file(m.join("variables/variables.index")).unwrap();
    assert_error(inspect_check(&m), "variables.index", "");
}

#[test]
fn truncated_index() {
    let tmp = tempfile::tempdir().unwrap();
    let m = copy_module(tmp.path());
    modify(&m.join("variables/variables.index"), |b| b.truncate(20));
    assert_error(inspect_check(&m), "variables.index", "short");
}

#[test]
fn bad_table_magic() {
    let tmp = tempfile::tempdir().unwrap();
    let m = copy_module(tmp.path());
    modify(&m.join("variables/variables.index"), |b| {
        let n = b.len();
        b[n - 1] ^= 0xff;
    });
    assert_error(inspect_check(&m), "variables.index", "magic");
}

#[test]
fn block_checksum_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let m = copy_module(tmp.path());
    // Byte 10 lies inside the first data block (the header entry's neighbourhood).
    modify(&m.join("variables/variables.index"), |b| b[10] ^= 0x01);
    assert_error(inspect_check(&m), "variables.index", "checksum");
}

#[test]
fn tensor_checksum_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let m = copy_module(tmp.path());
    modify(&m.join("variables/variables.data-00000-of-00001"), |b| {
        b[100] ^= 0x01
    });
    assert_error(inspect_check(&m), "variables", "checksum");
}

#[test]
fn entry_beyond_its_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let m = copy_module(tmp.path());
    modify(&m.join("variables/variables.data-00000-of-00001"), |b| {
        b.truncate(b.len() / 2)
    });
    assert_error(inspect_check(&m), "variables.data-00000-of-00001", "beyond");
}

#[test]
fn not_a_module() {
    let tmp = tempfile::tempdir().unwrap();
    assert_error(
        inspect_check(tmp.path()),
        tmp.path().to_str().unwrap(),
        "not a TF1 Hub module",
    );
}

#[test]
fn unsupported_module_format() {
    let tmp = tempfile::tempdir().unwrap();
    let m = copy_module(tmp.path());
    std::fs::write(m.join("tfhub_module.pb"), [0x08, 0x07]).unwrap();
    assert_error(
        inspect_check(&m),
        "tfhub_module.pb",
        "unsupported hub module format 7",
    );
}

#[test]
fn malformed_protobuf() {
    let tmp = tempfile::tempdir().unwrap();
    let m = copy_module(tmp.path());
    modify(&m.join("saved_model.pb"), |b| b.truncate(b.len() / 3));
    assert_error(inspect_check(&m), "saved_model.pb", "malformed protobuf");
}

#[test]
fn missing_golden_and_bad_output_folder() {
    let m = fixture_module();
    assert_error(
        amoeba(&[
            "verify",
            m.to_str().unwrap(),
            "--golden",
            "/no/golden.safetensors",
        ]),
        "/no/golden.safetensors",
        "cannot read",
    );
    let (code, stderr) = amoeba(&[
        "convert",
        m.to_str().unwrap(),
        "-o",
        "/no/such/folder/out.safetensors",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("/no/such/folder/out.safetensors"),
        "{stderr}"
    );
}

#[test]
fn safetensors_without_network_metadata_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("plain.safetensors");
    // A valid safetensors file with one tensor and no metadata.
    let header = br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&1f32.to_le_bytes());
    std::fs::write(&st, bytes).unwrap();
    assert_error(
        amoeba(&["genotype", st.to_str().unwrap()]),
        "plain.safetensors",
        "amoeba convert",
    );
}

#[test]
fn sigint_during_convert_leaves_no_partial_output() {
    // Whenever the signal lands, the outcome is all or nothing: a complete, valid file
    // (exit 0, or a signal after the rename) or no file and no temporary file (exit 2, or
    // killed before the handler was installed).
    for delay_ms in [0u64, 5, 20, 60] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("m.safetensors");
        let mut child = Command::new(env!("CARGO_BIN_EXE_amoeba"))
            .args([
                "convert",
                fixture_module().to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        // A signal that lands after the rename (the output complete, the process not yet
        // gone) ends the process with the complete output in place: still all, not part.
        if status.success() || leftovers == [std::ffi::OsString::from("m.safetensors")] {
            let bytes = std::fs::read(&out).unwrap();
            assert!(
                safetensors::SafeTensors::deserialize(&bytes).is_ok(),
                "after {delay_ms} ms ({status}): complete file"
            );
            assert_eq!(leftovers.len(), 1, "{leftovers:?}");
        } else {
            assert!(
                leftovers.is_empty(),
                "after {delay_ms} ms: {leftovers:?} left behind ({status})"
            );
        }
    }
}
