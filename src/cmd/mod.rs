//! One module per subcommand: argument structs and the calls into the libraries.

pub mod cache;
pub mod classify;
pub mod convert;
pub mod eval;
pub mod export;
pub mod genotype;
pub mod inspect;
pub mod photos;
pub mod run;
pub mod verify;

use anyhow::Context;
use std::path::Path;

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--quiet`: no notes, no progress bars, no `wrote ...` lines; errors and what a command was
/// asked to print (a report, `--json`) still appear.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// A note on standard error (`note: ...`), unless `--quiet`.
pub fn note(text: &str) {
    if !quiet() {
        eprintln!("note: {text}");
    }
}

/// The model's notes and the places where its names and graph disagreed, as notes.
pub fn model_notes(model: &model_io::Model) {
    for text in model.notes.iter().chain(&model.disagreements) {
        note(text);
    }
}

/// A command's closing line (`wrote ...`) on standard output, or, with `--json`, `json` as
/// one JSON document; nothing for the line under `--quiet`.
pub fn print_done(line: &str, json: Option<serde_json::Value>) -> anyhow::Result<()> {
    match json {
        Some(value) => print_out(&(serde_json::to_string_pretty(&value)? + "\n")),
        None if quiet() => Ok(()),
        None => print_out(line),
    }
}

/// `--precision`: the arithmetic of the network's GEMMs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    /// float32 everywhere (the reference).
    #[default]
    F32,
    /// bfloat16 inputs and float32 sums in the GEMMs (AMX or AVX512-BF16; f32, with a note,
    /// on a CPU that has neither).
    Bf16,
}

impl PrecisionArg {
    pub fn precision(self) -> nasnet_forward::Precision {
        match self {
            PrecisionArg::F32 => nasnet_forward::Precision::F32,
            PrecisionArg::Bf16 => nasnet_forward::Precision::Bf16,
        }
    }
}

/// The model's network at `precision`, with a note saying what bf16 runs on (or that this
/// CPU has no bf16 hardware, so f32 runs).
pub fn load_network(
    model: &model_io::Model,
    precision: PrecisionArg,
) -> anyhow::Result<nasnet_forward::Network> {
    let network = model.network_with(precision.precision())?;
    if precision == PrecisionArg::Bf16 {
        match network.precision() {
            nasnet_forward::Precision::Bf16 => note(&format!(
                "bf16: the GEMMs run on {}",
                nasnet_forward::Bf16Engine::detect().name()
            )),
            nasnet_forward::Precision::F32 => {
                note("bf16: this CPU has neither AMX-BF16 nor AVX512-BF16; running f32")
            }
        }
    }
    Ok(network)
}

/// Verification ran and failed.
pub const EXIT_VERIFY_FAILED: u8 = 1;
/// Bad input or usage.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Writes `text` to standard output and flushes it, so that a closed pipe or a full disk
/// is an error here (which `main` reports, or ends quietly for a closed pipe) rather than a
/// panic inside `println!`.
pub fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("standard output: cannot write")
}

/// [`print_out`] for a report whose command has a verdict of its own (`verify`, `classify`):
/// when the reader has gone, the rest of the report is dropped but the verdict still decides
/// the exit code (a FAIL piped into `head` must not exit 0).
pub fn print_report(text: &str) -> anyhow::Result<()> {
    match print_out(text) {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        other => other,
    }
}

/// True when the error (or a cause) is a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A byte progress bar on a terminal (hidden otherwise) that is first drawn when its total is
/// known, so it starts empty rather than as a full `0 B/0 B` frame.
pub struct Progress {
    bar: indicatif::ProgressBar,
    visible: bool,
    shown: std::cell::Cell<bool>,
}

impl Progress {
    /// `done` of `total` bytes.
    pub fn update(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
        if self.visible && !self.shown.replace(true) {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A [`Progress`] labelled `message`, drawn only when `visible` (standard error a terminal).
pub fn progress_bar(message: &'static str, visible: bool) -> Progress {
    let visible = visible && !quiet();
    let bar = indicatif::ProgressBar::hidden();
    let style = indicatif::ProgressStyle::with_template(
        "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(message);
    Progress {
        bar,
        visible,
        shown: std::cell::Cell::new(false),
    }
}

/// Writes float32 tensors to a safetensors file through a temporary file and a rename,
/// refusing a target that is one of `inputs` (or inside an input folder) or a special file.
pub fn write_f32_safetensors(
    path: &Path,
    inputs: &[&Path],
    tensors: &[(&str, Vec<f32>, Vec<usize>)],
) -> anyhow::Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, values, shape)| {
            (
                name.to_string(),
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                shape.clone(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape)| {
            Ok((
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let serialized = safetensors::serialize(views, None)?;
    write_atomically(path, inputs, &serialized)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place, so a
/// failure never leaves a partial file; refuses to write over any of `inputs`.
pub fn write_atomically(path: &Path, inputs: &[&Path], bytes: &[u8]) -> anyhow::Result<()> {
    Ok(safe_fs::write_atomically(path, inputs, bytes)?)
}
