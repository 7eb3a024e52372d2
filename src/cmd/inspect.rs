//! `amoeba inspect MODEL [--json] [--variables] [--check]`: a hub module (format, graph
//! variants, signatures, variables) or a converted `.safetensors` (its network, provenance and
//! tensors).

use hub_module::HubModule;
use model_io::{keys, Model, ModelKind};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Module folder, its .tar.gz / .tgz archive, or a .safetensors file written by convert.
    module: PathBuf,
    /// Print JSON for machines instead of text.
    #[arg(long)]
    json: bool,
    /// List every variable with its shape, dtype and size.
    #[arg(long)]
    variables: bool,
    /// Also read every tensor and verify its crc32c checksum.
    #[arg(long)]
    check: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let is_safetensors = args
        .module
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if is_safetensors {
        return inspect_converted(&args);
    }
    let module = HubModule::open(&args.module)?;
    if let Some(note) = model_io::cache_note(&module) {
        super::note(&note);
    }
    let summary = module.summary(args.variables);
    if args.check {
        let start = std::time::Instant::now();
        module.bundle().verify_all()?;
        // A tensor this reader cannot read cannot be checked either: say so, do not skip it.
        if let Some(first) = module.bundle().unsupported().first() {
            anyhow::bail!(
                "{}: {} tensor(s) cannot be checked, the first {:?} of dtype {} (this reader \
                 reads numeric dtypes only; `inspect` without --check lists them)",
                module.bundle().index_path().display(),
                module.bundle().unsupported().len(),
                first.name,
                first.dtype_name()
            );
        }
        let seconds = start.elapsed().as_secs_f64();
        if !super::quiet() {
            eprintln!(
                "checksums: {} tensors, {} bytes verified in {seconds:.2} s ({:.2} GB/s)",
                summary.num_variables,
                summary.num_bytes,
                summary.num_bytes as f64 / seconds.max(1e-9) / 1e9
            );
        }
    }
    if args.json {
        super::print_out(&(serde_json::to_string_pretty(&summary)? + "\n"))?;
    } else {
        super::print_out(&summary.to_text())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A converted file: what `convert` recorded (network, provenance, tool) and its tensors.
fn inspect_converted(args: &Args) -> anyhow::Result<ExitCode> {
    let model = Model::open(&args.module)?;
    let ModelKind::Safetensors(weights) = &model.kind else {
        anyhow::bail!("{}: not a converted file", args.module.display());
    };
    let meta = weights.metadata();
    let tensors = weights.names_and_shapes();
    let mut dtypes: BTreeMap<String, usize> = BTreeMap::new();
    let mut bytes = 0u64;
    let mut parameters = 0u64;
    for (name, shape) in &tensors {
        if let Some((dtype, data)) = weights.raw(name) {
            *dtypes.entry(format!("{dtype:?}")).or_default() += 1;
            bytes += data.len() as u64;
        }
        parameters += shape.iter().map(|&d| d as u64).product::<u64>();
    }
    if args.check {
        let start = std::time::Instant::now();
        // No checksums in safetensors: read every byte, so a file cut short or unreadable
        // fails here rather than at run time.
        let mut sum = 0u64;
        for (name, _) in &tensors {
            if let Some((_, data)) = weights.raw(name) {
                sum = data.iter().fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
                weights.release(name);
            }
        }
        std::hint::black_box(sum);
        if !super::quiet() {
            eprintln!(
            "read: {} tensors, {bytes} bytes in {:.2} s (safetensors holds no checksums; the header and every tensor's extent were checked when opening)",
            tensors.len(),
            start.elapsed().as_secs_f64()
            );
        }
    }
    let spec = &model.spec;
    let get = |k: &str| meta.get(k).cloned().unwrap_or_default();
    let summary = serde_json::json!({
        "file": args.module.display().to_string(),
        "format": "safetensors written by amoeba convert",
        "tool": get(keys::TOOL),
        "source_file": get(keys::SOURCE_FILE),
        "checkpoint_sha256": get(keys::SOURCE_SHA256),
        "weights": model.weights_note,
        "genotype": spec.genotype.name,
        "image_size": spec.image_size,
        "num_cells": spec.num_cells,
        "filters": spec.filters,
        "cells": spec.cells.len(),
        "num_classes": spec.num_classes,
        "num_features": spec.num_features,
        "num_tensors": tensors.len(),
        "num_parameters": parameters,
        "num_bytes": bytes,
        "dtypes": dtypes,
        "notes": model.notes,
        "variables": args.variables.then(|| tensors.iter().map(|(n, s)| serde_json::json!({"name": n, "shape": s})).collect::<Vec<_>>()),
    });
    if args.json {
        super::print_out(&(serde_json::to_string_pretty(&summary)? + "\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let [h, w] = spec.image_size;
    let mut text = format!(
        "file:       {}\nformat:     safetensors written by {}\nsource:     {} (checkpoint sha256 {})\ngenotype:   {}\nnetwork:    image {h}x{w}, N={}, F={}, {} cells, {} features, {}\ntensors:    {} ({parameters} parameters, {bytes} bytes; {})\n",
        args.module.display(),
        get(keys::TOOL),
        get(keys::SOURCE_FILE),
        get(keys::SOURCE_SHA256),
        spec.genotype.name.as_deref().unwrap_or("unknown"),
        spec.num_cells,
        spec.filters,
        spec.cells.len(),
        spec.num_features,
        spec.num_classes.map_or("no classifier".to_string(), |c| format!("{c} classes")),
        tensors.len(),
        dtypes.iter().map(|(d, n)| format!("{d}: {n}")).collect::<Vec<_>>().join(", "),
    );
    if let Some(note) = &model.weights_note {
        text += &format!("weights:    {note}\n");
    }
    if args.variables {
        for (name, shape) in &tensors {
            text += &format!("  {name:<70} {shape:?}\n");
        }
    }
    super::print_out(&text)?;
    Ok(ExitCode::SUCCESS)
}
