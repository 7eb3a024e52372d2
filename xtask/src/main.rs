//! Project automation. `cargo xtask <command>`:
//!
//! * `fixtures [--check]`: exports the small TF1 Hub fixture modules with real
//!   TensorFlow and their golden outputs into `fixtures/`, or (`--check`)
//!   regenerates them in a temporary folder and compares their structure with
//!   the committed ones and with the official conformance module.
//! * `golden --module M --images F... -o OUT`: golden outputs of any hub module.
//! * `synth-full -o DIR`: a full-size AmoebaNet-A N18/F448 module with random
//!   weights (about 1.9 GB) and its golden, for benchmarks.
//!
//! The numbers all come from TensorFlow, run by the Python scripts in
//! `xtask/python/`; this program only prepares the pinned virtual environment
//! `xtask/.venv` and calls them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Project automation (fixtures and goldens made by TensorFlow)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Export the fixture modules and goldens into fixtures/ (or check them).
    Fixtures {
        /// Regenerate into a temporary folder and compare the structure with
        /// fixtures/ and with the official conformance module; exit non-zero
        /// on any mismatch.
        #[arg(long)]
        check: bool,
        /// Write to this folder instead of fixtures/ (not with --check).
        #[arg(long, conflicts_with = "check")]
        out: Option<PathBuf>,
        /// Conformance module to compare with in --check
        /// (default: ../shared/conformance/amoebanet_a_n6_f16 beside the repo).
        #[arg(long)]
        conformance: Option<PathBuf>,
    },
    /// Golden outputs of any TF1 Hub image module (a folder or a .tar.gz).
    Golden {
        #[arg(long)]
        module: PathBuf,
        /// Image files (JPEG/PNG...), preprocessed by TensorFlow like the
        /// AmoebaNet evaluation.
        #[arg(long, num_args = 1.., required = true)]
        images: Vec<PathBuf>,
        #[arg(short, long)]
        out: PathBuf,
        /// Append one image of seeded uniform noise.
        #[arg(long)]
        noise: bool,
    },
    /// Full-size AmoebaNet-A (N=18, F=448) with random weights, and its golden.
    SynthFull {
        /// Output folder (gets amoebanet_a_n18_f448/ and its golden).
        #[arg(short, long)]
        out: PathBuf,
        /// Only the photo in the golden, no noise image.
        #[arg(long)]
        no_noise: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = repo_root()?;
    let python = ensure_venv(&root)?;
    let script = root.join("xtask/python/fixtures.py");
    let mut args: Vec<String> = Vec::new();
    match cli.command {
        Cmd::Fixtures { check, out, conformance } => {
            if check {
                let conformance = conformance.unwrap_or_else(|| {
                    root.join("../shared/conformance/amoebanet_a_n6_f16")
                });
                if !conformance.is_dir() {
                    bail!(
                        "conformance module {} not found (pass --conformance DIR)",
                        conformance.display()
                    );
                }
                args.extend(["check".into(), "--root".into(), path_arg(&root)]);
                args.extend(["--conformance".into(), path_arg(&absolute(&conformance)?)]);
            } else {
                args.extend(["fixtures".into(), "--root".into(), path_arg(&root)]);
                if let Some(out) = out {
                    args.extend(["--out".into(), path_arg(&absolute(&out)?)]);
                }
            }
        }
        Cmd::Golden { module, images, out, noise } => {
            args.extend(["golden".into(), "--module".into(), path_arg(&absolute(&module)?)]);
            args.push("--images".into());
            for image in &images {
                args.push(path_arg(&absolute(image)?));
            }
            args.extend(["-o".into(), path_arg(&absolute(&out)?)]);
            if noise {
                args.push("--noise".into());
            }
        }
        Cmd::SynthFull { out, no_noise } => {
            args.extend(["synth-full".into(), "-o".into(), path_arg(&absolute(&out)?)]);
            if no_noise {
                args.push("--no-noise".into());
            }
            // The spec's list of every variable of the real module, if present.
            let tsv = root.join("../shared/spec/variables-n18-f448-classification.tsv");
            if tsv.is_file() {
                args.extend(["--spec-tsv".into(), path_arg(&tsv)]);
            }
        }
    }
    let status = Command::new(&python)
        .arg(&script)
        .args(&args)
        .current_dir(root.join("xtask/python"))
        // Same hashing and no stray GPU probing from run to run.
        .env("PYTHONHASHSEED", "0")
        .env("CUDA_VISIBLE_DEVICES", "")
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    if !status.success() {
        bail!("{} {} failed ({status})", script.display(), args.first().map_or("", |s| s));
    }
    Ok(())
}

/// The workspace root: the parent of this crate's manifest folder.
fn repo_root() -> Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.parent().context("xtask has no parent folder")?;
    if !root.join("Cargo.toml").is_file() {
        bail!("no Cargo.toml in {}", root.display());
    }
    Ok(root.to_path_buf())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) })
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Creates `xtask/.venv` if missing and installs `xtask/requirements.txt`
/// when the venv is new or the requirements changed since the last install
/// (a hash stamp in the venv remembers it). Returns the venv's python.
fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join("xtask/.venv");
    let python = venv.join("bin/python");
    let requirements = root.join("xtask/requirements.txt");
    let text = std::fs::read(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let want = format!("{:016x}\n", fnv1a64(&text));
    let stamp = venv.join(".requirements-hash");
    if !python.is_file() {
        eprintln!("xtask: creating {}", venv.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        eprintln!("xtask: installing {} into {}", requirements.display(), venv.display());
        run(Command::new(&python).args(["-m", "pip", "install", "--quiet", "-r"]).arg(&requirements))?;
        std::fs::write(&stamp, want)?;
    }
    Ok(python)
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// FNV-1a, 64 bit: enough to notice that requirements.txt changed.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
