//! `--json` gives one JSON document on standard output, and under it an error is a JSON object
//! on standard error with the usual exit code; `--quiet` leaves out notes and `wrote` lines.

mod common;

use common::{repo, FIXTURE_MODULE};

fn amoeba(args: &[&str]) -> (Option<i32>, String, String) {
    common::amoeba_run(args, &[])
}

#[test]
fn convert_export_and_run_print_one_json_document() {
    let dir = tempfile::tempdir().unwrap();
    let module = repo(FIXTURE_MODULE);
    let file = dir.path().join("m.safetensors");
    let (code, out, err) = amoeba(&[
        "convert",
        module.to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["genotype"], "amoeba_net_a");
    assert_eq!(v["checkpoint_sha256"].as_str().unwrap().len(), 64);
    let onnx = dir.path().join("m.onnx");
    let (code, out, err) = amoeba(&[
        "export",
        file.to_str().unwrap(),
        "-o",
        onnx.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let e: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (e["format"].as_str(), e["opset"].as_i64()),
        (Some("onnx"), Some(17))
    );
    assert_eq!(e["checkpoint_sha256"], v["checkpoint_sha256"]);
    let golden = repo("fixtures/goldens/amoebanet_a_n3_f8.golden.safetensors");
    let ran = dir.path().join("out.safetensors");
    let (code, out, err) = amoeba(&[
        "run",
        file.to_str().unwrap(),
        "--input",
        golden.to_str().unwrap(),
        "-o",
        ran.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["images"], 2);
}

#[test]
fn errors_under_json_are_json_with_the_same_exit_codes() {
    let (code, out, err) = amoeba(&["inspect", "/nonexistent/module", "--json"]);
    assert_eq!(code, Some(2));
    assert!(out.is_empty(), "{out}");
    let v: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(v["error"]["exit_code"], 2);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/module"),
        "{err}"
    );
    // A usage error too.
    let (code, _, err) = amoeba(&["verify", "--json"]);
    assert_eq!(code, Some(2));
    let v: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("--golden"),
        "{err}"
    );
    // Without --json, plain text.
    let (code, _, err) = amoeba(&["inspect", "/nonexistent/module"]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("error: "), "{err}");
}

#[test]
fn quiet_leaves_out_notes_and_wrote_lines() {
    let dir = tempfile::tempdir().unwrap();
    let module = repo(FIXTURE_MODULE);
    let file = dir.path().join("m.safetensors");
    let (code, out, err) = amoeba(&[
        "--quiet",
        "convert",
        module.to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.is_empty() && err.is_empty(), "{out}{err}");
    assert!(file.is_file());
    let (code, out, err) = amoeba(&[
        "export",
        file.to_str().unwrap(),
        "-q",
        "-o",
        dir.path().join("m.onnx").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.is_empty() && err.is_empty(), "{out}{err}");
    // Errors still print.
    let (code, _, err) = amoeba(&["-q", "inspect", "/nonexistent/module"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent/module"), "{err}");
}
