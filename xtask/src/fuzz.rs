//! `cargo xtask fuzz --seconds N`: builds the cargo-fuzz targets in `fuzz/`, writes their seed
//! corpora from `fixtures/`, runs every target for N seconds and prints, per target, the
//! run time, executions and outcome. A crash stops nothing else: every target runs, then the
//! command fails naming the targets whose crashing inputs are in `fuzz/artifacts/<target>/`.
//!
//! cargo-fuzz needs nightly-only flags (`-Zsanitizer=address`). With a nightly toolchain
//! installed through rustup it is used (`cargo +nightly fuzz`); otherwise the stable
//! toolchain is told to accept them with `RUSTC_BOOTSTRAP=1` (see fuzz/README.md).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A fuzz target and the libFuzzer flags it needs beyond the common ones.
struct Target {
    name: &'static str,
    extra: &'static [&'static str],
}

/// Every target in `fuzz/fuzz_targets/` (see `fuzz/src/lib.rs` for what each feeds).
const TARGETS: &[Target] = &[
    Target {
        name: "index_table",
        extra: &[],
    },
    Target {
        name: "bundle_entries",
        extra: &[],
    },
    // The seeds are fixture graphs of about 1 MB; libFuzzer's default cap would cut them.
    Target {
        name: "saved_model_genotype",
        extra: &["-max_len=1200000"],
    },
    Target {
        name: "safetensors_model",
        extra: &[],
    },
    Target {
        name: "network_spec",
        extra: &[],
    },
    Target {
        name: "golden",
        extra: &[],
    },
    Target {
        name: "image",
        extra: &[],
    },
    Target {
        name: "archive",
        extra: &[],
    },
];

/// One target's result.
struct Outcome {
    name: &'static str,
    wall: Duration,
    executions: Option<u64>,
    crashed: bool,
}

/// Builds, seeds and runs every fuzz target for `seconds` each.
pub fn run(root: &Path, seconds: u64) -> Result<()> {
    let fuzz_dir = root.join("fuzz");
    let toolchain = Toolchain::detect();
    build(&fuzz_dir, &toolchain)?;
    let bin_dir = fuzz_dir.join("target").join(host_triple()?).join("release");
    let status = Command::new(bin_dir.join("make_seeds"))
        .arg(root)
        .status()
        .context("cannot run fuzz/…/make_seeds")?;
    if !status.success() {
        bail!("make_seeds failed: the seed corpora could not be written from fixtures/");
    }
    let outcomes = TARGETS
        .iter()
        .map(|t| run_target(&fuzz_dir, &bin_dir, t, seconds))
        .collect::<Result<Vec<_>>>()?;
    print_table(&outcomes, &toolchain);
    let crashed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.crashed)
        .map(|o| o.name)
        .collect();
    if !crashed.is_empty() {
        bail!(
            "crashes in {}: inputs in fuzz/artifacts/<target>/ (reproduce with the target binary \
             and the file; add each as a test in the crate's tests/fuzz_regressions.rs)",
            crashed.join(", ")
        );
    }
    Ok(())
}

/// How cargo-fuzz gets its nightly flags.
enum Toolchain {
    /// `cargo +nightly fuzz`.
    Nightly,
    /// `RUSTC_BOOTSTRAP=1 cargo fuzz` on the default (stable) toolchain.
    Bootstrapped,
}

impl Toolchain {
    fn detect() -> Toolchain {
        let nightly = Command::new("rustup")
            .args(["run", "nightly", "rustc", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if nightly {
            Toolchain::Nightly
        } else {
            Toolchain::Bootstrapped
        }
    }

    fn cargo(&self) -> Command {
        let mut cmd = Command::new("cargo");
        match self {
            Toolchain::Nightly => {
                cmd.arg("+nightly");
            }
            Toolchain::Bootstrapped => {
                cmd.env("RUSTC_BOOTSTRAP", "1");
            }
        }
        cmd
    }

    fn describe(&self) -> &'static str {
        match self {
            Toolchain::Nightly => "cargo +nightly fuzz",
            Toolchain::Bootstrapped => "RUSTC_BOOTSTRAP=1 cargo fuzz (stable)",
        }
    }
}

fn build(fuzz_dir: &Path, toolchain: &Toolchain) -> Result<()> {
    let status = toolchain
        .cargo()
        // `-a`: keep overflow checks and debug assertions, which `-O` alone turns off; an
        // overflow the shipped binary would wrap silently is a bug worth finding.
        .args(["fuzz", "build", "-O", "-a"])
        .current_dir(fuzz_dir)
        .status()
        .context("cannot run cargo fuzz (install it with `cargo install cargo-fuzz`)")?;
    if !status.success() {
        bail!(
            "`{} build -O -a` failed in {} (is cargo-fuzz installed? `cargo install cargo-fuzz`)",
            toolchain.describe(),
            fuzz_dir.display()
        );
    }
    Ok(())
}

/// The host target triple, which names cargo-fuzz's output folder.
fn host_triple() -> Result<String> {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("cannot run rustc -vV")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .context("rustc -vV printed no host triple")
}

fn run_target(fuzz_dir: &Path, bin_dir: &Path, target: &Target, seconds: u64) -> Result<Outcome> {
    let corpus = fuzz_dir.join("corpus").join(target.name);
    let artifacts = fuzz_dir.join("artifacts").join(target.name);
    std::fs::create_dir_all(&artifacts).with_context(|| artifacts.display().to_string())?;
    eprintln!("fuzz: {} for {seconds} s", target.name);
    let started = Instant::now();
    let out = Command::new(bin_dir.join(target.name))
        .arg(&corpus)
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        // A single input taking 10 s is a hang; 2 GB of memory is an unbounded allocation.
        .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"])
        .args(target.extra)
        .env("ASAN_OPTIONS", "detect_odr_violation=0")
        .output()
        .with_context(|| format!("cannot run fuzz target {}", target.name))?;
    let wall = started.elapsed();
    let log = String::from_utf8_lossy(&out.stderr);
    let log_path = artifacts.join("last-run.log");
    std::fs::write(&log_path, log.as_bytes()).with_context(|| log_path.display().to_string())?;
    Ok(Outcome {
        name: target.name,
        wall,
        executions: stat(&log, "stat::number_of_executed_units:"),
        crashed: !out.status.success(),
    })
}

/// A `-print_final_stats` value.
fn stat(log: &str, key: &str) -> Option<u64> {
    log.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}

fn print_table(outcomes: &[Outcome], toolchain: &Toolchain) {
    println!("fuzzed with {}", toolchain.describe());
    println!("| target | run time | executions | exec/s | result |");
    println!("| --- | --- | --- | --- | --- |");
    for o in outcomes {
        let secs = o.wall.as_secs_f64();
        let (execs, rate) = match o.executions {
            Some(n) => (n.to_string(), format!("{:.0}", n as f64 / secs.max(1e-9))),
            None => ("?".into(), "?".into()),
        };
        let result = if o.crashed { "CRASH" } else { "ok" };
        println!(
            "| `{}` | {secs:.0} s | {execs} | {rate} | {result} |",
            o.name
        );
    }
}
