//! The fixtures' random weights are said so: the fixture generator attaches `amoeba_weights`
//! (`random: ...`) to every module it makes, and `classify`, `run`, `inspect` and `convert`
//! carry or show it. The official conformance exports have no such attachment and get no
//! notice.

mod common;

use common::{repo, FIXTURE_MODULE};

fn amoeba(args: &[&str]) -> (Option<i32>, String, String) {
    common::amoeba_run(args, &[])
}

const NOTICE: &str = "weights are random";

fn photo() -> String {
    repo("fixtures/preprocess/chelsea.png")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn classify_on_a_fixture_says_its_weights_are_random() {
    let module = repo(FIXTURE_MODULE);
    let (code, stdout, stderr) = amoeba(&["classify", module.to_str().unwrap(), &photo()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(NOTICE), "{stderr}");
    assert!(stderr.contains("seed 3008"), "{stderr}");
    assert!(
        stderr.contains("amoebanet_a_n18_f448"),
        "names the real module: {stderr}"
    );
    assert!(
        !stdout.contains(NOTICE),
        "the notice is not in the results: {stdout}"
    );
    let (code, _, stderr) = amoeba(&["classify", "-q", module.to_str().unwrap(), &photo()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains(NOTICE), "--quiet: {stderr}");
}

#[test]
fn the_archive_fixture_is_marked_too() {
    let archive = repo("fixtures/modules/amoebanet_a_n3_f8.tar.gz");
    let cache = tempfile::tempdir().unwrap();
    let (code, _, stderr) = common::amoeba_run(
        &["classify", archive.to_str().unwrap(), &photo()],
        &[("AMOEBA_CACHE_DIR", cache.path().as_os_str())],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(NOTICE), "{stderr}");
}

#[test]
fn convert_carries_the_mark_and_the_converted_file_says_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.safetensors");
    let module = repo(FIXTURE_MODULE);
    let (code, _, stderr) = amoeba(&[
        "convert",
        module.to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, json, stderr) = amoeba(&["inspect", file.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let weights = v["weights"].as_str().unwrap();
    assert!(
        weights.starts_with("random: seeded numpy (seed 3008)"),
        "{weights}"
    );
    let (code, text, _) = amoeba(&["inspect", file.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert!(text.contains("weights:    random: seeded numpy"), "{text}");
    let out = dir.path().join("out.safetensors");
    let input = repo("fixtures/goldens/amoebanet_a_n3_f8.golden.safetensors");
    let (code, _, stderr) = amoeba(&[
        "run",
        file.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains(NOTICE), "{stderr}");
}

#[test]
fn inspect_on_a_fixture_module_shows_the_mark() {
    let module = repo(FIXTURE_MODULE);
    let (code, json, stderr) = amoeba(&["inspect", module.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        v["weights"].as_str().unwrap().starts_with("random:"),
        "{json}"
    );
}

#[test]
fn an_official_export_gets_no_notice() {
    let module = repo("fixtures/conformance/amoebanet_a_n6_f16");
    let (code, json, stderr) = amoeba(&["inspect", module.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v["weights"].is_null(), "{json}");
    let astronaut = repo("fixtures/preprocess/astronaut.png");
    let (code, _, stderr) = amoeba(&[
        "classify",
        module.to_str().unwrap(),
        astronaut.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains(NOTICE), "{stderr}");
}

/// `file` with `__metadata__["amoeba.weights"]` set to `note` (header re-padded to 8 bytes).
fn with_weights_metadata(file: &std::path::Path, note: &str, out: &std::path::Path) {
    let bytes = std::fs::read(file).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    header["__metadata__"]["amoeba.weights"] = serde_json::Value::from(note);
    let mut json = serde_json::to_vec(&header).unwrap();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut new = (json.len() as u64).to_le_bytes().to_vec();
    new.extend_from_slice(&json);
    new.extend_from_slice(&bytes[8 + len..]);
    std::fs::write(out, new).unwrap();
}

#[test]
fn a_bad_weights_note_in_a_converted_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.safetensors");
    let module = repo(FIXTURE_MODULE);
    let (code, _, stderr) = amoeba(&[
        "convert",
        module.to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let input = repo("fixtures/goldens/amoebanet_a_n3_f8.golden.safetensors");
    for (name, note) in [
        ("ctl", "random\u{1b}[2J".to_string()),
        ("long", "r".repeat(5000)),
    ] {
        let bad = dir.path().join(format!("{name}.safetensors"));
        with_weights_metadata(&file, &note, &bad);
        let out = dir.path().join("out.safetensors");
        let (code, _, stderr) = amoeba(&[
            "run",
            bad.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains("bad amoeba.weights metadata")
                && stderr.contains(bad.to_str().unwrap()),
            "{name}: {stderr}"
        );
        assert!(!out.exists(), "{name}: no output");
    }
    // A trained model's own note is no notice.
    let fine = dir.path().join("fine.safetensors");
    with_weights_metadata(&file, "trained on ImageNet by its owner", &fine);
    let out = dir.path().join("out.safetensors");
    let (code, _, stderr) = amoeba(&[
        "run",
        fine.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains(NOTICE), "{stderr}");
}
