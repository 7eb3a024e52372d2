//! `cargo xtask check-convert`: every fixture module (folder, and `.tar.gz` where there is
//! one) converted by `amoeba convert`, then read back by the Python `safetensors` library and
//! compared, variable by variable and byte by byte, with TensorFlow's own checkpoint reader
//! (`xtask/python/check_convert.py`). So a converted file is checked by code that shares
//! nothing with ours.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// One conversion to check: what `amoeba convert` reads, and the unpacked module folder
/// TensorFlow reads the checkpoint from.
struct Case {
    label: String,
    source: PathBuf,
    module_dir: PathBuf,
}

pub fn run(root: &Path, python: &Path) -> Result<()> {
    let amoeba = crate::build_amoeba(root)?;
    let cases = cases(&root.join("fixtures"))?;
    let tmp = tempfile::Builder::new()
        .prefix("xtask-check-convert-")
        .tempdir()?;
    let script = root.join("xtask/python/check_convert.py");
    let mut failed = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let out = tmp.path().join(format!("{i}.safetensors"));
        eprintln!("check-convert: {}", case.label);
        if let Err(e) = check(&amoeba, python, &script, case, &out) {
            eprintln!("check-convert: {}: {e:#}", case.label);
            failed.push(case.label.as_str());
        }
        // Fixture conversions are small, but do not keep them all.
        let _ = std::fs::remove_file(&out);
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} conversions differ: {}",
            failed.len(),
            cases.len(),
            failed.join(", ")
        );
    }
    println!(
        "check-convert: {} conversions identical to tf.train.load_checkpoint",
        cases.len()
    );
    Ok(())
}

/// Every module of `fixtures/manifest.json`, and its `.tar.gz` where it has one.
fn cases(fixtures: &Path) -> Result<Vec<Case>> {
    let manifest_path = fixtures.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    let manifest: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", manifest_path.display()))?;
    let entries = manifest["fixtures"]
        .as_array()
        .context("manifest.json has no `fixtures` list")?;
    let mut cases = Vec::new();
    for entry in entries {
        let module = entry["module"]
            .as_str()
            .with_context(|| format!("fixture without `module`: {entry}"))?;
        let module_dir = fixtures.join(module);
        for source in [Some(module), entry["module_tar_gz"].as_str()]
            .into_iter()
            .flatten()
        {
            cases.push(Case {
                label: source.to_string(),
                source: fixtures.join(source),
                module_dir: module_dir.clone(),
            });
        }
    }
    if cases.is_empty() {
        bail!("{} lists no fixture modules", manifest_path.display());
    }
    Ok(cases)
}

fn check(amoeba: &Path, python: &Path, script: &Path, case: &Case, out: &Path) -> Result<()> {
    crate::run(
        Command::new(amoeba)
            .arg("convert")
            .arg(&case.source)
            .arg("-o")
            .arg(out),
    )?;
    crate::run(
        Command::new(python)
            .arg(script)
            .arg(&case.module_dir)
            .arg(out)
            .env("CUDA_VISIBLE_DEVICES", "")
            // TensorFlow's start-up notices would bury the one line that matters.
            .env("TF_CPP_MIN_LOG_LEVEL", "1"),
    )
}
