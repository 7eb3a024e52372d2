//! `amoeba classify MODEL [PHOTO|FOLDER]... [--list FILE] [--top K] [--json] [--batch B]
//! [--shard K/N] [-o RESULTS.jsonl [--resume]] [--features FILE]`: photos in, ImageNet labels
//! out, with TensorFlow's evaluation preprocessing, at any number of photos.
//!
//! Photos are decoded and resized on the pipeline's threads while the previous batch runs,
//! and each batch's results are written as it ends (text; JSON Lines with `--json`; into the
//! results file with `-o`), so memory is set by the batch size, not the number of photos.
//! A photo that cannot be read, decoded, or is over the pixel limit is reported (on stderr
//! and as a record with `error`) and the others go on; the exit code is then 2.
//!
//! Output goes only through fallible writes (`?`), so a closed pipe or a full disk comes back
//! to `main` as an `io::Error`, never as a panic. Paths that are not UTF-8 are shown lossily
//! (each invalid byte sequence as U+FFFD), and control characters in paths and messages are
//! shown as `\u{…}` escapes in text.

use super::photos::{self, Classifier, Outcome, PhotoArgs};
use dataset::features::FeatureFile;
use dataset::records::RecordsFile;
use model_io::Model;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Module folder, .tar.gz archive, or a .safetensors file written by convert.
    model: PathBuf,
    #[command(flatten)]
    photos: PhotoArgs,
    /// How many labels to print per photo.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print JSON Lines: one JSON object per photo and line, written as each batch ends. A
    /// path that is not UTF-8 is given lossily, each invalid byte sequence as U+FFFD.
    #[arg(long)]
    json: bool,
    /// Append the results (JSON Lines) to FILE as each batch ends, synced, instead of
    /// printing them; with --resume, continue an interrupted run's FILE.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Skip the photos that the -o FILE of an earlier run already records.
    #[arg(long, requires = "output")]
    resume: bool,
    /// Also write the feature vectors: safetensors `features` [N, D], the photos' paths in the
    /// metadata (`images`, a JSON array). With a feature-vector module this is all it does.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    features: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    photos::distinct_outputs(&[
        ("-o", args.output.as_deref()),
        ("--features", args.features.as_deref()),
    ])?;
    let (_, all) = args.photos.photos()?;
    let inputs = args.photos.input_paths(&args.model, &all);
    for path in [&args.output, &args.features].into_iter().flatten() {
        safe_fs::check_output(path, &inputs)?;
    }
    let model = Model::open(&args.model)?;
    super::model_notes(&model);
    let labels_wanted = model.spec.num_classes.is_some();
    anyhow::ensure!(
        labels_wanted || args.features.is_some(),
        "{}: a feature-vector module (no classification head) has no labels to give; \
         use --features FILE to write the feature vectors only",
        args.model.display()
    );
    // Everything that can refuse the run is checked before any output is created.
    let classifier = Classifier::new(
        &model,
        args.top,
        args.photos.max_pixels,
        args.photos.precision,
    )?;
    let mut features = match &args.features {
        Some(path) => Some(FeatureFile::create(path, &inputs)?),
        None => None,
    };
    let mut todo = all.clone();
    let mut failed = 0usize;
    let mut results = match &args.output {
        Some(path) => {
            let (file, resumed) = photos::open_results(path, &inputs, args.resume, &todo)?;
            failed += resumed.records.iter().filter(|r| r.error.is_some()).count();
            let done: HashSet<&str> = resumed.done();
            todo.retain(|p| !done.contains(photos::image_name(p).as_str()));
            Some(file)
        }
        None => None,
    };
    let bar = photos::progress_bar("classifying", todo.len());
    photos::classify_stream(&classifier, &todo, args.photos.pipeline(), |batch| {
        failed += batch.iter().filter(|o| o.record.error.is_some()).count();
        let shown = Shown {
            json: args.json,
            results: results.as_mut(),
            labels: labels_wanted,
        };
        bar.suspend(|| shown.write(&batch))?;
        if let Some(file) = features.as_mut() {
            for o in batch.iter().filter(|o| o.record.error.is_none()) {
                file.push(&o.record.image, &o.features)?;
            }
        }
        bar.inc(batch.len() as u64);
        Ok(())
    })?;
    bar.finish_and_clear();
    if let (Some(file), Some(path)) = (features, &args.features) {
        let rows = file.finish(model.spec.num_features)?;
        super::note(&format!(
            "wrote {rows} feature vectors to {}",
            path.display()
        ));
    }
    if let Some(file) = &results {
        super::note(&format!(
            "{}: {} photos classified in this run; {failed} of the run's photos failed",
            file.path().display(),
            todo.len()
        ));
    }
    Ok(if failed > 0 {
        ExitCode::from(super::EXIT_BAD_INPUT)
    } else {
        ExitCode::SUCCESS
    })
}

/// Where a batch's results go.
struct Shown<'a> {
    json: bool,
    results: Option<&'a mut RecordsFile>,
    labels: bool,
}

impl Shown<'_> {
    /// Errors on stderr; results into the results file, or as JSON Lines or text on stdout.
    fn write(self, batch: &[Outcome]) -> anyhow::Result<()> {
        for o in batch {
            if let Some(message) = &o.record.error {
                photos::report_error(message);
            }
        }
        if let Some(file) = self.results {
            let records: Vec<_> = batch.iter().map(|o| o.record.clone()).collect();
            return file
                .append(&records)
                .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", file.path().display()));
        }
        if !self.labels && !self.json {
            return Ok(());
        }
        let mut stdout = std::io::stdout().lock();
        for o in batch {
            if self.json {
                stdout.write_all(o.record.to_line().as_bytes())
            } else if o.record.error.is_none() {
                print_text(&mut stdout, &o.photo.path, &o.record)
            } else {
                Ok(())
            }
            .map_err(photos::stdout_error)?;
        }
        stdout.flush().map_err(photos::stdout_error)?;
        Ok(())
    }
}

fn print_text(
    out: &mut impl Write,
    path: &Path,
    record: &dataset::records::Record,
) -> std::io::Result<()> {
    writeln!(out, "{}", photos::printable(&path.to_string_lossy()))?;
    for r in &record.top {
        writeln!(out, "  {:.4}  {} ({})", r.probability, r.label, r.index)?;
    }
    Ok(())
}
