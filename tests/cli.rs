//! End-to-end tests of the `amoeba` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn amoeba(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(args)
        .output()
        .expect("runs")
}

fn shared() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/conformance");
    assert!(
        p.is_dir(),
        "conformance data missing at fixtures/conformance (committed with the repository)"
    );
    p
}

fn conformance_module() -> String {
    shared().join("amoebanet_a_n6_f16").display().to_string()
}

fn conformance_golden() -> String {
    shared()
        .join("amoebanet_a_n6_f16.golden.safetensors")
        .display()
        .to_string()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_conformance_module() {
    let out = amoeba(&["inspect", &conformance_module()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("TF1 Hub module (format 3)"), "{stdout}");
    assert!(stdout.contains("image size: 331x331"), "{stdout}");
    assert!(stdout.contains("graph variant tags {}"), "{stdout}");
    assert!(
        stdout.contains("graph variant tags {\"train\"}"),
        "{stdout}"
    );
    for sig in ["default", "image_classification", "image_feature_vector"] {
        assert!(stdout.contains(&format!("signature {sig}\n")), "{stdout}");
    }
    assert!(stdout.contains("[-1, 331, 331, 3]"), "{stdout}");
}

#[test]
fn inspect_json_and_variables() {
    let out = amoeba(&["inspect", &conformance_module(), "--json", "--variables"]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let vars = json["variables"].as_array().expect("variables listed");
    assert_eq!(vars.len() as u64, json["num_variables"].as_u64().unwrap());
    assert!(vars.iter().any(
        |v| v["name"] == "stem/conv0/weights" && v["shape"] == serde_json::json!([3, 3, 3, 32])
    ));
    assert_eq!(json["image_size"], serde_json::json!([331, 331]));
}

#[test]
fn inspect_missing_module_fails_with_exit_2() {
    let out = amoeba(&["inspect", "/no/such/module"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("/no/such/module") && stderr.contains("no such file"),
        "{stderr}"
    );
}

#[test]
fn usage_error_exits_2() {
    let out = amoeba(&["inspect"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_conformance_module_directly_and_after_convert() {
    let out = amoeba(&[
        "verify",
        &conformance_module(),
        "--golden",
        &conformance_golden(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "verify failed:\n{stdout}\n{stderr}");
    assert!(stdout.trim_end().ends_with("PASS"), "{stdout}");
    assert!(
        stdout.contains("cell_output/cell_stem_0"),
        "every cell is compared: {stdout}"
    );
    assert!(
        stdout.contains("top-5 agreement (same order): 5/5"),
        "{stdout}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("model.safetensors");
    let out = amoeba(&["convert", &conformance_module(), "-o", st.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = amoeba(&[
        "verify",
        st.to_str().unwrap(),
        "--golden",
        &conformance_golden(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "verify from safetensors failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn verify_fails_with_exit_1_when_outputs_differ() {
    // A bar of zero cannot be met by float arithmetic in another order.
    let out = amoeba(&[
        "verify",
        &conformance_module(),
        "--golden",
        &conformance_golden(),
        "--atol",
        "0",
    ]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.trim_end().ends_with("FAIL"), "{stdout}");
    assert!(
        stdout.contains("first divergent cell: cell_output/cell_stem_0"),
        "{stdout}"
    );
}

#[test]
fn genotype_of_conformance_module_is_amoebanet_a() {
    let out = amoeba(&["genotype", &conformance_module()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("AmoebaNet-A: N=6 normal cells, F=16"),
        "{stdout}"
    );
    assert!(
        stdout.contains("h5 = separable_3x3_2(h0) + separable_5x5_2(h2)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("output = concat[h1, h3, h4, h6]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("output = concat[h2, h3, h4, h5, h6]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("reduction cells before normal cells [2, 4]"),
        "{stdout}"
    );
}

#[test]
fn genotype_svg_to_file_and_json_from_converted_file() {
    let tmp = tempfile::tempdir().unwrap();
    let svg = tmp.path().join("cells.svg");
    let out = amoeba(&[
        "genotype",
        &conformance_module(),
        "--format",
        "svg",
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    let body = std::fs::read_to_string(&svg).unwrap();
    assert!(
        body.starts_with("<svg") || body.starts_with("<?xml"),
        "{}",
        &body[..80.min(body.len())]
    );

    let st = tmp.path().join("m.safetensors");
    assert!(
        amoeba(&["convert", &conformance_module(), "-o", st.to_str().unwrap()])
            .status
            .success()
    );
    let from_module = amoeba(&["genotype", &conformance_module(), "--format", "json"]);
    let from_file = amoeba(&["genotype", st.to_str().unwrap(), "--format", "json"]);
    assert!(from_file.status.success(), "{}", text(&from_file).1);
    let a: serde_json::Value = serde_json::from_slice(&from_module.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&from_file.stdout).unwrap();
    assert_eq!(
        a, b,
        "the converted file carries the same network description"
    );
}

#[test]
fn genotype_unknown_format_is_a_usage_error() {
    let out = amoeba(&["genotype", &conformance_module(), "--format", "png"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("unknown --format"),
        "{}",
        text(&out).1
    );
}

#[test]
fn run_writes_logits_and_features_matching_the_golden() {
    // The golden file itself is a valid input: it holds `images`.
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("out.safetensors");
    let out = amoeba(&[
        "run",
        &conformance_module(),
        "--input",
        &conformance_golden(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    let ours = std::fs::read(&out_path).unwrap();
    let ours = safetensors::SafeTensors::deserialize(&ours).unwrap();
    let golden = std::fs::read(conformance_golden()).unwrap();
    let golden = safetensors::SafeTensors::deserialize(&golden).unwrap();
    for name in ["logits", "features"] {
        let (a, g) = (ours.tensor(name).unwrap(), golden.tensor(name).unwrap());
        assert_eq!(a.shape(), g.shape(), "{name}");
        let max_diff = a
            .data()
            .chunks_exact(4)
            .zip(g.data().chunks_exact(4))
            .map(|(x, y)| {
                (f32::from_le_bytes(x.try_into().unwrap())
                    - f32::from_le_bytes(y.try_into().unwrap()))
                .abs()
            })
            .fold(0f32, f32::max);
        assert!(max_diff < 1e-4, "{name}: {max_diff}");
    }
    // --features leaves the logits out.
    let out = amoeba(&[
        "run",
        &conformance_module(),
        "--input",
        &conformance_golden(),
        "-o",
        out_path.to_str().unwrap(),
        "--features",
    ]);
    assert!(out.status.success());
    let bytes = std::fs::read(&out_path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.names(), vec!["features"]);
}

#[test]
fn run_refuses_images_of_the_wrong_size() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.safetensors");
    let header = br#"{"images":{"dtype":"F32","shape":[1,2,2,3],"data_offsets":[0,48]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 48]);
    std::fs::write(&input, bytes).unwrap();
    let out_path = tmp.path().join("out.safetensors");
    let out = amoeba(&[
        "run",
        &conformance_module(),
        "--input",
        input.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("[N, 331, 331, 3]"),
        "{}",
        text(&out).1
    );
    assert!(!out_path.exists(), "no output on failure");
}

/// NASNet-A mobile, exported by the official TF-slim code (stem scope `conv0`, epsilon 1e-3,
/// 224 px): every cell, the logits and the features match TensorFlow's goldens, from the
/// module and from the converted file.
#[test]
fn nasnet_a_mobile_conformance_module_verifies_from_module_and_converted_file() {
    let module = shared().join("nasnet_a_mobile_n6_f8");
    let golden = shared().join("nasnet_a_mobile_n6_f8.golden.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let converted = tmp.path().join("nasnet.safetensors");
    let out = amoeba(&[
        "convert",
        module.to_str().unwrap(),
        "-o",
        converted.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    for model in [module.as_path(), converted.as_path()] {
        let out = amoeba(&[
            "verify",
            model.to_str().unwrap(),
            "--golden",
            golden.to_str().unwrap(),
        ]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{model:?}: {stdout}{stderr}");
        assert!(stdout.trim_end().ends_with("PASS"), "{stdout}");
        for cell in ["cell_stem_0", "cell_stem_1", "reduction_cell_1", "cell_5"] {
            assert!(
                stdout.contains(&format!("cell_output/{cell} ")),
                "{cell}: {stdout}"
            );
        }
    }
    let out = amoeba(&["genotype", converted.to_str().unwrap(), "--format", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["spec"]["genotype"]["name"], "nasnet_a");
    assert_eq!(json["spec"]["stem_scope"], "conv0");
    assert_eq!(json["spec"]["image_size"], serde_json::json!([224, 224]));
}
