//! `amoeba inspect` on a file written by `amoeba convert` (its network, provenance and
//! tensors), and `amoeba completions`.

mod common;

use common::{amoeba_stderr, repo, FIXTURE_MODULE};

fn amoeba(args: &[&str]) -> (Option<i32>, String, String) {
    common::amoeba_run(args, &[])
}

#[test]
fn a_converted_file_is_inspected_with_its_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.safetensors");
    let (code, convert_out, stderr) = amoeba(&[
        "convert",
        repo(FIXTURE_MODULE).to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let sha = convert_out
        .split("checkpoint sha256 ")
        .nth(1)
        .unwrap()
        .trim_end_matches([')', '\n']);
    let (code, text, stderr) = amoeba(&["inspect", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(text.contains("genotype:   amoeba_net_a"), "{text}");
    assert!(text.contains(sha), "{text}");
    assert!(
        text.contains("1001 classes") && text.contains("F32: "),
        "{text}"
    );
    let (code, json, stderr) = amoeba(&[
        "inspect",
        file.to_str().unwrap(),
        "--json",
        "--variables",
        "--check",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["checkpoint_sha256"], sha);
    assert_eq!(v["genotype"], "amoeba_net_a");
    assert_eq!(
        v["num_tensors"].as_u64(),
        Some(v["variables"].as_array().unwrap().len() as u64)
    );
    assert!(
        stderr.contains("safetensors holds no checksums"),
        "{stderr}"
    );
    // Cut short: refused, naming the file.
    let bytes = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, stderr) = amoeba_stderr(&["inspect", cut.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cut.safetensors"), "{stderr}");
}

#[test]
fn completion_scripts_cover_every_command() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, script, stderr) = amoeba(&["completions", shell]);
        assert_eq!(code, Some(0), "{shell}: {stderr}");
        for command in [
            "inspect", "convert", "export", "verify", "classify", "genotype", "run",
        ] {
            assert!(
                script.contains(command),
                "{shell} completions lack {command}"
            );
        }
    }
    let (code, _, stderr) = amoeba(&["completions", "tcsh"]);
    assert_eq!(code, Some(2), "{stderr}");
}
