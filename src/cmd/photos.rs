//! What `classify` and `eval` share: the model opened for photos, the photo list with its
//! shard, and the stream that preprocesses photos ahead of the network and runs them batch
//! by batch (crate `dataset` does the streaming; this file joins it to the network).

use anyhow::Context;
use dataset::records::{Ranked, Record};
use dataset::stream::{self, Pipeline};
use dataset::{Photo, PhotoList, Shard};
use nasnet_forward::{Network, Tensor};
use preprocess::labels;
use std::path::{Path, PathBuf};

/// The inputs of a photo command.
#[derive(clap::Args)]
pub struct PhotoArgs {
    /// Photos (JPEG, PNG; any size) and folders of them (walked, photos in sorted order).
    pub images: Vec<PathBuf>,
    /// A file naming one photo per line (relative paths: relative to the list's folder).
    #[arg(long, value_name = "FILE")]
    pub list: Vec<PathBuf>,
    /// Photos run through the network at once (memory grows with it, not with the photos).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub batch: u16,
    /// Run only shard K of N of the photos: a contiguous, deterministic part of the list,
    /// for array jobs; shard outputs in order K = 1..N are the whole run's.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Threads that decode and resize photos ahead of the network [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: Option<u16>,
    /// Refuse photos with more pixels than this (checked from the header, before decoding).
    #[arg(long, default_value_t = preprocess::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// The GEMMs' arithmetic.
    #[arg(long, value_enum, default_value_t)]
    pub precision: super::PrecisionArg,
}

impl PhotoArgs {
    /// The whole list (before the shard) and this run's part of it.
    pub fn photos(&self) -> anyhow::Result<(PhotoList, Vec<Photo>)> {
        anyhow::ensure!(
            !self.images.is_empty() || !self.list.is_empty(),
            "no photos given: name photos or folders, or --list FILE"
        );
        let list = PhotoList::collect(&self.images, &self.list)?;
        let range = self.shard.unwrap_or(Shard::WHOLE).range(list.len());
        let part = list.photos[range].to_vec();
        Ok((list, part))
    }

    pub fn pipeline(&self) -> Pipeline {
        let workers = self
            .workers
            .map_or_else(Pipeline::default_workers, usize::from);
        Pipeline::new(workers, usize::from(self.batch))
    }

    /// Every path the command reads (the model, the arguments, the lists and every photo
    /// they name): outputs may be none of them.
    pub fn input_paths<'a>(&'a self, model: &'a Path, photos: &'a [Photo]) -> Vec<&'a Path> {
        std::iter::once(model)
            .chain(self.images.iter().map(PathBuf::as_path))
            .chain(self.list.iter().map(PathBuf::as_path))
            .chain(photos.iter().map(|p| p.path.as_path()))
            .collect()
    }
}

/// Refuses two outputs of one command that are one file (same path, or the same existing
/// file under two names): one would be renamed over the other.
pub fn distinct_outputs(outputs: &[(&str, Option<&Path>)]) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let named: Vec<(&str, &Path)> = outputs
        .iter()
        .filter_map(|(f, p)| p.map(|p| (*f, p)))
        .collect();
    for (i, (flag_a, a)) in named.iter().enumerate() {
        for (flag_b, b) in &named[i + 1..] {
            let same_path = std::path::absolute(a).ok() == std::path::absolute(b).ok();
            let same_file = match (std::fs::metadata(a), std::fs::metadata(b)) {
                (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
                _ => false,
            };
            anyhow::ensure!(
                !(same_path || same_file),
                "{}: named as both {flag_a} and {flag_b}; give each output its own file",
                a.display()
            );
        }
    }
    Ok(())
}

/// A photo's path as records and reports show it.
pub fn image_name(photo: &Photo) -> String {
    photo.path.to_string_lossy().into_owned()
}

/// The network and how to preprocess and rank for it.
pub struct Classifier {
    pub network: Network,
    pub size: usize,
    /// Classes ranked per photo.
    pub top: usize,
    pub max_pixels: u64,
}

impl Classifier {
    pub fn new(
        model: &model_io::Model,
        top: usize,
        max_pixels: u64,
        precision: super::PrecisionArg,
    ) -> anyhow::Result<Self> {
        let [height, width] = model.spec.image_size;
        anyhow::ensure!(
            height == width,
            "{}: image size {height}x{width} is not square; TF-slim preprocessing makes square inputs",
            model.path.display()
        );
        Ok(Classifier {
            network: super::load_network(model, precision)?,
            size: height,
            top,
            max_pixels,
        })
    }
}

/// One photo's outcome: its record (top classes or error) and its feature vector.
pub struct Outcome<'a> {
    pub photo: &'a Photo,
    pub record: Record,
    pub features: Vec<f32>,
}

/// Runs `photos` in batches, preprocessed ahead by the pipeline's threads, and gives each
/// batch's outcomes to `done` in order.
pub fn classify_stream<'a>(
    classifier: &Classifier,
    photos: &'a [Photo],
    pipeline: Pipeline,
    mut done: impl FnMut(Vec<Outcome<'a>>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let prepare = |photo: &Photo| {
        // A decoder bug on one photo is that photo's error, not the end of the run.
        std::panic::catch_unwind(|| {
            preprocess::preprocess_file(&photo.path, classifier.size, classifier.max_pixels)
                .map_err(|e| e.to_string())
        })
        .unwrap_or_else(|_| {
            Err(format!(
                "{}: the decoder failed on this file (an internal error; please report it)",
                photo.path.display()
            ))
        })
    };
    stream::for_each_batch(photos, pipeline, prepare, |batch| {
        let outcomes = run_batch(classifier, photos, batch)?;
        done(outcomes)
    })
}

/// One forward pass over a batch's good photos; failures keep their error.
fn run_batch<'a>(
    classifier: &Classifier,
    photos: &'a [Photo],
    batch: Vec<(usize, Result<Vec<f32>, String>)>,
) -> anyhow::Result<Vec<Outcome<'a>>> {
    let s = classifier.size;
    let good: Vec<&Vec<f32>> = batch.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
    let mut predictions = if good.is_empty() {
        Vec::new()
    } else {
        let data: Vec<f32> = good.iter().flat_map(|v| v.iter().copied()).collect();
        let tensor = Tensor::from_vec(data, [good.len(), s, s, 3])
            .context("preprocessed photos do not fill the input tensor")?;
        let out = classifier.network.forward(&tensor)?;
        let dim = out.features.len() / out.n.max(1);
        (0..out.n)
            .map(|i| {
                let top = out.logits.as_deref().map_or_else(Vec::new, |l| {
                    let classes = l.len() / out.n;
                    ranked(&l[i * classes..(i + 1) * classes], classifier.top)
                });
                (top, out.features[i * dim..(i + 1) * dim].to_vec())
            })
            .collect()
    }
    .into_iter();
    batch
        .into_iter()
        .map(|(i, input)| {
            let photo = &photos[i];
            let mut record = Record {
                image: image_name(photo),
                top: Vec::new(),
                truth: None,
                error: None,
            };
            let mut features = Vec::new();
            match input {
                Err(message) => record.error = Some(message),
                Ok(_) => {
                    let (top, f) = predictions.next().context("a photo got no output")?;
                    record.top = top;
                    features = f;
                }
            }
            Ok(Outcome {
                photo,
                record,
                features,
            })
        })
        .collect()
}

/// Softmax, then the `k` most probable classes with their ImageNet labels.
fn ranked(logits: &[f32], k: usize) -> Vec<Ranked> {
    labels::top_k(&labels::softmax(logits), k)
        .into_iter()
        .map(|(index, probability)| Ranked {
            index,
            label: labels::class_name(index, logits.len()),
            probability,
        })
        .collect()
}

/// `text` with control characters (newlines, terminal escape sequences) as `\u{…}` escapes,
/// so a file name can neither start a fake result line nor rewrite the terminal.
pub fn printable(text: &str) -> String {
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

/// A photo's error on stderr. Nothing can be done if stderr itself is closed, so a failed
/// write there is ignored (instead of `eprintln!`'s panic).
pub fn report_error(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "error: {}", printable(message));
}

/// Names standard output in a write error, keeping its kind (a closed pipe stays
/// `BrokenPipe`, which `main` ends quietly).
pub fn stdout_error(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("standard output: cannot write: {e}"))
}

/// A photo-count bar on a terminal, for runs long enough to want one.
pub fn progress_bar(verb: &str, total: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    /// Below this many photos a progress bar is more noise than help.
    const MIN_PHOTOS: usize = 8;
    if total < MIN_PHOTOS || !std::io::stderr().is_terminal() || super::quiet() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{verb} {{wide_bar}} {{pos}}/{{len}} {{per_sec}} {{eta}}"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// The results file of `-o`: refused when it is an input, and when it exists unless the run
/// resumes it; with `resume`, the records already in it (each naming one of `photos`), said
/// in a note.
pub fn open_results(
    path: &Path,
    inputs: &[&Path],
    resume: bool,
    photos: &[Photo],
) -> anyhow::Result<(dataset::records::RecordsFile, dataset::records::Resumed)> {
    safe_fs::check_output(path, inputs)?;
    let exists = path.exists();
    anyhow::ensure!(
        resume || !exists,
        "{}: exists; pass --resume to continue that run, or remove it",
        path.display()
    );
    let names: Vec<String> = photos.iter().map(image_name).collect();
    let names: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let resumed = dataset::records::read_resumable(path, &names)?;
    if resume {
        // Every record names one of `photos`, each once (read_resumable checks).
        let done = resumed.records.len();
        super::note(&format!(
            "{}: {done} of {} photos already done, {} to go",
            path.display(),
            photos.len(),
            photos.len() - done
        ));
    }
    let file = dataset::records::RecordsFile::open(path, resumed.complete_bytes)
        .with_context(|| format!("{}: cannot open for writing", path.display()))?;
    Ok((file, resumed))
}
