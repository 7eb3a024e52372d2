//! `amoeba eval MODEL [PHOTO|FOLDER]... [--list FILE] --labels TRUTH [--shard K/N]
//! [-o RECORDS.jsonl [--resume]] [--report FILE] [--json]`: top-1 and top-5 accuracy against
//! ground truth, with `classify`'s streaming and preprocessing; and `amoeba eval-merge
//! REPORT...`: the shard reports of one list summed into one.
//!
//! Every photo of the run must have a label (checked before anything runs). Classes follow
//! `dataset::truth`: for an ImageNet model 1-based ImageNet indices in WordNet-id order, or
//! WordNet ids (a 1001-class model's logit `k` is class `k`; its class 0, `background`, is
//! never correct; a 1000-class model's logit `k` is class `k + 1`); for other models the
//! 0-based logit index. Records and reports number classes as the model's logits. A photo
//! that cannot be read is reported, counted as failed and left out of the accuracy; the exit
//! code is then 2.

use super::photos::{self, Classifier, PhotoArgs};
use anyhow::Context;
use dataset::records::Record;
use dataset::report::{self, ListIdentity, Report, Tally};
use dataset::truth::GroundTruth;
use model_io::Model;
use sha2::Digest;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Module folder, .tar.gz archive, or a .safetensors file written by convert (1000 or
    /// 1001 ImageNet classes).
    model: PathBuf,
    #[command(flatten)]
    photos: PhotoArgs,
    /// Ground truth: `filename class` per line, class a 1-based ImageNet index (1..=1000,
    /// WordNet-id order) or a WordNet id such as n01440764; for a model with other classes,
    /// its 0-based class index.
    #[arg(long, value_name = "FILE")]
    labels: PathBuf,
    /// Append each photo's record (JSON Lines: top-5, truth) to FILE as each batch ends.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Continue the -o FILE of an interrupted run: its photos count, and are not run again.
    #[arg(long, requires = "output")]
    resume: bool,
    #[command(flatten)]
    shown: ReportArgs,
}

/// How `eval` and `eval-merge` give their report.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// Write the report (JSON, the input of eval-merge) to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Print the report as one JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// How many of the worst classes (lowest top-1 accuracy) to show.
    #[arg(long, default_value_t = 10)]
    worst: usize,
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// Reports written by `eval --report`, one per shard (all shards of one list).
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    #[command(flatten)]
    shown: ReportArgs,
}

/// Largest report read by eval-merge.
const MAX_REPORT_BYTES: u64 = 1 << 30;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    photos::distinct_outputs(&[
        ("-o", args.output.as_deref()),
        ("--report", args.shown.report.as_deref()),
    ])?;
    let (list, part) = args.photos.photos()?;
    let mut inputs = args.photos.input_paths(&args.model, &list.photos);
    inputs.push(&args.labels);
    for path in [&args.output, &args.shown.report].into_iter().flatten() {
        safe_fs::check_output(path, &inputs)?;
    }
    let truth_file = GroundTruth::read(&args.labels)?;
    let model = Model::open(&args.model)?;
    super::model_notes(&model);
    let num_classes = num_classes(&model)?;
    let truth = truth_file.for_model(num_classes)?;
    let classes: Vec<u32> = truth_of(&truth, &truth_file, &part)?;
    let mut tally = Tally::default();
    let mut todo: Vec<usize> = (0..part.len()).collect();
    let mut results = None;
    if let Some(path) = &args.output {
        let (file, resumed) = photos::open_results(path, &inputs, args.resume, &part)?;
        let done = tally_resumed(
            &mut tally,
            &resumed.records,
            &part,
            &classes,
            num_classes,
            path,
        )?;
        todo.retain(|i| !done.contains(i));
        results = Some(file);
    }
    let run_photos: Vec<dataset::Photo> = todo.iter().map(|&i| part[i].clone()).collect();
    let run_classes: Vec<u32> = todo.iter().map(|&i| classes[i]).collect();
    let classifier = Classifier::new(&model, 5, args.photos.max_pixels, args.photos.precision)?;
    let bar = photos::progress_bar("evaluating", run_photos.len());
    let started = Instant::now();
    let mut position = 0;
    photos::classify_stream(&classifier, &run_photos, args.photos.pipeline(), |batch| {
        let mut records = Vec::with_capacity(batch.len());
        for o in batch {
            let truth = run_classes[position];
            position += 1;
            let mut record = o.record;
            record.truth = Some(truth);
            match &record.error {
                Some(message) => {
                    bar.suspend(|| photos::report_error(message));
                    tally.add_failure();
                }
                None => tally.add(truth, &predicted_classes(&record)),
            }
            records.push(record);
        }
        if let Some(file) = results.as_mut() {
            file.append(&records)
                .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", file.path().display()))?;
        }
        bar.inc(records.len() as u64);
        Ok(())
    })?;
    bar.finish_and_clear();
    let shard = args.photos.shard.unwrap_or(dataset::Shard::WHOLE);
    let mut report = Report {
        format: report::FORMAT.to_string(),
        model: args.model.to_string_lossy().into_owned(),
        network: network_digest(&model)?,
        labels: args.labels.to_string_lossy().into_owned(),
        labels_digest: truth_file.digest.clone(),
        num_classes,
        list: ListIdentity {
            photos: list.len() as u64,
            digest: list.digest(),
        },
        shard_count: shard.count,
        shards: vec![shard.index],
        timed_images: run_photos.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        tally,
        summary: Default::default(),
    };
    finish(&mut report, &args.shown, &inputs)?;
    Ok(exit_code(&report))
}

pub fn merge(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let inputs: Vec<&std::path::Path> = args.reports.iter().map(PathBuf::as_path).collect();
    if let Some(path) = &args.shown.report {
        safe_fs::check_output(path, &inputs)?;
    }
    let reports = args
        .reports
        .iter()
        .map(|path| {
            let bytes = safe_fs::read_regular(path, MAX_REPORT_BYTES)
                .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
            let report: Report = serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{}: not an eval report (JSON of `eval --report`): {e}",
                    path.display()
                )
            })?;
            Ok((path.clone(), report))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut merged = report::merge(&reports)?;
    finish(&mut merged, &args.shown, &inputs)?;
    Ok(exit_code(&merged))
}

fn exit_code(report: &Report) -> ExitCode {
    if report.tally.failed > 0 {
        ExitCode::from(super::EXIT_BAD_INPUT)
    } else {
        ExitCode::SUCCESS
    }
}

/// Summarizes the report, writes the report file (atomically) and prints the report.
fn finish(
    report: &mut Report,
    shown: &ReportArgs,
    inputs: &[&std::path::Path],
) -> anyhow::Result<()> {
    report.summarize(shown.worst);
    let report = &*report;
    let json = shown.json;
    let text = serde_json::to_string_pretty(report)? + "\n";
    if let Some(path) = &shown.report {
        super::write_atomically(path, inputs, text.as_bytes())?;
        super::note(&format!("wrote the report to {}", path.display()));
    }
    if json {
        super::print_report(&text)
    } else {
        super::print_report(&summary_text(report))
    }
}

/// Each photo's class, or an error naming the photos without one.
fn truth_of(
    truth: &dataset::truth::ModelTruth,
    file: &GroundTruth,
    photos: &[dataset::Photo],
) -> anyhow::Result<Vec<u32>> {
    let mut missing = Vec::new();
    let classes: Vec<u32> = photos
        .iter()
        .map(|p| {
            truth.class_of(&p.key).unwrap_or_else(|| {
                missing.push(p.key.clone());
                0
            })
        })
        .collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
        anyhow::bail!(
            "{}: no label for {} of the {} photos (first: {}); every photo needs one",
            file.path.display(),
            missing.len(),
            photos.len(),
            shown.join(", ")
        );
    }
    Ok(classes)
}

/// The model's classes; a feature-vector module has none to score.
fn num_classes(model: &Model) -> anyhow::Result<u32> {
    let n = model.spec.num_classes.with_context(|| {
        format!(
            "{}: a feature-vector module has no classes to score",
            model.path.display()
        )
    })?;
    u32::try_from(n).with_context(|| format!("{}: {n} classes", model.path.display()))
}

fn predicted_classes(record: &Record) -> Vec<u32> {
    record
        .top
        .iter()
        .map(|r| u32::try_from(r.index).unwrap_or(u32::MAX))
        .collect()
}

/// Counts the records of an earlier run; the positions (in `photos`) they cover.
fn tally_resumed(
    tally: &mut Tally,
    records: &[Record],
    photos: &[dataset::Photo],
    classes: &[u32],
    num_classes: u32,
    path: &std::path::Path,
) -> anyhow::Result<std::collections::HashSet<usize>> {
    let position: std::collections::HashMap<String, usize> = photos
        .iter()
        .enumerate()
        .map(|(i, p)| (photos::image_name(p), i))
        .collect();
    let mut done = std::collections::HashSet::new();
    for record in records {
        // read_resumable has checked that every record names one of `photos`.
        let Some(&i) = position.get(&record.image) else {
            continue;
        };
        // Records of another kind (classify's), of another model or another labels file do
        // not count: each must be an eval record of this model's classes and these labels.
        let ranked = record.top.len() == 5.min(num_classes as usize)
            && record.top.iter().all(|r| r.index < num_classes as usize);
        anyhow::ensure!(
            record.truth.is_some() && (record.error.is_some() || ranked),
            "{}: `{}` is not recorded as eval records are (a truth and the top 5 of {num_classes} \
             classes); resume only a file that eval wrote for this model",
            path.display(),
            record.image
        );
        anyhow::ensure!(
            record.truth == Some(classes[i]),
            "{}: `{}` was recorded with class {:?}, the labels now say {}; \
             the labels changed: start a new results file",
            path.display(),
            record.image,
            record.truth,
            classes[i]
        );
        match record.error {
            Some(_) => tally.add_failure(),
            None => tally.add(classes[i], &predicted_classes(record)),
        }
        done.insert(i);
    }
    Ok(done)
}

/// sha256 of the network plan as JSON.
fn network_digest(model: &Model) -> anyhow::Result<String> {
    let json = serde_json::to_string(&model.spec)?;
    Ok(sha2::Sha256::digest(json.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn summary_text(report: &Report) -> String {
    let s = &report.summary;
    let t = &report.tally;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{} photos ({} failed), shards {} of {}",
        s.images,
        s.failed,
        report
            .shards
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        report.shard_count
    );
    let _ = writeln!(
        text,
        "top-1 {:.2} % ({} of {})",
        100.0 * s.top1_accuracy,
        t.top1,
        t.images
    );
    let _ = writeln!(
        text,
        "top-5 {:.2} % ({} of {})",
        100.0 * s.top5_accuracy,
        t.top5,
        t.images
    );
    let _ = writeln!(text, "{:.2} photos/s", s.images_per_second);
    if !s.worst_classes.is_empty() {
        let _ = writeln!(text, "worst classes (top-1):");
    }
    for w in &s.worst_classes {
        let confused: Vec<String> = w
            .confused_with
            .iter()
            .map(|c| format!("{} ({}) x{}", c.label, c.class, c.count))
            .collect();
        let _ = writeln!(
            text,
            "  {:>6.2} %  {} ({}, {}), {} photos; taken for: {}",
            100.0 * w.top1_accuracy,
            w.label,
            w.class,
            w.synset,
            w.images,
            if confused.is_empty() {
                "-".to_string()
            } else {
                confused.join(", ")
            }
        );
    }
    text
}
