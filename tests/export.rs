//! `amoeba export --format onnx` end to end: what it writes, and what it refuses without
//! leaving anything behind. (The numbers of the exported graph are checked in
//! `crates/model-io/tests/onnx_export.rs` and, in ONNX Runtime, by `cargo xtask check-onnx`.)

mod common;

use common::{amoeba_stderr, repo, FIXTURE_MODULE};
use std::path::Path;

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn export(args: &[&str]) -> (Option<i32>, String, String) {
    let args: Vec<&str> = std::iter::once("export")
        .chain(args.iter().copied())
        .collect();
    common::amoeba_run(&args, &[])
}

#[test]
fn a_module_exports_to_one_file_or_with_external_data() {
    let dir = tempfile::tempdir().unwrap();
    let module = repo(FIXTURE_MODULE);
    let out = dir.path().join("a.onnx");
    let (code, stdout, stderr) = export(&[module.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("ONNX opset 17") && stdout.contains("genotype amoeba_net_a"),
        "{stdout}"
    );
    assert_eq!(files_in(dir.path()), ["a.onnx"]);
    // The weights (752,224 bytes) are inside the model file.
    assert!(std::fs::metadata(&out).unwrap().len() > 752_224);

    let ext = dir.path().join("b.onnx");
    let (code, stdout, stderr) = export(&[
        module.to_str().unwrap(),
        "--format",
        "onnx",
        "--external-data",
        "-o",
        ext.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("weights in"), "{stdout}");
    assert_eq!(files_in(dir.path()), ["a.onnx", "b.onnx", "b.onnx.data"]);
    assert!(std::fs::metadata(&ext).unwrap().len() < 200_000);
    assert!(
        std::fs::metadata(dir.path().join("b.onnx.data"))
            .unwrap()
            .len()
            > 700_000
    );
}

/// A converted file missing one weight the plan needs: refused naming the variable, nothing
/// written, no temporary file left.
#[test]
fn a_model_missing_a_weight_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let converted = dir.path().join("full.safetensors");
    let (code, stderr) = amoeba_stderr(&[
        "convert",
        repo(FIXTURE_MODULE).to_str().unwrap(),
        "-o",
        converted.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let bytes = std::fs::read(&converted).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let dropped = "cell_0/comb_iter_1/left/separable_3x3_2/pointwise_weights";
    let kept: Vec<(String, safetensors::tensor::TensorView)> = file
        .tensors()
        .into_iter()
        .filter(|(name, _)| name != dropped)
        .collect();
    assert_eq!(kept.len() + 1, file.len(), "{dropped} is in the fixture");
    let broken = dir.path().join("broken.safetensors");
    safetensors::serialize_to_file(kept, meta.metadata().clone(), &broken).unwrap();
    let work = dir.path().join("out");
    std::fs::create_dir(&work).unwrap();
    let out = work.join("m.onnx");
    let (code, _, stderr) = export(&[broken.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(dropped)
            && stderr.contains("missing")
            && stderr.contains("broken.safetensors"),
        "{stderr}"
    );
    assert!(
        files_in(&work).is_empty(),
        "left behind: {:?}",
        files_in(&work)
    );
}

#[test]
fn the_output_may_not_be_an_input_or_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let module = repo(FIXTURE_MODULE);
    let index = module.join("variables/variables.index");
    let (code, _, stderr) = export(&[module.to_str().unwrap(), "-o", index.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = export(&[module.to_str().unwrap(), "-o", "/dev/null"]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = export(&[
        module.to_str().unwrap(),
        "--format",
        "tflite",
        "-o",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("onnx"), "{stderr}");
    assert!(files_in(dir.path()).is_empty());
}
