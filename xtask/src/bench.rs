//! `cargo xtask bench [--module DIR] [--repeats R] [--rounds N] [--skip-tf] [--skip-tf215]
//! [--skip-tf221] [--skip-openvino]`: the Rust forward pass (f32 and bf16) and conversion
//! against TensorFlow 2.15 and 2.21 and OpenVINO (f32 and bf16) on the same module, same images,
//! same machine.
//!
//! Forward: `amoeba run CONVERTED --repeat R+1 --precision f32|bf16` (its first run is the
//! warm-up and is dropped), `bench_tf.py forward` (the module's graph in tf.compat.v1, a
//! Session, one warm-up run, then R timed runs) in TensorFlow 2.15.1 (xtask/.venv, hub.Module)
//! and 2.21.0 (xtask/.venv-bench, the saved_model.pb's inference graph imported directly), and
//! `bench_ov.py forward` (OpenVINO's CPU plugin, INFERENCE_PRECISION_HINT f32 or bf16,
//! PERFORMANCE_HINT LATENCY, the batch fixed at compile time, one warm-up run, then R timed
//! runs) on the IR converted from a frozen graph of the same module; all alternating process by
//! process at batch 1 then batch 8, for N rounds, so a change of speed of the shared machine
//! (seen: ±10% within minutes) hits every engine; each engine's timed runs are pooled over the
//! rounds before the median. Each row says what the engine really ran: amoeba's bf16 note,
//! OpenVINO's INFERENCE_PRECISION_HINT read back from the compiled model (and its runtime
//! graph's kernels, below the table). OpenVINO's logits are compared with the module's golden
//! (`DIR.golden.safetensors`) where there is one.
//!
//! The OpenVINO model: `bench_ov.py freeze` (TensorFlow 2.21: variables to constants, input
//! `images`, output `logits`) writes `NAME.frozen.pb`, `bench_ov.py convert`
//! (`openvino.convert_model`, weights kept f32) `NAME.openvino.xml` + `.bin`, both cached
//! beside the module (under `target/xtask-bench/` for a module inside the repository) and
//! made again when the module (or the frozen graph) is newer.
//!
//! Convert: `amoeba convert` against `tf.train.load_checkpoint` + `safetensors.numpy.save_file`
//! (TensorFlow 2.15), writing into the same folder (/dev/shm, then beside the module on disk)
//! with the checkpoint in the page cache. Every child's peak RSS comes from `wait4`; the load
//! average is printed with each number.

use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::child::{self, Measured};

/// AmoebaNet-A's input size.
const IMAGE_SIZE: usize = 331;
const BATCHES: [usize; 2] = [1, 8];
/// AmoebaNet-A N18/F448 at 331 px, as issue 7 estimates it: 104 G multiply-adds per image,
/// two FLOPs each. (The GEMMs of the forward pass do 125.5 G: 250.5 GFLOP; see the README.)
const GFLOP_PER_IMAGE: f64 = 208.0;
/// Where `cargo xtask synth-full -o /tmp/xt/full` puts the full-size module.
pub const DEFAULT_MODULE: &str = "/tmp/xt/full/amoebanet_a_n18_f448";

pub struct Options {
    pub module: PathBuf,
    pub repeats: u32,
    pub rounds: u32,
    /// No TensorFlow forward pass (neither version) and no Python conversion.
    pub skip_tf: bool,
    /// No TensorFlow 2.15 forward pass.
    pub skip_tf215: bool,
    /// No TensorFlow 2.21 forward pass.
    pub skip_tf221: bool,
    /// No OpenVINO (and no freezing).
    pub skip_openvino: bool,
}

impl Options {
    fn tf215(&self) -> bool {
        !self.skip_tf && !self.skip_tf215
    }

    fn tf221(&self) -> bool {
        !self.skip_tf && !self.skip_tf221
    }

    /// Whether xtask/.venv-bench (TensorFlow 2.21, OpenVINO) is needed.
    pub fn needs_bench_venv(&self) -> bool {
        self.tf221() || !self.skip_openvino
    }

    /// The flags as given, for the report.
    fn flags(&self) -> String {
        [
            (self.skip_tf, " --skip-tf"),
            (self.skip_tf215, " --skip-tf215"),
            (self.skip_tf221, " --skip-tf221"),
            (self.skip_openvino, " --skip-openvino"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, flag)| *flag)
        .collect()
    }
}

/// One process's forward-pass timings at one batch size.
struct ForwardRow {
    engine: String,
    batch: usize,
    /// Timed runs only, warm-up excluded.
    seconds: Vec<f64>,
    peak_rss: u64,
    /// The process's CPU time over its wall time (at most the core count).
    cpu_per_wall: f64,
    load: String,
    /// What the engine really computed in, as it reported it.
    precision: String,
    /// The engine's own description: TensorFlow's `tf_info` line (version, oneDNN, thread
    /// pools), OpenVINO's properties and runtime kernels.
    info: Option<String>,
    /// Against the golden, over the images that are the golden's.
    golden: Option<GoldenError>,
    /// Processes pooled into this row.
    rounds: u32,
}

/// `max |logits - golden|` over the first `images` images.
#[derive(Clone, Copy, Debug, PartialEq)]
struct GoldenError {
    max_abs: f64,
    golden_max_abs: f64,
    images: usize,
    top1_agree: usize,
}

impl ForwardRow {
    /// Adds a later round's process: its timed runs, the larger peak RSS, the mean CPU/wall,
    /// the larger golden error; a precision that differs from the first round's is kept too.
    fn pool(&mut self, later: ForwardRow) {
        let n = self.rounds as f64;
        self.cpu_per_wall = (self.cpu_per_wall * n + later.cpu_per_wall) / (n + 1.0);
        self.rounds += 1;
        self.seconds.extend(later.seconds);
        self.peak_rss = self.peak_rss.max(later.peak_rss);
        self.load = format!("{}; {}", self.load, later.load);
        if !self.precision.split("; ").any(|p| p == later.precision) {
            self.precision = format!("{}; {}", self.precision, later.precision);
        }
        self.golden = match (self.golden, later.golden) {
            (Some(a), Some(b)) => Some(GoldenError {
                max_abs: a.max_abs.max(b.max_abs),
                golden_max_abs: a.golden_max_abs.max(b.golden_max_abs),
                images: a.images.min(b.images),
                top1_agree: a.top1_agree.min(b.top1_agree),
            }),
            (a, b) => a.or(b),
        };
    }
}

/// One conversion of the whole checkpoint.
struct ConvertRow {
    tool: &'static str,
    folder: String,
    wall: f64,
    /// Python's time without importing TensorFlow.
    inner: Option<f64>,
    peak_rss: u64,
    cpu_per_wall: f64,
    load: String,
}

/// `python` is xtask/.venv's (TensorFlow 2.15.1), `bench_python` xtask/.venv-bench's
/// (TensorFlow 2.21.0, OpenVINO), needed when [`Options::needs_bench_venv`].
pub fn run(root: &Path, python: &Path, bench_python: Option<&Path>, opts: &Options) -> Result<()> {
    let module = checked_module(&opts.module)?;
    let amoeba = crate::build_amoeba(root)?;
    let tf = Py::new(python, root.join("xtask/python/bench_tf.py"));
    let bench_python = match (opts.needs_bench_venv(), bench_python) {
        (false, _) => None,
        (true, Some(p)) => Some(p),
        (true, None) => bail!("TensorFlow 2.21 and OpenVINO need xtask/.venv-bench's python"),
    };
    let tf221 = bench_python.map(|p| Py::new(p, root.join("xtask/python/bench_tf.py")));
    let ov = bench_python.map(|p| Py::new(p, root.join("xtask/python/bench_ov.py")));
    let work = tempfile::Builder::new().prefix("xtask-bench-").tempdir()?;
    tf.make_inputs(&module, work.path())?;
    let golden = golden_of(&module);
    let mut preps = Vec::new();
    let ov_model = match (&ov, opts.skip_openvino) {
        (Some(ov), false) => Some(prepare_openvino(root, ov, &module, &mut preps)?),
        _ => None,
    };
    let shard_bytes = warm_page_cache(&module)?;
    eprintln!("bench: checkpoint shards {shard_bytes} bytes, now in the page cache");
    // Beside the module on disk; amoeba's output here is also the model timed below.
    let parent = module.parent().context("module has no parent folder")?;
    let disk = tempfile::Builder::new()
        .prefix(".xtask-bench-")
        .tempdir_in(parent)?;
    let shm = tempfile::Builder::new()
        .prefix("xtask-bench-")
        .tempdir_in("/dev/shm")
        .ok();
    let mut converts = Vec::new();
    for folder in shm.iter().map(|d| d.path()).chain([disk.path()]) {
        warm_page_cache(&module)?;
        converts.extend(convert_pair(&amoeba, &tf, &module, folder, opts.skip_tf)?);
    }
    drop(shm);
    let engines = Engines {
        amoeba: &amoeba,
        model: disk.path().join("amoeba.safetensors"),
        module: &module,
        tf215: opts.tf215().then_some(&tf),
        tf221: tf221.as_ref().filter(|_| opts.tf221()),
        ov: ov.as_ref().zip(ov_model.as_ref()),
        golden: golden.as_deref(),
    };
    let forwards = forward_rounds(&engines, work.path(), opts)?;
    print_report(&forwards, &converts, &preps, shard_bytes, opts);
    Ok(())
}

/// `DIR.golden.safetensors` beside the module `DIR`, if there is one.
fn golden_of(module: &Path) -> Option<PathBuf> {
    let golden = PathBuf::from(format!("{}.golden.safetensors", module.display()));
    golden.is_file().then_some(golden)
}

fn checked_module(module: &Path) -> Result<PathBuf> {
    if !module.join("variables/variables.index").is_file() {
        bail!(
            "{} is not a module folder with variables/; make the full-size one with \
             `cargo xtask synth-full -o /tmp/xt/full` (about 1.9 GB) or pass --module DIR",
            module.display()
        );
    }
    crate::absolute(module)
}

/// A Python side: a venv's python running `bench_tf.py` or `bench_ov.py`.
struct Py<'a> {
    python: &'a Path,
    script: PathBuf,
}

impl<'a> Py<'a> {
    fn new(python: &'a Path, script: PathBuf) -> Self {
        Py { python, script }
    }

    /// A command for the script. The OpenBLAS tuning variables set on this machine slow
    /// numpy and TensorFlow down, so they are removed for the Python children only.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.python);
        cmd.arg(&self.script)
            .args(args)
            .env_remove("OPENBLAS_CORETYPE")
            .env_remove("OPENBLAS_L2_SIZE")
            .env("PYTHONHASHSEED", "0")
            .env("CUDA_VISIBLE_DEVICES", "");
        cmd
    }

    /// `images_b1.safetensors` and `images_b8.safetensors` in `dir`: the golden's images
    /// (if the module has one beside it) then seeded noise.
    fn make_inputs(&self, module: &Path, dir: &Path) -> Result<()> {
        let dir = path_str(dir)?;
        let size = IMAGE_SIZE.to_string();
        let batches: Vec<String> = BATCHES.iter().map(|b| b.to_string()).collect();
        let mut args = vec!["inputs", "--out", dir, "--size", &size, "--batches"];
        args.extend(batches.iter().map(String::as_str));
        let golden = golden_of(module);
        if let Some(golden) = &golden {
            args.extend(["--golden", path_str(golden)?]);
        }
        child::measure(&mut self.command(&args))?;
        Ok(())
    }
}

/// The OpenVINO model of the module: its frozen graph and the IR made from it.
struct OvModel {
    frozen: PathBuf,
    ir: PathBuf,
}

/// One step making the OpenVINO model (freezing, converting), or its cached output.
struct PrepRow {
    step: &'static str,
    output: PathBuf,
    bytes: u64,
    /// None: the output was fresh and reused.
    measured: Option<PrepMeasured>,
}

struct PrepMeasured {
    wall: f64,
    peak_rss: u64,
    cpu_per_wall: f64,
    load: String,
    /// What the step printed about its output.
    note: String,
}

/// Where the frozen graph and IR of `module` are cached: beside it, or under
/// `target/xtask-bench/` for a module inside the repository (a fixture), whose folder is
/// tracked.
fn ov_cache_dir(root: &Path, module: &Path) -> Result<PathBuf> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if canonical(module).starts_with(canonical(root)) {
        let dir = root.join("target/xtask-bench");
        std::fs::create_dir_all(&dir)?;
        return Ok(dir);
    }
    Ok(module
        .parent()
        .context("module has no parent folder")?
        .to_path_buf())
}

/// The newest modification time of the module's graph and variables.
fn module_mtime(module: &Path) -> Result<std::time::SystemTime> {
    let mut newest = std::fs::metadata(module.join("saved_model.pb"))?.modified()?;
    for entry in std::fs::read_dir(module.join("variables"))? {
        newest = newest.max(entry?.metadata()?.modified()?);
    }
    Ok(newest)
}

/// Whether `path` exists and is at least as new as `than`.
fn fresh(path: &Path, than: std::time::SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= than)
}

/// Freezes the module (`bench_ov.py freeze`) and converts the frozen graph to IR
/// (`bench_ov.py convert`) unless the cached files are fresh; one [`PrepRow`] per step.
fn prepare_openvino(
    root: &Path,
    ov: &Py,
    module: &Path,
    preps: &mut Vec<PrepRow>,
) -> Result<OvModel> {
    let dir = ov_cache_dir(root, module)?;
    let name = module
        .file_name()
        .and_then(|n| n.to_str())
        .context("module folder name is not UTF-8")?;
    let frozen = dir.join(format!("{name}.frozen.pb"));
    let ir = dir.join(format!("{name}.openvino.xml"));
    let bin = ir.with_extension("bin");
    let frozen_is_fresh = fresh(&frozen, module_mtime(module)?);
    preps.push(prep_step(
        ov,
        "freeze (TensorFlow 2.21: variables to constants)",
        ["freeze", "--module", path_str(module)?],
        &frozen,
        frozen_is_fresh,
        "frozen:",
    )?);
    // The IR depends on the frozen graph, which may have just been made.
    let frozen_time = std::fs::metadata(&frozen)?.modified()?;
    let ir_is_fresh = fresh(&ir, frozen_time) && fresh(&bin, frozen_time);
    let mut row = prep_step(
        ov,
        "convert (openvino.convert_model of the frozen graph, IR saved f32)",
        ["convert", "--frozen", path_str(&frozen)?],
        &ir,
        ir_is_fresh,
        "ir:",
    )?;
    row.bytes += std::fs::metadata(&bin)?.len();
    preps.push(row);
    Ok(OvModel { frozen, ir })
}

/// Runs `bench_ov.py ARGS -o OUT` unless `out` is fresh; `note` is the prefix of the line
/// that describes its output.
fn prep_step(
    ov: &Py,
    step: &'static str,
    args: [&str; 3],
    out: &Path,
    is_fresh: bool,
    note: &str,
) -> Result<PrepRow> {
    let measured = if is_fresh {
        eprintln!("bench: {} is fresh, reusing it", out.display());
        None
    } else {
        let load = child::load_average();
        eprintln!("bench: {step} -> {} (load {load})", out.display());
        let mut all = args.to_vec();
        all.extend(["-o", path_str(out)?]);
        let m = child::measure(&mut ov.command(&all))?;
        Some(PrepMeasured {
            wall: m.wall.as_secs_f64(),
            peak_rss: m.peak_rss,
            cpu_per_wall: cpu_per_wall(&m),
            load,
            note: m.line(note).unwrap_or("").to_string(),
        })
    };
    Ok(PrepRow {
        step,
        output: out.to_path_buf(),
        bytes: std::fs::metadata(out)?.len(),
        measured,
    })
}

/// Reads every data shard once so both converters start from the page cache. Returns their
/// total size.
fn warm_page_cache(module: &Path) -> Result<u64> {
    let mut total = 0;
    let mut buf = vec![0u8; 1 << 20];
    for entry in std::fs::read_dir(module.join("variables"))? {
        let path = entry?.path();
        let is_shard = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("variables.data-"));
        if !is_shard {
            continue;
        }
        let mut file = std::fs::File::open(&path)?;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    Ok(total)
}

/// `amoeba convert` then (unless skipped) the Python baseline, both into `folder`. The
/// Python output is deleted at once; amoeba's stays (the forward pass runs from it).
fn convert_pair(
    amoeba: &Path,
    tf: &Py,
    module: &Path,
    folder: &Path,
    skip_tf: bool,
) -> Result<Vec<ConvertRow>> {
    // The folder the temporary one was made in: /dev/shm or the module's parent.
    let name = folder
        .parent()
        .map_or(String::new(), |p| p.display().to_string());
    let ours = folder.join("amoeba.safetensors");
    let load = child::load_average();
    eprintln!("bench: amoeba convert into {name} (load {load})");
    let m = child::measure(
        Command::new(amoeba)
            .arg("convert")
            .arg(module)
            .arg("-o")
            .arg(&ours),
    )?;
    let mut rows = vec![convert_row("amoeba convert", &name, &m, None, load)];
    if skip_tf {
        return Ok(rows);
    }
    let theirs = folder.join("tf.safetensors");
    let load = child::load_average();
    eprintln!("bench: Python load_checkpoint + save_file into {name} (load {load})");
    let m = child::measure(&mut tf.command(&[
        "convert",
        "--module",
        path_str(module)?,
        "-o",
        path_str(&theirs)?,
    ]))?;
    std::fs::remove_file(&theirs)?;
    let inner = m.values("convert_seconds").first().copied();
    rows.push(convert_row(
        "Python (TF reader + safetensors.numpy)",
        &name,
        &m,
        inner,
        load,
    ));
    Ok(rows)
}

fn convert_row(
    tool: &'static str,
    folder: &str,
    m: &Measured,
    inner: Option<f64>,
    load: String,
) -> ConvertRow {
    ConvertRow {
        tool,
        folder: folder.to_string(),
        wall: m.wall.as_secs_f64(),
        inner,
        peak_rss: m.peak_rss,
        cpu_per_wall: cpu_per_wall(m),
        load,
    }
}

/// The engines of the forward comparison; a `None` one is skipped.
struct Engines<'a> {
    amoeba: &'a Path,
    /// amoeba's converted model.
    model: PathBuf,
    module: &'a Path,
    tf215: Option<&'a Py<'a>>,
    tf221: Option<&'a Py<'a>>,
    ov: Option<(&'a Py<'a>, &'a OvModel)>,
    golden: Option<&'a Path>,
}

/// `opts.rounds` rounds of [`forward_round`], each engine's rows pooled over the rounds.
fn forward_rounds(engines: &Engines, work: &Path, opts: &Options) -> Result<Vec<ForwardRow>> {
    let mut rows: Vec<ForwardRow> = Vec::new();
    for round in 1..=opts.rounds {
        eprintln!("bench: forward round {round} of {}", opts.rounds);
        for row in forward_round(engines, work, opts.repeats)? {
            match rows
                .iter_mut()
                .find(|r| r.engine == row.engine && r.batch == row.batch)
            {
                Some(pooled) => pooled.pool(row),
                None => rows.push(row),
            }
        }
    }
    Ok(rows)
}

/// One round: at each batch size, amoeba f32 and bf16, TensorFlow 2.15 and 2.21, OpenVINO
/// f32 and bf16, one process each.
fn forward_round(engines: &Engines, work: &Path, repeats: u32) -> Result<Vec<ForwardRow>> {
    let mut rows = Vec::new();
    for batch in BATCHES {
        let input = work.join(format!("images_b{batch}.safetensors"));
        for precision in ["f32", "bf16"] {
            rows.push(rust_forward(
                engines, &input, work, batch, repeats, precision,
            )?);
        }
        for tf in [engines.tf215, engines.tf221].into_iter().flatten() {
            rows.push(tf_forward(tf, engines.module, &input, batch, repeats)?);
        }
        if let Some((ov, model)) = engines.ov {
            for precision in ["f32", "bf16"] {
                rows.push(ov_forward(
                    ov,
                    model,
                    &input,
                    engines.golden,
                    batch,
                    repeats,
                    precision,
                )?);
            }
        }
    }
    Ok(rows)
}

fn rust_forward(
    engines: &Engines,
    input: &Path,
    work: &Path,
    batch: usize,
    repeats: u32,
    precision: &str,
) -> Result<ForwardRow> {
    let load = child::load_average();
    eprintln!("bench: amoeba {precision} forward, batch {batch}, 1 + {repeats} runs (load {load})");
    let out = work.join(format!("out_b{batch}.safetensors"));
    let m = child::measure(
        Command::new(engines.amoeba)
            .arg("run")
            .arg(&engines.model)
            .arg("--input")
            .arg(input)
            .arg("-o")
            .arg(&out)
            .arg("--repeat")
            .arg((repeats + 1).to_string())
            .args(["--precision", precision]),
    )?;
    // amoeba times every run; its first is the warm-up, as TensorFlow's is.
    let seconds = m.values("forward_seconds").split_off(1);
    let mut row = forward_row(
        format!("amoeba {precision}"),
        batch,
        seconds,
        repeats,
        &m,
        load,
    )?;
    row.precision = rust_precision(precision, &m);
    Ok(row)
}

/// What `amoeba run --precision P` ran, from its bf16 note.
fn rust_precision(asked: &str, m: &Measured) -> String {
    if asked != "bf16" {
        return asked.to_string();
    }
    match m.line("note: bf16: ") {
        Some(note) if note.contains("running f32") => "f32 (no bf16 hardware)".into(),
        Some(note) => match note.split_once(" run on ") {
            Some((_, engine)) => format!("bf16 GEMMs on {}, rest f32", engine.trim()),
            None => note.trim_start_matches("note: ").to_string(),
        },
        None => "bf16 (asked; amoeba printed no note)".into(),
    }
}

fn tf_forward(
    tf: &Py,
    module: &Path,
    input: &Path,
    batch: usize,
    repeats: u32,
) -> Result<ForwardRow> {
    let load = child::load_average();
    eprintln!(
        "bench: TensorFlow ({}) forward, batch {batch}, 1 + {repeats} runs (load {load})",
        tf.python.display()
    );
    let r = repeats.to_string();
    let m = child::measure(&mut tf.command(&[
        "forward",
        "--module",
        path_str(module)?,
        "--input",
        path_str(input)?,
        "--repeats",
        &r,
    ]))?;
    let seconds = m.values("forward_seconds");
    let info = m
        .line("tf_info:")
        .map(|l| l.trim_start_matches("tf_info:").trim().to_string());
    let version = info
        .as_deref()
        .and_then(|i| {
            i.split_whitespace()
                .find_map(|w| w.strip_prefix("version="))
        })
        .unwrap_or("(version unknown)");
    let mut row = forward_row(
        format!("TensorFlow {version}"),
        batch,
        seconds,
        repeats,
        &m,
        load,
    )?;
    row.precision = "f32".into();
    let loader = m.line("tf_loader:").unwrap_or("tf_loader: ?");
    row.info = info.map(|i| format!("{i}; {}", loader.trim_start_matches("tf_").trim()));
    Ok(row)
}

fn ov_forward(
    ov: &Py,
    model: &OvModel,
    input: &Path,
    golden: Option<&Path>,
    batch: usize,
    repeats: u32,
    precision: &str,
) -> Result<ForwardRow> {
    let load = child::load_average();
    eprintln!(
        "bench: OpenVINO {precision} forward, batch {batch}, 1 + {repeats} runs (load {load})"
    );
    let r = repeats.to_string();
    let mut args = vec![
        "forward",
        "--frozen",
        path_str(&model.frozen)?,
        "--ir",
        path_str(&model.ir)?,
        "--input",
        path_str(input)?,
        "--repeats",
        &r,
        "--precision",
        precision,
    ];
    if let Some(golden) = golden {
        args.extend(["--golden", path_str(golden)?]);
    }
    let m = child::measure(&mut ov.command(&args))?;
    let seconds = m.values("forward_seconds");
    let mut row = forward_row(
        format!("OpenVINO {precision}"),
        batch,
        seconds,
        repeats,
        &m,
        load,
    )?;
    let ran = m
        .line("ov_precision:")
        .map(|l| l.trim_start_matches("ov_precision:").trim().to_string())
        .with_context(|| format!("OpenVINO printed no ov_precision line:\n{}", m.stdout))?;
    if ran != precision {
        eprintln!("bench:   OpenVINO asked for {precision}, the compiled model runs {ran}");
    }
    row.precision = format!("{ran} (read back)");
    let line = |prefix: &str| {
        m.line(prefix)
            .map(|l| l.trim_start_matches(prefix).trim().to_string())
    };
    row.info = Some(format!(
        "{}; runtime graph: {}",
        line("ov_info:").unwrap_or_default(),
        line("ov_runtime:").unwrap_or_default()
    ));
    row.golden = golden_error(&m);
    if golden.is_some() && row.golden.is_none() {
        bail!(
            "OpenVINO was given the golden but printed no error:\n{}",
            m.stdout
        );
    }
    Ok(row)
}

/// The `logits_max_abs_error` etc. lines of `bench_ov.py forward --golden`.
fn golden_error(m: &Measured) -> Option<GoldenError> {
    let one = |key| m.values(key).first().copied();
    Some(GoldenError {
        max_abs: one("logits_max_abs_error")?,
        golden_max_abs: one("golden_max_abs_logit")?,
        images: one("golden_images")? as usize,
        top1_agree: one("golden_top1_agree")? as usize,
    })
}

fn forward_row(
    engine: String,
    batch: usize,
    seconds: Vec<f64>,
    repeats: u32,
    m: &Measured,
    load: String,
) -> Result<ForwardRow> {
    if seconds.len() != repeats as usize {
        bail!(
            "{engine}: expected {repeats} timed runs, parsed {} from its output:\n{}{}",
            seconds.len(),
            m.stdout,
            m.stderr
        );
    }
    eprintln!("bench:   {engine} batch {batch}: {seconds:?} s");
    Ok(ForwardRow {
        engine,
        batch,
        seconds,
        peak_rss: m.peak_rss,
        cpu_per_wall: cpu_per_wall(m),
        load,
        precision: String::new(),
        info: None,
        golden: None,
        rounds: 1,
    })
}

fn print_report(
    forwards: &[ForwardRow],
    converts: &[ConvertRow],
    preps: &[PrepRow],
    shard_bytes: u64,
    opts: &Options,
) {
    println!(
        "\n`cargo xtask bench --module {} --repeats {} --rounds {}{}`; load average at the end {}\n",
        opts.module.display(),
        opts.repeats,
        opts.rounds,
        opts.flags(),
        child::load_average()
    );
    println!(
        "Forward pass: median of {} timed runs ({} rounds of one process each, every process \
         after one warm-up run); GFLOP/s counts {GFLOP_PER_IMAGE} GFLOP per image; \
         \"time / fastest other\" is the median over the fastest other engine's at the same \
         batch (above 1: slower); \"precision run\" is what the engine reported it computed \
         in; the golden error is max |logits - golden| over the images that are the golden's \
         (of max |golden|).\n",
        opts.repeats * opts.rounds,
        opts.rounds
    );
    println!("{}", forward_table(forwards));
    let mut seen = Vec::new();
    for row in forwards {
        if let Some(info) = &row.info {
            if !seen.contains(&&row.engine) {
                seen.push(&row.engine);
                println!("{}: {info}\n", row.engine);
            }
        }
    }
    if !preps.is_empty() {
        println!("OpenVINO's model, made from the module (or reused while newer than it):\n");
        println!("{}", prep_table(preps));
    }
    println!(
        "Conversion of {shard_bytes} checkpoint bytes (page cache warm), whole-process wall \
         time; GB/s = checkpoint bytes / wall time.\n"
    );
    println!("{}", convert_table(converts, shard_bytes));
}

fn forward_table(rows: &[ForwardRow]) -> String {
    let mut t = String::from(
        "| batch | engine | precision run | median s/batch | s/image | images/s | GFLOP/s \
         | time / fastest other | peak RSS | process CPU/wall | golden error | timed runs (s) \
         | load avg at each start |\n\
         | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |\n",
    );
    for row in rows {
        let med = median(&row.seconds);
        let per_image = med / row.batch as f64;
        let fastest_other = rows
            .iter()
            .filter(|r| r.batch == row.batch && r.engine != row.engine)
            .map(|r| (median(&r.seconds), r))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let ratio = match fastest_other {
            Some((other, r)) => format!("{:.2} ({})", med / other, r.engine),
            None => "".into(),
        };
        let golden = match row.golden {
            Some(g) => format!(
                "{:.1e} (of {:.2}; {} images, top-1 {}/{})",
                g.max_abs, g.golden_max_abs, g.images, g.top1_agree, g.images
            ),
            None => "".into(),
        };
        let runs: Vec<String> = row.seconds.iter().map(|s| format!("{s:.2}")).collect();
        let _ = writeln!(
            t,
            "| {} | {} | {} | {med:.2} | {per_image:.2} | {:.2} | {:.0} | {ratio} | {} | {:.2} \
             | {golden} | {} | {} |",
            row.batch,
            row.engine,
            row.precision,
            1.0 / per_image,
            GFLOP_PER_IMAGE / per_image,
            gib(row.peak_rss),
            row.cpu_per_wall,
            runs.join(", "),
            row.load
        );
    }
    t
}

fn prep_table(rows: &[PrepRow]) -> String {
    let mut t = String::from(
        "| step | output | bytes | wall s | peak RSS | process CPU/wall | load avg at start \
         | what it wrote |\n\
         | --- | --- | ---: | ---: | ---: | ---: | --- | --- |\n",
    );
    for row in rows {
        let (wall, rss, cpu, load, note) = match &row.measured {
            Some(m) => (
                format!("{:.2}", m.wall),
                gib(m.peak_rss),
                format!("{:.2}", m.cpu_per_wall),
                m.load.clone(),
                m.note.clone(),
            ),
            None => ("cached".into(), "".into(), "".into(), "".into(), "".into()),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {wall} | {rss} | {cpu} | {load} | {note} |",
            row.step,
            row.output.display(),
            row.bytes
        );
    }
    t
}

fn convert_table(rows: &[ConvertRow], shard_bytes: u64) -> String {
    let mut t = String::from(
        "| output folder | converter | wall s | GB/s | Rust/Python time | peak RSS \
         | process CPU/wall | load avg at start |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for row in rows {
        let python = rows
            .iter()
            .find(|r| r.folder == row.folder && r.inner.is_some());
        let ratio = match python {
            Some(p) if row.inner.is_none() => format!("{:.2}", row.wall / p.wall),
            _ => "".into(),
        };
        let wall = match row.inner {
            Some(inner) => format!("{:.2} ({inner:.2} after importing TF)", row.wall),
            None => format!("{:.2}", row.wall),
        };
        let rate = |s: f64| shard_bytes as f64 / 1e9 / s;
        let gbs = match row.inner {
            Some(inner) => format!("{:.2} ({:.2})", rate(row.wall), rate(inner)),
            None => format!("{:.2}", rate(row.wall)),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {wall} | {gbs} | {ratio} | {} | {:.2} | {} |",
            row.folder,
            row.tool,
            gib(row.peak_rss),
            row.cpu_per_wall,
            row.load
        );
    }
    t
}

/// CPU seconds per wall second of a whole child process (loading included).
fn cpu_per_wall(m: &Measured) -> f64 {
    m.cpu.as_secs_f64() / m.wall.as_secs_f64().max(1e-9)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        // For an odd count both indices are the middle one.
        n => (v[(n - 1) / 2] + v[n / 2]) / 2.0,
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    fn row(engine: &str, batch: usize, seconds: Vec<f64>) -> ForwardRow {
        ForwardRow {
            engine: engine.into(),
            batch,
            seconds,
            peak_rss: 1 << 30,
            cpu_per_wall: 1.9,
            load: "1.00 1.00 1.00".into(),
            precision: "f32".into(),
            info: None,
            golden: None,
            rounds: 1,
        }
    }

    #[test]
    fn forward_table_compares_with_the_fastest_other_engine_at_the_same_batch() {
        let mut ov = row("OpenVINO bf16", 8, vec![4.0]);
        ov.precision = "bf16 (read back)".into();
        ov.golden = Some(GoldenError {
            max_abs: 0.0131,
            golden_max_abs: 2.12,
            images: 2,
            top1_agree: 2,
        });
        let t = forward_table(&[
            row("amoeba f32", 8, vec![16.0, 17.0, 18.0]),
            row("TensorFlow 2.21.0", 8, vec![8.5]),
            ov,
            // Another batch size is never compared with.
            row("amoeba f32", 1, vec![1.0]),
        ]);
        assert!(
            t.contains(
                "| 8 | amoeba f32 | f32 | 17.00 | 2.12 | 0.47 | 98 | 4.25 (OpenVINO bf16) \
                 | 1.00 GiB | 1.90 |  |"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "| 8 | OpenVINO bf16 | bf16 (read back) | 4.00 | 0.50 | 2.00 | 416 \
                 | 0.47 (TensorFlow 2.21.0) | 1.00 GiB | 1.90 \
                 | 1.3e-2 (of 2.12; 2 images, top-1 2/2) |"
            ),
            "{t}"
        );
        assert!(
            t.contains("| 1 | amoeba f32 | f32 | 1.00 | 1.00 | 1.00 | 208 |  |"),
            "{t}"
        );
    }

    #[test]
    fn rounds_pool_runs_peaks_cpu_precisions_and_golden_errors() {
        let row = |seconds: Vec<f64>, peak_rss, cpu_per_wall| ForwardRow {
            peak_rss,
            cpu_per_wall,
            load: "1".into(),
            ..row("amoeba f32", 1, seconds)
        };
        let golden = |max_abs, top1_agree| {
            Some(GoldenError {
                max_abs,
                golden_max_abs: 2.0,
                images: 2,
                top1_agree,
            })
        };
        let mut pooled = row(vec![1.0, 3.0], 10, 1.0);
        pooled.golden = golden(0.01, 2);
        let mut second = row(vec![2.0], 30, 2.0);
        second.golden = golden(0.02, 2);
        pooled.pool(second);
        let mut third = row(vec![5.0], 20, 3.0);
        third.precision = "bf16".into();
        third.golden = golden(0.015, 1);
        pooled.pool(third);
        assert_eq!(pooled.seconds, [1.0, 3.0, 2.0, 5.0]);
        assert_eq!(median(&pooled.seconds), 2.5);
        assert_eq!(pooled.peak_rss, 30);
        assert!((pooled.cpu_per_wall - 2.0).abs() < 1e-12);
        assert_eq!(pooled.rounds, 3);
        assert_eq!(pooled.load, "1; 1; 1");
        assert_eq!(pooled.precision, "f32; bf16");
        assert_eq!(pooled.golden, golden(0.02, 1));
    }

    #[test]
    fn amoeba_precision_from_its_bf16_note() {
        let m = |stderr: &str| Measured {
            wall: std::time::Duration::ZERO,
            peak_rss: 0,
            cpu: std::time::Duration::ZERO,
            stdout: String::new(),
            stderr: stderr.into(),
        };
        assert_eq!(rust_precision("f32", &m("")), "f32");
        assert_eq!(
            rust_precision("bf16", &m("note: bf16: the GEMMs run on AMX-BF16\n")),
            "bf16 GEMMs on AMX-BF16, rest f32"
        );
        assert_eq!(
            rust_precision(
                "bf16",
                &m("note: bf16: this CPU has neither AMX-BF16 nor AVX512-BF16; running f32")
            ),
            "f32 (no bf16 hardware)"
        );
    }

    #[test]
    fn flags_are_reported_as_given() {
        let opts = Options {
            module: PathBuf::from("m"),
            repeats: 1,
            rounds: 1,
            skip_tf: false,
            skip_tf215: true,
            skip_tf221: false,
            skip_openvino: true,
        };
        assert_eq!(opts.flags(), " --skip-tf215 --skip-openvino");
        assert!(opts.needs_bench_venv());
        let opts = Options {
            skip_tf221: true,
            ..opts
        };
        assert!(!opts.needs_bench_venv());
    }
}
