//! `cargo xtask check-onnx [--full DIR]`: every fixture (module folder and `.tar.gz`, and
//! from its converted `.safetensors`) and both official conformance modules exported by
//! `amoeba export --format onnx`, embedded and with external data, then checked by
//! `onnx.checker` (full check) and run in ONNX Runtime against TensorFlow's goldens with the
//! verify bar (`xtask/python/check_onnx.py`): code that shares nothing with ours.
//! `--full DIR` adds a full-size module from `cargo xtask synth-full` (its golden beside it),
//! with the export's time and peak RSS and ORT's time per batch.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

struct Case {
    label: String,
    model: PathBuf,
    golden: PathBuf,
    external: bool,
}

pub fn run(root: &Path, python: &Path, full: Option<&Path>) -> Result<()> {
    let amoeba = crate::build_amoeba(root)?;
    let tmp = tempfile::Builder::new()
        .prefix("xtask-check-onnx-")
        .tempdir()?;
    let mut cases = fixture_cases(root, &amoeba, tmp.path())?;
    cases.extend(crate::cases::conformance(root).into_iter().map(from_module));
    if let Some(dir) = full {
        cases.push(from_module(crate::cases::full_size(dir)?));
    }
    let script = root.join("xtask/python/check_onnx.py");
    let mut failed = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let out = tmp.path().join(format!("{i}.onnx"));
        eprintln!("check-onnx: {}", case.label);
        if let Err(e) = check(&amoeba, python, &script, case, &out, full.is_some()) {
            eprintln!("check-onnx: {}: {e:#}", case.label);
            failed.push(case.label.clone());
        }
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(out.with_file_name(format!("{i}.onnx.data")));
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
        "check-onnx: {} exports pass onnx.checker and match TensorFlow's goldens in ONNX Runtime",
        cases.len()
    );
    Ok(())
}

/// Every manifest fixture from its folder (embedded and external data), its `.tar.gz`, and
/// its converted file.
fn fixture_cases(root: &Path, amoeba: &Path, tmp: &Path) -> Result<Vec<Case>> {
    let fixtures = root.join("fixtures");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("manifest.json"))?)?;
    let entries = manifest["fixtures"]
        .as_array()
        .context("manifest.json has no `fixtures` list")?;
    let mut cases = Vec::new();
    for (n, entry) in entries.iter().enumerate() {
        let (Some(module), Some(golden)) = (entry["module"].as_str(), entry["golden"].as_str())
        else {
            bail!("fixture without `module` or `golden`: {entry}");
        };
        let golden = fixtures.join(golden);
        let mut add = |label: String, model: PathBuf, external: bool| {
            cases.push(Case {
                label,
                model,
                golden: golden.clone(),
                external,
            })
        };
        add(module.to_string(), fixtures.join(module), false);
        add(
            format!("{module} (external data)"),
            fixtures.join(module),
            true,
        );
        if let Some(tgz) = entry["module_tar_gz"].as_str() {
            add(tgz.to_string(), fixtures.join(tgz), false);
        }
        let converted = tmp.join(format!("{n}.safetensors"));
        crate::run(
            Command::new(amoeba)
                .arg("convert")
                .arg(fixtures.join(module))
                .arg("-o")
                .arg(&converted),
        )?;
        add(format!("{module} (converted)"), converted, false);
    }
    Ok(cases)
}

fn from_module(m: crate::cases::Module) -> Case {
    Case {
        label: m.label,
        model: m.model,
        golden: m.golden,
        external: false,
    }
}

fn check(
    amoeba: &Path,
    python: &Path,
    script: &Path,
    case: &Case,
    out: &Path,
    timing: bool,
) -> Result<()> {
    let mut export = Command::new("/usr/bin/time");
    export.arg("-v").arg(amoeba).arg("export").arg(&case.model);
    export.arg("--format").arg("onnx").arg("-o").arg(out);
    if case.external {
        export.arg("--external-data");
    }
    let started = Instant::now();
    let output = export
        .output()
        .context("running amoeba export under /usr/bin/time")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "amoeba export failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let rss = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .unwrap_or("?");
    eprintln!("check-onnx:   export {seconds:.2} s, peak RSS {rss} kB");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg("--model")
        .arg(out)
        .arg("--golden")
        .arg(&case.golden);
    if timing {
        cmd.args(["--timing-runs", "3"]);
    }
    if timing {
        // Beside ORT's time: amoeba's own forward pass on the same images, loading included.
        let started = Instant::now();
        let ran = Command::new(amoeba)
            .arg("run")
            .arg(&case.model)
            .arg("--input")
            .arg(&case.golden)
            .arg("-o")
            .arg(out.with_extension("run.safetensors"))
            .output()
            .context("running amoeba run")?;
        let _ = std::fs::remove_file(out.with_extension("run.safetensors"));
        if !ran.status.success() {
            bail!(
                "amoeba run failed: {}",
                String::from_utf8_lossy(&ran.stderr)
            );
        }
        eprintln!(
            "check-onnx:   amoeba run on the golden's images: {:.2} s wall, loading included",
            started.elapsed().as_secs_f64()
        );
    }
    let result = cmd.output().context("running check_onnx.py")?;
    let report = String::from_utf8_lossy(&result.stdout);
    eprintln!("check-onnx:   {}", report.trim());
    if !result.status.success() {
        bail!(
            "check_onnx.py: {}{}",
            report.trim(),
            String::from_utf8_lossy(&result.stderr)
        );
    }
    Ok(())
}
