//! `cargo xtask check-torch [--full DIR]`: every fixture module and both official conformance
//! modules exported by `amoeba export --format torch`, loaded by `python/amoeba_torch` in
//! PyTorch and checked by `xtask/python/check_torch.py`: `state_dict()` equal to the file,
//! logits, features and every cell's output against TensorFlow's goldens with the verify bar
//! (same top-5), and on one fixture per family a fine-tuning run (loss down, weights changed
//! and finite). `--full DIR` adds a full-size module from `cargo xtask synth-full`.
//!
//! PyTorch lives in its own environment, `xtask/.venv-torch` from
//! `xtask/requirements-torch.txt`: it is large (its CUDA libraries come with the PyPI wheel,
//! about 5 GB) and nothing else needs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

struct Case {
    label: String,
    model: PathBuf,
    golden: PathBuf,
    train: bool,
}

pub fn run(root: &Path, python: &Path, full: Option<&Path>) -> Result<()> {
    let amoeba = crate::build_amoeba(root)?;
    let tmp = tempfile::Builder::new()
        .prefix("xtask-check-torch-")
        .tempdir()?;
    let mut cases = fixture_cases(root)?;
    cases.extend(crate::cases::conformance(root).into_iter().map(from_module));
    if let Some(dir) = full {
        cases.push(from_module(crate::cases::full_size(dir)?));
    }
    let script = root.join("xtask/python/check_torch.py");
    let mut failed = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let out = tmp.path().join(format!("{i}.safetensors"));
        eprintln!("check-torch: {}", case.label);
        if let Err(e) = check(&amoeba, python, &script, case, &out) {
            eprintln!("check-torch: {}: {e:#}", case.label);
            failed.push(case.label.clone());
        }
        let _ = std::fs::remove_file(&out);
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} exports fail: {}",
            failed.len(),
            cases.len(),
            failed.join(", ")
        );
    }
    println!(
        "check-torch: {} exports load in PyTorch and match TensorFlow's goldens",
        cases.len()
    );
    Ok(())
}

/// Every manifest fixture; the first classifier of each family also fine-tunes.
fn fixture_cases(root: &Path) -> Result<Vec<Case>> {
    let fixtures = root.join("fixtures");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("manifest.json"))?)?;
    let entries = manifest["fixtures"]
        .as_array()
        .context("manifest.json has no `fixtures` list")?;
    let mut trained_families: Vec<String> = Vec::new();
    let mut cases = Vec::new();
    for entry in entries {
        let (Some(module), Some(golden)) = (entry["module"].as_str(), entry["golden"].as_str())
        else {
            bail!("fixture without `module` or `golden`: {entry}");
        };
        let family = entry["family"].as_str().unwrap_or("amoebanet").to_string();
        let classifier = entry["num_classes"].as_u64().is_some_and(|n| n > 0);
        let train = classifier && !trained_families.contains(&family);
        if train {
            trained_families.push(family);
        }
        cases.push(Case {
            label: module.to_string(),
            model: fixtures.join(module),
            golden: fixtures.join(golden),
            train,
        });
    }
    Ok(cases)
}

fn from_module(m: crate::cases::Module) -> Case {
    Case {
        label: m.label,
        model: m.model,
        golden: m.golden,
        train: false,
    }
}

fn check(amoeba: &Path, python: &Path, script: &Path, case: &Case, out: &Path) -> Result<()> {
    let started = Instant::now();
    let output = Command::new(amoeba)
        .arg("export")
        .arg(&case.model)
        .args(["--format", "torch", "-q", "-o"])
        .arg(out)
        .output()
        .context("running amoeba export")?;
    if !output.status.success() {
        bail!(
            "amoeba export failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    eprintln!(
        "check-torch:   export {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg("--export")
        .arg(out)
        .arg("--golden")
        .arg(&case.golden);
    if case.train {
        cmd.arg("--train");
    }
    let result = cmd.output().context("running check_torch.py")?;
    let stdout = String::from_utf8_lossy(&result.stdout);
    eprintln!("check-torch:   {}", stdout.trim());
    if !result.status.success() {
        bail!(
            "check_torch.py failed: {}",
            String::from_utf8_lossy(&result.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(())
}
