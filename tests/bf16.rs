//! `--precision bf16`: every fixture and both conformance modules verify with the bf16 bar
//! (where the CPU has AMX-BF16 or AVX512-BF16; elsewhere f32 runs, says so, and passes the
//! same bar), and bf16 really runs where the hardware is (its outputs differ from f32's).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn amoeba(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(args)
        .env("AMOEBA_CACHE_DIR", "")
        .output()
        .unwrap()
}

/// (module, golden) of every fixture and conformance module.
fn cases() -> Vec<(PathBuf, PathBuf)> {
    let text = std::fs::read_to_string(root().join("fixtures/manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut cases: Vec<(PathBuf, PathBuf)> = manifest["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let at = |key: &str| root().join("fixtures").join(f[key].as_str().unwrap());
            (at("module"), at("golden"))
        })
        .collect();
    for name in ["amoebanet_a_n6_f16", "nasnet_a_mobile_n6_f8"] {
        let dir = root().join("fixtures/conformance");
        cases.push((
            dir.join(name),
            dir.join(format!("{name}.golden.safetensors")),
        ));
    }
    cases
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_fixture_verifies_in_bf16_with_its_bar() {
    let mut engine_notes = Vec::new();
    for (module, golden) in cases() {
        let out = amoeba(&[
            "verify",
            s(&module),
            "--golden",
            s(&golden),
            "--precision",
            "bf16",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.trim_end().ends_with("PASS"),
            "{}:\n{stdout}\n{}",
            module.display(),
            stderr(&out)
        );
        engine_notes.push(stderr(&out));
    }
    let note = &engine_notes[0];
    assert!(
        note.contains("bf16: the GEMMs run on AMX-BF16")
            || note.contains("bf16: the GEMMs run on AVX512-BF16")
            || note.contains("has neither AMX-BF16 nor AVX512-BF16; running f32"),
        "{note}"
    );
    if note.contains("running f32") {
        eprintln!("bf16: no bf16 hardware on this CPU: the f32 fallback was checked instead");
    }
}

#[test]
fn bf16_outputs_differ_from_f32_where_the_hardware_is() {
    let dir = tempfile::tempdir().unwrap();
    let (module, golden) = &cases()[0];
    let mut logits = Vec::new();
    let mut notes = String::new();
    for precision in ["f32", "bf16"] {
        let out_path = dir.path().join(format!("{precision}.safetensors"));
        let out = amoeba(&[
            "run",
            s(module),
            "--input",
            s(golden),
            "-o",
            s(&out_path),
            "--precision",
            precision,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        notes += &stderr(&out);
        let bytes = std::fs::read(&out_path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        logits.push(st.tensor("logits").unwrap().data().to_vec());
    }
    if notes.contains("running f32") {
        assert_eq!(logits[0], logits[1], "the fallback is f32 itself");
        eprintln!("bf16: no bf16 hardware on this CPU; skipped the bf16-differs check");
    } else {
        assert_ne!(logits[0], logits[1], "bf16 ran: its rounding shows");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
