//! Project automation. `cargo xtask <command>`:
//!
//! * `fixtures [--check] [--only NAME]`: exports the small TF1 Hub fixture modules with real
//!   TensorFlow and their golden outputs into `fixtures/`, or (`--check`)
//!   regenerates them in a temporary folder and compares their structure with
//!   the committed ones and with the official conformance modules (AmoebaNet-A
//!   and NASNet-A mobile).
//! * `golden --module M --images F... -o OUT`: golden outputs of any hub module.
//! * `synth-full -o DIR [--family F]`: a full-size module with random weights
//!   and its golden (every cell's output), for benchmarks: AmoebaNet-A N18/F448
//!   (about 1.9 GB, the default), or with the hparams of the real
//!   `nasnet_mobile` (224 px, 12 cells, F=44), `nasnet_large` (331 px,
//!   18 cells, F=168, stem 96, skip_reduction_layer_input=1) or `pnasnet_large`
//!   (331 px, 12 cells, F=216, stem 96, one cell type) module.
//! * `bench [--module DIR] [--repeats R] [--rounds N] [--skip-tf] [--skip-tf215]
//!   [--skip-tf221] [--skip-openvino]`: the Rust forward pass (f32, bf16) and conversion
//!   timed against TensorFlow 2.15 and 2.21 and OpenVINO f32 and bf16 on the same module
//!   (see bench.rs; TF 2.21 and OpenVINO in `xtask/.venv-bench`).
//! * `check-convert`: every fixture module converted by `amoeba convert` and
//!   compared with TensorFlow's checkpoint reader.
//! * `check-onnx [--full DIR]`: every fixture exported by `amoeba export --format onnx`,
//!   checked by `onnx.checker` and run in ONNX Runtime against the TF goldens.
//! * `check-torch [--full DIR]`: every fixture exported by `amoeba export --format torch`,
//!   loaded by `python/amoeba_torch` in PyTorch (`xtask/.venv-torch`) against the TF goldens.
//! * `msrv`: clippy's `incompatible_msrv` against the stated `rust-version`.
//! * `fuzz --seconds N`: every cargo-fuzz target for N seconds (see fuzz.rs).
//!
//! The numbers all come from TensorFlow (or PyTorch, OpenVINO), run by the Python scripts in
//! `xtask/python/`; this program only prepares the pinned virtual environments
//! (`xtask/.venv`, `.venv-bench`, `.venv-torch`) and calls them.

mod bench;
mod bench_classify;
mod cases;
mod check_convert;
mod check_eval;
mod check_onnx;
mod check_torch;
mod child;
mod fuzz;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "Project automation (fixtures and goldens made by TensorFlow)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Export the fixture modules and goldens into fixtures/ (or check them).
    Fixtures {
        /// Regenerate into a temporary folder and compare the structure with
        /// fixtures/ and with the official conformance modules; exit non-zero
        /// on any mismatch.
        #[arg(long)]
        check: bool,
        /// Write to this folder instead of fixtures/ (not with --check).
        #[arg(long, conflicts_with = "check")]
        out: Option<PathBuf>,
        /// Regenerate only this fixture (its module and golden) and the manifest,
        /// leaving every other committed fixture as it is (not with --check).
        #[arg(long, conflicts_with = "check")]
        only: Option<String>,
        /// AmoebaNet-A conformance module to compare with in --check
        /// (default: fixtures/conformance/amoebanet_a_n6_f16, the committed copy);
        /// the NASNet-A one, nasnet_a_mobile_n6_f8, is looked for beside it.
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
    /// Full-size module with random weights, and its golden: AmoebaNet-A (N=18,
    /// F=448) by default, or NASNet-A (mobile, large) or PNASNet-5 (large) with the
    /// real module's hparams.
    SynthFull {
        /// Output folder (gets the module folder, e.g. amoebanet_a_n18_f448/,
        /// nasnet_a_mobile_n12_f44/, nasnet_a_large_n18_f168/ or
        /// pnasnet_5_large_n12_f216/, and its golden).
        #[arg(short, long)]
        out: PathBuf,
        /// Only the photo in the golden, no noise image.
        #[arg(long)]
        no_noise: bool,
        /// Whose hparams: amoebanet (AmoebaNet-A N18/F448, 331 px), nasnet_mobile
        /// (224 px, 12 cells, F=44, stem 32) or nasnet_large (331 px, 18 cells,
        /// F=168, stem 96, skip_reduction_layer_input=1) or pnasnet_large (331 px,
        /// 12 cells, F=216, stem 96, one cell type); 1001 classes each.
        #[arg(long, default_value = "amoebanet",
              value_parser = ["amoebanet", "nasnet_mobile", "nasnet_large", "pnasnet_large"])]
        family: String,
    },
    /// Time the Rust forward pass (f32, bf16) and conversion against TensorFlow 2.15 and 2.21
    /// and OpenVINO f32 and bf16 (full-size module).
    Bench {
        /// Module folder (made by `cargo xtask synth-full -o /tmp/xt/full`).
        #[arg(long, default_value = bench::DEFAULT_MODULE)]
        module: PathBuf,
        /// Timed runs per process and batch size, after one warm-up run.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        repeats: u32,
        /// Rounds of the forward comparison (every engine at batch 1, then at batch 8, one
        /// process each), run one after the other; each engine's timed runs are pooled over
        /// the rounds.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
        rounds: u32,
        /// No TensorFlow at all (no forward pass of either version, no Python conversion).
        #[arg(long)]
        skip_tf: bool,
        /// No TensorFlow 2.15 forward pass (xtask/.venv).
        #[arg(long)]
        skip_tf215: bool,
        /// No TensorFlow 2.21 forward pass (xtask/.venv-bench).
        #[arg(long)]
        skip_tf221: bool,
        /// No OpenVINO (no freezing either). With --skip-tf221 too: the engines of before
        /// issue 15, without xtask/.venv-bench.
        #[arg(long)]
        skip_openvino: bool,
    },
    /// Peak RSS and throughput of `amoeba classify` as the number of photos grows, against
    /// the forward pass alone.
    BenchClassify {
        /// Module (folder or converted file).
        #[arg(long, default_value = "fixtures/conformance/amoebanet_a_n6_f16")]
        module: PathBuf,
        /// Photo counts, one classify process each.
        #[arg(long, value_delimiter = ',', default_values_t = [100, 1000, 10000])]
        counts: Vec<usize>,
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// The module's image size.
        #[arg(long, default_value_t = 331)]
        size: usize,
        /// Timed forward passes alone (after a warm-up), before and after the classify runs.
        #[arg(long, default_value_t = 20)]
        repeats: u32,
    },
    /// Convert every fixture module with `amoeba convert` and compare the file with
    /// TensorFlow's checkpoint reader; non-zero exit on any difference.
    CheckConvert,
    /// Export every fixture and conformance module as ONNX, check it with onnx.checker and
    /// run it in ONNX Runtime against TensorFlow's goldens; non-zero exit on any mismatch.
    CheckOnnx {
        /// Also a full-size module: a folder made by `cargo xtask synth-full -o DIR`.
        #[arg(long)]
        full: Option<PathBuf>,
    },
    /// Export every fixture and conformance module with `--format torch`, load it with
    /// `python/amoeba_torch` in PyTorch (its own venv, `xtask/.venv-torch`) and compare with
    /// TensorFlow's goldens; fine-tune one fixture per family. Non-zero exit on any mismatch.
    CheckTorch {
        /// Also a full-size module: a folder made by `cargo xtask synth-full -o DIR`.
        #[arg(long)]
        full: Option<PathBuf>,
    },
    /// Run `amoeba eval` and TensorFlow on photos made from the shipped ones, for every
    /// classification fixture and conformance module; non-zero exit on any top-5 difference.
    CheckEval {
        /// Photos to make.
        #[arg(long, default_value_t = 300)]
        photos: usize,
    },
    /// Check every crate, test and example against the stated minimum Rust (`rust-version`):
    /// clippy's `incompatible_msrv` denies any standard-library item stabilized later. (Only
    /// one toolchain can be installed on this machine kind, so this stands in for a build
    /// with the old compiler; `tests/msrv.rs` checks the locked dependencies.)
    Msrv,
    /// Write the manual pages (amoeba.1 and one per command) with clap_mangen.
    Man {
        /// Output folder.
        #[arg(short, long, default_value = "target/man")]
        out: PathBuf,
    },
    /// Run every cargo-fuzz target for a bounded time.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = repo_root()?;
    match cli.command {
        // Fuzzing needs no Python; everything else runs TensorFlow.
        Cmd::Fuzz { seconds } => fuzz::run(&root, seconds),
        Cmd::Bench {
            module,
            repeats,
            rounds,
            skip_tf,
            skip_tf215,
            skip_tf221,
            skip_openvino,
        } => {
            let opts = bench::Options {
                module,
                repeats,
                rounds,
                skip_tf,
                skip_tf215,
                skip_tf221,
                skip_openvino,
            };
            // The venvs' wheels are large (TensorFlow twice): no copies in pip's cache.
            std::env::set_var("PIP_NO_CACHE_DIR", "1");
            let python = ensure_venv(&root)?;
            let bench_python = opts
                .needs_bench_venv()
                .then(|| ensure_venv_at(&root, ".venv-bench", "requirements-bench.txt"))
                .transpose()?;
            bench::run(&root, &python, bench_python.as_deref(), &opts)
        }
        Cmd::BenchClassify {
            module,
            counts,
            batch,
            size,
            repeats,
        } => bench_classify::run(
            &root,
            &bench_classify::Options {
                module,
                counts,
                batch,
                size,
                repeats,
            },
        ),
        Cmd::CheckConvert => check_convert::run(&root, &ensure_venv(&root)?),
        Cmd::Msrv => {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            run(Command::new(cargo)
                .args(["clippy", "--workspace", "--all-targets", "--locked", "--"])
                .args(["-A", "clippy::all", "-D", "clippy::incompatible_msrv"])
                .current_dir(&root))
        }
        Cmd::Man { out } => {
            let amoeba = build_amoeba(&root)?;
            run(Command::new(amoeba).arg("man").arg(root.join(out)))
        }
        Cmd::CheckEval { photos } => check_eval::run(&root, &ensure_venv(&root)?, photos),
        Cmd::CheckOnnx { full } => check_onnx::run(&root, &ensure_venv(&root)?, full.as_deref()),
        Cmd::CheckTorch { full } => check_torch::run(
            &root,
            &ensure_venv_at(&root, ".venv-torch", "requirements-torch.txt")?,
            full.as_deref(),
        ),
        Cmd::Fixtures {
            check,
            out,
            only,
            conformance,
        } => fixtures_script(&root, fixtures_args(&root, check, out, only, conformance)?),
        Cmd::Golden {
            module,
            images,
            out,
            noise,
        } => fixtures_script(&root, golden_args(&module, &images, &out, noise)?),
        Cmd::SynthFull {
            out,
            no_noise,
            family,
        } => fixtures_script(&root, synth_full_args(&root, &out, no_noise, &family)?),
    }
}

fn fixtures_args(
    root: &Path,
    check: bool,
    out: Option<PathBuf>,
    only: Option<String>,
    conformance: Option<PathBuf>,
) -> Result<Vec<String>> {
    let mut args: Vec<String> = Vec::new();
    if check {
        let conformance =
            conformance.unwrap_or_else(|| root.join("fixtures/conformance/amoebanet_a_n6_f16"));
        if !conformance.is_dir() {
            bail!(
                "conformance module {} not found (pass --conformance DIR)",
                conformance.display()
            );
        }
        args.extend(["check".into(), "--root".into(), path_arg(root)]);
        args.extend(["--conformance".into(), path_arg(&absolute(&conformance)?)]);
    } else {
        args.extend(["fixtures".into(), "--root".into(), path_arg(root)]);
        if let Some(out) = out {
            args.extend(["--out".into(), path_arg(&absolute(&out)?)]);
        }
        if let Some(only) = only {
            args.extend(["--only".into(), only]);
        }
    }
    Ok(args)
}

fn golden_args(module: &Path, images: &[PathBuf], out: &Path, noise: bool) -> Result<Vec<String>> {
    let mut args: Vec<String> = vec![
        "golden".into(),
        "--module".into(),
        path_arg(&absolute(module)?),
    ];
    args.push("--images".into());
    for image in images {
        args.push(path_arg(&absolute(image)?));
    }
    args.extend(["-o".into(), path_arg(&absolute(out)?)]);
    if noise {
        args.push("--noise".into());
    }
    Ok(args)
}

fn synth_full_args(root: &Path, out: &Path, no_noise: bool, family: &str) -> Result<Vec<String>> {
    let mut args: Vec<String> = vec!["synth-full".into(), "-o".into(), path_arg(&absolute(out)?)];
    if no_noise {
        args.push("--no-noise".into());
    }
    if family == "amoebanet" {
        // The spec's list of every variable of the real AmoebaNet module, if present.
        let tsv = root.join("../shared/spec/variables-n18-f448-classification.tsv");
        if tsv.is_file() {
            args.extend(["--spec-tsv".into(), path_arg(&tsv)]);
        }
    } else {
        args.extend(["--family".into(), family.into()]);
    }
    Ok(args)
}

/// Runs `xtask/python/fixtures.py ARGS` in the pinned venv.
fn fixtures_script(root: &Path, args: Vec<String>) -> Result<()> {
    let python = ensure_venv(root)?;
    let script = root.join("xtask/python/fixtures.py");
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
        bail!(
            "{} {} failed ({status})",
            script.display(),
            args.first().map_or("", |s| s)
        );
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

/// Builds the `amoeba` binary in release mode and returns its path.
fn build_amoeba(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .args(["build", "--release", "--bin", "amoeba"])
        .current_dir(root))?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || root.join("target"),
        |t| absolute(Path::new(&t)).unwrap_or(t.into()),
    );
    let amoeba = target.join("release/amoeba");
    if !amoeba.is_file() {
        bail!("{} not found after building", amoeba.display());
    }
    Ok(amoeba)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Creates `xtask/.venv` if missing and installs `xtask/requirements.txt`
/// when the venv is new or the requirements changed since the last install
/// (a hash stamp in the venv remembers it). Returns the venv's python.
fn ensure_venv(root: &Path) -> Result<PathBuf> {
    ensure_venv_at(root, ".venv", "requirements.txt")
}

/// [`ensure_venv`] for the venv `xtask/<venv>` of `xtask/<requirements>`.
fn ensure_venv_at(root: &Path, venv: &str, requirements: &str) -> Result<PathBuf> {
    let venv = root.join("xtask").join(venv);
    let python = venv.join("bin/python");
    let requirements = root.join("xtask").join(requirements);
    let text = std::fs::read(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let want = format!("{:016x}\n", fnv1a64(&text));
    let stamp = venv.join(".requirements-hash");
    if !python.is_file() {
        eprintln!("xtask: creating {}", venv.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        eprintln!(
            "xtask: installing {} into {}",
            requirements.display(),
            venv.display()
        );
        run(Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "-r"])
            .arg(&requirements))?;
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
