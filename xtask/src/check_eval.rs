//! `cargo xtask check-eval [--photos N]`: `amoeba eval` against TensorFlow on the same files.
//!
//! N photos (default 300) are made from the shipped ones by TensorFlow's image ops (crops,
//! flips, resizes, PNG and JPEG); for every classification fixture and both conformance
//! modules, TensorFlow classifies them (hub.Module after its own preprocessing) and writes a
//! ground-truth file from its predictions (`xtask/python/check_eval.py tf`); `amoeba eval`
//! runs on the folder with that file; each photo's top-5 must equal TensorFlow's (a swap only
//! where TF's logits tie within 1e-4) and the report's top-1/top-5 counts TF's.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn run(root: &Path, python: &Path, photos: usize) -> Result<()> {
    let amoeba = crate::build_amoeba(root)?;
    let tmp = tempfile::Builder::new()
        .prefix("xtask-check-eval-")
        .tempdir()?;
    let script = root.join("xtask/python/check_eval.py");
    let photo_dir = tmp.path().join("photos");
    let count = photos.to_string();
    python_step(
        python,
        &script,
        &["photos", "--out", s(&photo_dir)?, "--count", &count],
    )?;
    let mut failed = Vec::new();
    let modules = modules(root)?;
    for module in &modules {
        let name = module
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        eprintln!("check-eval: {name}");
        if let Err(e) = check(&amoeba, python, &script, module, &photo_dir, tmp.path()) {
            eprintln!("check-eval: {name}: {e:#}");
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} modules differ from TensorFlow: {}",
            failed.len(),
            modules.len(),
            failed.join(", ")
        );
    }
    println!(
        "check-eval: {} modules, {photos} photos each: amoeba eval's top-5 per photo and its counts equal TensorFlow's",
        modules.len()
    );
    Ok(())
}

/// The classification modules: fixture folders (not feature vectors) and the conformance ones.
fn modules(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root.join("fixtures/modules"))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() && !name.ends_with("_feature_vector") {
            found.push(path);
        }
    }
    found.sort();
    for name in ["amoebanet_a_n6_f16", "nasnet_a_mobile_n6_f8"] {
        found.push(root.join("fixtures/conformance").join(name));
    }
    Ok(found)
}

fn check(
    amoeba: &Path,
    python: &Path,
    script: &Path,
    module: &Path,
    photos: &Path,
    tmp: &Path,
) -> Result<()> {
    let tf = tmp.join("tf.json");
    let labels = tmp.join("labels.txt");
    let records = tmp.join("records.jsonl");
    let report = tmp.join("report.json");
    for stale in [&records, &report] {
        let _ = std::fs::remove_file(stale);
    }
    python_step(
        python,
        script,
        &[
            "tf",
            "--module",
            s(module)?,
            "--photos",
            s(photos)?,
            "--out",
            s(&tf)?,
            "--labels-out",
            s(&labels)?,
        ],
    )?;
    let status = Command::new(amoeba)
        .args(["--quiet", "eval"])
        .args([module, photos])
        .arg("--labels")
        .arg(&labels)
        .arg("-o")
        .arg(&records)
        .arg("--report")
        .arg(&report)
        .args(["--batch", "8"])
        .env("AMOEBA_CACHE_DIR", "")
        .status()
        .context("running amoeba eval")?;
    if !status.success() {
        bail!("amoeba eval exited with {status}");
    }
    python_step(
        python,
        script,
        &[
            "compare",
            "--tf",
            s(&tf)?,
            "--records",
            s(&records)?,
            "--report",
            s(&report)?,
        ],
    )
}

fn python_step(python: &Path, script: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new(python)
        .arg(script)
        .args(args)
        .env("TF_CPP_MIN_LOG_LEVEL", "2")
        .env_remove("OPENBLAS_CORETYPE")
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!(
            "{} {} exited with {status}",
            script.display(),
            args.first().copied().unwrap_or("")
        );
    }
    Ok(())
}

fn s(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}
