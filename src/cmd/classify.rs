//! `amoeba classify MODEL IMAGE... [--top K] [--json] [--batch B] [--features FILE]`:
//! photos in, ImageNet labels out, with TensorFlow's evaluation preprocessing.
//!
//! A photo that cannot be read, decoded, or is over the pixel limit is reported on stderr
//! (naming the file) and skipped; the others are still classified, and the exit code is 2.
//!
//! Output goes only through fallible writes on a locked stdout (`writeln!` and `?`), so a
//! closed pipe or a full disk comes back to `main` as an `io::Error`, never as a panic. Paths
//! that are not UTF-8 are shown lossily (each invalid byte sequence as U+FFFD) in JSON and
//! text, and control characters in paths and messages are shown as `\u{…}` escapes.

use anyhow::Context;
use model_io::Model;
use nasnet_forward::{Network, Tensor};
use preprocess::labels;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Below this many photos a progress bar is more noise than help.
const PROGRESS_MIN_IMAGES: usize = 8;

#[derive(clap::Args)]
pub struct Args {
    /// Module folder, .tar.gz archive, or a .safetensors file written by convert.
    model: PathBuf,
    /// JPEG or PNG photos (any size; grey and RGBA are made RGB as TensorFlow does).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many labels to print per photo.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print JSON (one array, an object per photo) instead of text. A path that is not UTF-8
    /// is given lossily, each invalid byte sequence as U+FFFD.
    #[arg(long)]
    json: bool,
    /// Photos run through the network at once (memory grows with it).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    batch: u16,
    /// Also write the feature vectors: safetensors `features` [N, D], the photos' paths in the
    /// metadata (`images`, a JSON array). With a feature-vector module this is all it does.
    #[arg(long, value_name = "FILE")]
    features: Option<PathBuf>,
    /// Refuse photos with more pixels than this (checked from the header, before decoding).
    #[arg(long, default_value_t = preprocess::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
}

/// One photo's outcome, in the order given.
struct Outcome {
    path: PathBuf,
    result: Result<Prediction, String>,
}

/// The top classes and the feature vector of one photo.
struct Prediction {
    /// (class index, label, probability), most probable first; empty without logits.
    top: Vec<(usize, String, f32)>,
    features: Vec<f32>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.features {
        // Refused now rather than after every photo has been classified.
        let inputs: Vec<&Path> = std::iter::once(args.model.as_path())
            .chain(args.images.iter().map(PathBuf::as_path))
            .collect();
        safe_fs::check_output(path, &inputs)?;
    }
    let model = Model::open(&args.model)?;
    let labels_wanted = model.spec.num_classes.is_some();
    if !labels_wanted && args.features.is_none() {
        anyhow::bail!(
            "{}: a feature-vector module (no classification head) has no labels to give; \
             use --features FILE to write the feature vectors only",
            args.model.display()
        );
    }
    let network = model.network()?;
    let [height, width] = model.spec.image_size;
    anyhow::ensure!(
        height == width,
        "{}: image size {height}x{width} is not square; TF-slim preprocessing makes square inputs",
        args.model.display()
    );
    let classifier = Classifier {
        network: &network,
        size: height,
        top: args.top,
        max_pixels: args.max_pixels,
    };
    let outcomes = classify_all(&classifier, &args)?;
    if let Some(path) = &args.features {
        write_features(
            path,
            &model.input_paths(),
            &outcomes,
            model.spec.num_features,
        )?;
    }
    let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
    if args.json {
        print_json(&outcomes, labels_wanted)?;
    }
    Ok(if failed > 0 {
        ExitCode::from(super::EXIT_BAD_INPUT)
    } else {
        ExitCode::SUCCESS
    })
}

/// What every batch needs: the network and how to preprocess and rank.
struct Classifier<'a> {
    network: &'a Network,
    size: usize,
    top: usize,
    max_pixels: u64,
}

/// Runs every photo in batches, printing text results (unless --json) and errors as each
/// batch finishes, so a long run shows its progress.
fn classify_all(classifier: &Classifier, args: &Args) -> anyhow::Result<Vec<Outcome>> {
    let bar = progress_bar(args.images.len());
    let mut outcomes = Vec::with_capacity(args.images.len());
    for chunk in args.images.chunks(usize::from(args.batch)) {
        let batch = classify_batch(classifier, chunk)?;
        bar.suspend(|| report(&batch, args.json))?;
        bar.inc(chunk.len() as u64);
        outcomes.extend(batch);
    }
    bar.finish_and_clear();
    Ok(outcomes)
}

/// Preprocesses a batch's photos (errors stay per photo), runs the good ones together.
fn classify_batch(classifier: &Classifier, paths: &[PathBuf]) -> anyhow::Result<Vec<Outcome>> {
    let inputs: Vec<Result<Vec<f32>, String>> = paths
        .iter()
        .map(|p| {
            preprocess::preprocess_file(p, classifier.size, classifier.max_pixels)
                .map_err(|e| e.to_string())
        })
        .collect();
    let good: Vec<&Vec<f32>> = inputs.iter().filter_map(|r| r.as_ref().ok()).collect();
    let mut predictions = run_network(classifier, &good)?.into_iter();
    Ok(paths
        .iter()
        .zip(inputs)
        .map(|(path, input)| Outcome {
            path: path.clone(),
            result: input.and_then(|_| predictions.next().ok_or_else(|| "no output".to_string())),
        })
        .collect())
}

/// One forward pass over preprocessed photos; the predictions in the same order.
fn run_network(classifier: &Classifier, images: &[&Vec<f32>]) -> anyhow::Result<Vec<Prediction>> {
    if images.is_empty() {
        return Ok(Vec::new());
    }
    let s = classifier.size;
    let data: Vec<f32> = images.iter().flat_map(|v| v.iter().copied()).collect();
    let tensor = Tensor::from_vec(data, [images.len(), s, s, 3])
        .context("preprocessed photos do not fill the input tensor")?;
    let out = classifier.network.forward(&tensor)?;
    let dim = out.features.len() / out.n;
    let logits = out.logits.as_deref();
    Ok((0..out.n)
        .map(|i| Prediction {
            features: out.features[i * dim..(i + 1) * dim].to_vec(),
            top: logits.map_or_else(Vec::new, |l| {
                let classes = l.len() / out.n;
                top_labels(&l[i * classes..(i + 1) * classes], classifier.top)
            }),
        })
        .collect())
}

/// Softmax, then the `k` most probable classes with their ImageNet labels.
fn top_labels(logits: &[f32], k: usize) -> Vec<(usize, String, f32)> {
    labels::top_k(&labels::softmax(logits), k)
        .into_iter()
        .map(|(index, p)| (index, labels::class_name(index, logits.len()), p))
        .collect()
}

/// Text results on stdout (unless JSON is wanted at the end), errors on stderr.
fn report(batch: &[Outcome], json: bool) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    for outcome in batch {
        match &outcome.result {
            Err(message) => report_error(message),
            Ok(prediction) if !json => {
                print_text(&mut stdout, &outcome.path, prediction).map_err(stdout_error)?
            }
            Ok(_) => {}
        }
    }
    stdout.flush().map_err(stdout_error)
}

/// Names standard output in a write error, keeping its kind (a closed pipe stays
/// `BrokenPipe`, which `main` ends quietly).
fn stdout_error(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("standard output: cannot write: {e}"))
}

/// A photo's error on stderr. Nothing can be done if stderr itself is closed, so a failed
/// write there is ignored (instead of `eprintln!`'s panic).
fn report_error(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "error: {}", printable(message));
}

fn print_text(out: &mut impl Write, path: &Path, prediction: &Prediction) -> std::io::Result<()> {
    writeln!(out, "{}", printable(&path.to_string_lossy()))?;
    for (index, label, p) in &prediction.top {
        writeln!(out, "  {p:.4}  {label} ({index})")?;
    }
    Ok(())
}

/// `text` with control characters (newlines, terminal escape sequences) as `\u{…}` escapes,
/// so a file name can neither start a fake result line nor rewrite the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// A photo's path as JSON text: lossy where it is not UTF-8 (never an error, unlike
/// serialising the `PathBuf` itself).
fn json_path(path: &Path) -> serde_json::Value {
    serde_json::Value::String(path.to_string_lossy().into_owned())
}

fn print_json(outcomes: &[Outcome], labels_wanted: bool) -> anyhow::Result<()> {
    let items: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| match &o.result {
            Err(message) => serde_json::json!({ "image": json_path(&o.path), "error": message }),
            Ok(p) if labels_wanted => serde_json::json!({
                "image": json_path(&o.path),
                "top": p.top.iter().map(|(index, label, probability)| serde_json::json!({
                    "index": index, "label": label, "probability": probability
                })).collect::<Vec<_>>(),
            }),
            Ok(_) => serde_json::json!({ "image": json_path(&o.path) }),
        })
        .collect();
    let text = serde_json::to_string_pretty(&items)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(stdout_error)?;
    Ok(())
}

/// `features` [N, D] for the photos that succeeded, their paths in the metadata, written
/// through a temporary file and a rename.
fn write_features(
    path: &Path,
    model_files: &[PathBuf],
    outcomes: &[Outcome],
    dim: usize,
) -> anyhow::Result<()> {
    let good: Vec<(&Path, &Prediction)> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|p| (o.path.as_path(), p)))
        .collect();
    let dim = good.first().map_or(dim, |(_, p)| p.features.len());
    let bytes: Vec<u8> = good
        .iter()
        .flat_map(|(_, p)| p.features.iter().flat_map(|v| v.to_le_bytes()))
        .collect();
    let names: Vec<String> = good
        .iter()
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![good.len(), dim],
        &bytes,
    )?;
    let metadata = HashMap::from([("images".to_string(), serde_json::to_string(&names)?)]);
    let serialized = safetensors::serialize([("features", view)], Some(metadata))?;
    let inputs: Vec<&Path> = model_files
        .iter()
        .map(PathBuf::as_path)
        .chain(outcomes.iter().map(|o| o.path.as_path()))
        .collect();
    super::write_atomically(path, &inputs, &serialized)
}

/// A photo-count bar on a terminal, for runs long enough to want one.
fn progress_bar(total: usize) -> indicatif::ProgressBar {
    if total < PROGRESS_MIN_IMAGES || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    let style = indicatif::ProgressStyle::with_template("classifying {wide_bar} {pos}/{len} {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
