//! `cargo xtask bench [--module DIR] [--repeats R] [--rounds N] [--skip-tf]`: the Rust
//! forward pass and conversion against TensorFlow on the same module, same images, same
//! machine.
//!
//! Forward: `amoeba run CONVERTED --repeat R+1` (its first run is the warm-up and is
//! dropped) and `bench_tf.py forward` (hub.Module in a tf.compat.v1 graph, a Session, one
//! warm-up run, then R timed runs), alternating process by process at batch 1 then batch 8,
//! for N rounds, so a change of speed of the shared machine (seen: ±10% within minutes) hits
//! both sides; each engine's timed runs are pooled over the rounds before the median. Convert: `amoeba convert`
//! against `tf.train.load_checkpoint` + `safetensors.numpy.save_file`, writing into the same
//! folder (/dev/shm, then beside the module on disk) with the checkpoint in the page cache.
//! Every child's peak RSS comes from `wait4`; the load average is printed with each number.

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
    pub skip_tf: bool,
}

/// One process's forward-pass timings at one batch size.
struct ForwardRow {
    engine: &'static str,
    batch: usize,
    /// Timed runs only, warm-up excluded.
    seconds: Vec<f64>,
    peak_rss: u64,
    /// The process's CPU time over its wall time (at most the core count).
    cpu_per_wall: f64,
    load: String,
    /// TensorFlow's `tf_info` line: version, oneDNN, thread pools.
    info: Option<String>,
    /// Processes pooled into this row.
    rounds: u32,
}

impl ForwardRow {
    /// Adds a later round's process: its timed runs, the larger peak RSS, the mean CPU/wall.
    fn pool(&mut self, later: ForwardRow) {
        let n = self.rounds as f64;
        self.cpu_per_wall = (self.cpu_per_wall * n + later.cpu_per_wall) / (n + 1.0);
        self.rounds += 1;
        self.seconds.extend(later.seconds);
        self.peak_rss = self.peak_rss.max(later.peak_rss);
        self.load = format!("{}; {}", self.load, later.load);
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

pub fn run(root: &Path, python: &Path, opts: &Options) -> Result<()> {
    let module = checked_module(&opts.module)?;
    let amoeba = crate::build_amoeba(root)?;
    let script = root.join("xtask/python/bench_tf.py");
    let tf = Tf {
        python,
        script: &script,
    };
    let work = tempfile::Builder::new().prefix("xtask-bench-").tempdir()?;
    tf.make_inputs(&module, work.path())?;
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
    let model = disk.path().join("amoeba.safetensors");
    let forwards = forward_rounds(&amoeba, &tf, &model, &module, work.path(), opts)?;
    print_report(&forwards, &converts, shard_bytes, opts);
    Ok(())
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

/// The TensorFlow side: the venv's python running `bench_tf.py`.
struct Tf<'a> {
    python: &'a Path,
    script: &'a Path,
}

impl Tf<'_> {
    /// A command for `bench_tf.py`. The OpenBLAS tuning variables set on this machine slow
    /// numpy and TensorFlow down, so they are removed for the Python children only.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.python);
        cmd.arg(self.script)
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
        let golden = PathBuf::from(format!("{}.golden.safetensors", module.display()));
        if golden.is_file() {
            args.extend(["--golden", path_str(&golden)?]);
        }
        child::measure(&mut self.command(&args))?;
        Ok(())
    }
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
    tf: &Tf,
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

/// `opts.rounds` rounds of [`forward_round`], each engine's rows pooled over the rounds.
fn forward_rounds(
    amoeba: &Path,
    tf: &Tf,
    model: &Path,
    module: &Path,
    work: &Path,
    opts: &Options,
) -> Result<Vec<ForwardRow>> {
    let mut rows: Vec<ForwardRow> = Vec::new();
    for round in 1..=opts.rounds {
        eprintln!("bench: forward round {round} of {}", opts.rounds);
        for row in forward_round(amoeba, tf, model, module, work, opts)? {
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

/// One round: Rust then TensorFlow at each batch size.
fn forward_round(
    amoeba: &Path,
    tf: &Tf,
    model: &Path,
    module: &Path,
    work: &Path,
    opts: &Options,
) -> Result<Vec<ForwardRow>> {
    let mut rows = Vec::new();
    for batch in BATCHES {
        let input = work.join(format!("images_b{batch}.safetensors"));
        for precision in ["f32", "bf16"] {
            rows.push(rust_forward(
                amoeba,
                model,
                &input,
                work,
                batch,
                opts.repeats,
                precision,
            )?);
        }
        if !opts.skip_tf {
            rows.push(tf_forward(tf, module, &input, batch, opts.repeats)?);
        }
    }
    Ok(rows)
}

fn rust_forward(
    amoeba: &Path,
    model: &Path,
    input: &Path,
    work: &Path,
    batch: usize,
    repeats: u32,
    precision: &str,
) -> Result<ForwardRow> {
    let load = child::load_average();
    eprintln!("bench: Rust {precision} forward, batch {batch}, 1 + {repeats} runs (load {load})");
    let out = work.join(format!("out_b{batch}.safetensors"));
    let m = child::measure(
        Command::new(amoeba)
            .arg("run")
            .arg(model)
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
    let engine = if precision == "bf16" {
        "Rust bf16"
    } else {
        "Rust"
    };
    forward_row(engine, batch, seconds, repeats, &m, load)
}

fn tf_forward(
    tf: &Tf,
    module: &Path,
    input: &Path,
    batch: usize,
    repeats: u32,
) -> Result<ForwardRow> {
    let load = child::load_average();
    eprintln!("bench: TensorFlow forward, batch {batch}, 1 + {repeats} runs (load {load})");
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
    let mut row = forward_row("TensorFlow", batch, seconds, repeats, &m, load)?;
    row.info = m
        .line("tf_info:")
        .map(|l| l.trim_start_matches("tf_info:").trim().to_string());
    Ok(row)
}

fn forward_row(
    engine: &'static str,
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
        info: None,
        rounds: 1,
    })
}

fn print_report(
    forwards: &[ForwardRow],
    converts: &[ConvertRow],
    shard_bytes: u64,
    opts: &Options,
) {
    println!(
        "\n`cargo xtask bench --module {} --repeats {} --rounds {}{}`; load average at the end {}\n",
        opts.module.display(),
        opts.repeats,
        opts.rounds,
        if opts.skip_tf { " --skip-tf" } else { "" },
        child::load_average()
    );
    println!(
        "Forward pass: median of {} timed runs ({} rounds of one process each, every process \
         after one warm-up run); GFLOP/s counts {GFLOP_PER_IMAGE} GFLOP per image; Rust/TF \
         above 1 means Rust is slower.\n",
        opts.repeats * opts.rounds,
        opts.rounds
    );
    println!("{}", forward_table(forwards));
    for info in forwards.iter().filter_map(|r| r.info.as_deref()).take(1) {
        println!("TensorFlow: {info}\n");
    }
    println!(
        "Conversion of {shard_bytes} checkpoint bytes (page cache warm), whole-process wall \
         time; GB/s = checkpoint bytes / wall time.\n"
    );
    println!("{}", convert_table(converts, shard_bytes));
}

fn forward_table(rows: &[ForwardRow]) -> String {
    let mut t = String::from(
        "| batch | engine | median s/batch | s/image | images/s | GFLOP/s | Rust/TF time \
         | peak RSS | process CPU/wall | timed runs (s) | load avg at each start |\n\
         | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n",
    );
    for row in rows {
        let med = median(&row.seconds);
        let per_image = med / row.batch as f64;
        let tf = rows
            .iter()
            .find(|r| r.batch == row.batch && r.engine == "TensorFlow");
        let ratio = match tf {
            Some(tf) if row.engine != "TensorFlow" => format!("{:.2}", med / median(&tf.seconds)),
            _ => "".into(),
        };
        let runs: Vec<String> = row.seconds.iter().map(|s| format!("{s:.2}")).collect();
        let _ = writeln!(
            t,
            "| {} | {} | {med:.2} | {per_image:.2} | {:.2} | {:.0} | {ratio} | {} | {:.2} | {} | {} |",
            row.batch,
            row.engine,
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

    #[test]
    fn forward_table_compares_with_tensorflow_at_the_same_batch() {
        let row = |engine, seconds: Vec<f64>| ForwardRow {
            engine,
            batch: 8,
            seconds,
            peak_rss: 1 << 30,
            cpu_per_wall: 1.9,
            load: "1.00 1.00 1.00".into(),
            info: None,
            rounds: 1,
        };
        let t = forward_table(&[
            row("Rust", vec![16.0, 17.0, 18.0]),
            row("TensorFlow", vec![8.5]),
        ]);
        assert!(
            t.contains("| 8 | Rust | 17.00 | 2.12 | 0.47 | 98 | 2.00 | 1.00 GiB | 1.90 |"),
            "{t}"
        );
    }

    #[test]
    fn rounds_pool_runs_peaks_and_cpu() {
        let row = |seconds: Vec<f64>, peak_rss, cpu_per_wall| ForwardRow {
            engine: "Rust",
            batch: 1,
            seconds,
            peak_rss,
            cpu_per_wall,
            load: "1".into(),
            info: None,
            rounds: 1,
        };
        let mut pooled = row(vec![1.0, 3.0], 10, 1.0);
        pooled.pool(row(vec![2.0], 30, 2.0));
        pooled.pool(row(vec![5.0], 20, 3.0));
        assert_eq!(pooled.seconds, [1.0, 3.0, 2.0, 5.0]);
        assert_eq!(median(&pooled.seconds), 2.5);
        assert_eq!(pooled.peak_rss, 30);
        assert!((pooled.cpu_per_wall - 2.0).abs() < 1e-12);
        assert_eq!(pooled.rounds, 3);
        assert_eq!(pooled.load, "1; 1; 1");
    }
}
