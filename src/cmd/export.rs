//! `amoeba export MODEL --format onnx -o model.onnx [--external-data]` and
//! `amoeba export MODEL --format torch -o model.safetensors [--name-map FILE]`.

use model_io::Model;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// ONNX, opset 17: input `images` NHWC [N, H, W, 3] in [0, 1]; outputs `logits`, `features`.
    Onnx,
    /// A PyTorch state_dict in safetensors (OIHW, batch norms unfolded) with the network plan,
    /// for `python/amoeba_torch`.
    Torch,
}

#[derive(clap::Args)]
pub struct Args {
    /// Module folder, .tar.gz archive, or a .safetensors file written by convert.
    model: PathBuf,
    /// What to write.
    #[arg(long, value_enum, default_value = "onnx")]
    format: ExportFormat,
    /// Output file (written to a temporary file, then renamed).
    #[arg(short, long)]
    output: PathBuf,
    /// Keep the weights in `<output>.data` beside the model (ONNX external data); always so
    /// when they exceed what one ONNX file can hold (2 GiB).
    #[arg(long)]
    external_data: bool,
    /// With `--format torch`: also write the name map `{PyTorch name: TF name}` (JSON) to
    /// FILE (it is in the file's metadata either way).
    #[arg(long, value_name = "FILE")]
    name_map: Option<PathBuf>,
    /// Print the result as one JSON document.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match (args.format, &args.name_map, args.external_data) {
        (ExportFormat::Onnx, Some(_), _) => {
            anyhow::bail!("--name-map is for --format torch (an ONNX export keeps no TF names)")
        }
        (ExportFormat::Torch, _, true) => {
            anyhow::bail!(
                "--external-data is for --format onnx (a safetensors file has no size limit)"
            )
        }
        _ => {}
    }
    let model = Model::open(&args.model)?;
    if args.format == ExportFormat::Torch {
        return run_torch(&args, &model);
    }
    let bar = super::progress_bar("exporting", std::io::stderr().is_terminal());
    let mut progress = |done: u64, total: u64| bar.update(done, total);
    let report = model_io::export_onnx(&model, &args.output, args.external_data, &mut progress)?;
    bar.finish();
    let data = report
        .data_file
        .as_ref()
        .map(|p| format!(", weights in {}", p.display()))
        .unwrap_or_default();
    let genotype = model.spec.genotype.name.as_deref().unwrap_or("unknown");
    let json = args.json.then(|| {
        serde_json::json!({
            "output": report.output.display().to_string(),
            "data_file": report.data_file.as_ref().map(|p| p.display().to_string()),
            "format": "onnx",
            "opset": onnx_export::OPSET,
            "nodes": report.nodes,
            "initializers": report.initializers,
            "data_bytes": report.data_bytes,
            "genotype": genotype,
            "checkpoint_sha256": report.provenance.checkpoint_sha256,
            "notes": model.notes.iter().chain(&model.disagreements).collect::<Vec<_>>(),
        })
    });
    super::print_done(
        &format!(
            "wrote {} (ONNX opset {}, {} nodes, {} initializers, {} bytes of weights{data}; genotype {genotype}; checkpoint sha256 {})\n",
            report.output.display(),
            onnx_export::OPSET,
            report.nodes,
            report.initializers,
            report.data_bytes,
            report.provenance.checkpoint_sha256
        ),
        json,
    )?;
    // Under --json the notes are in the document.
    if !args.json {
        super::model_notes(&model);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_torch(args: &Args, model: &Model) -> anyhow::Result<ExitCode> {
    let bar = super::progress_bar("exporting", std::io::stderr().is_terminal());
    let mut progress = |done: u64, total: u64| bar.update(done, total);
    let report =
        model_io::export_torch(model, &args.output, args.name_map.as_deref(), &mut progress)?;
    bar.finish();
    let genotype = model.spec.genotype.name.as_deref().unwrap_or("unknown");
    let json = args.json.then(|| {
        serde_json::json!({
            "output": report.output.display().to_string(),
            "format": "torch",
            "tensors": report.tensors,
            "data_bytes": report.data_bytes,
            "name_map": report.name_map.as_ref().map(|p| p.display().to_string()),
            "genotype": genotype,
            "checkpoint_sha256": report.provenance.checkpoint_sha256,
            "notes": model.notes.iter().chain(&model.disagreements).collect::<Vec<_>>(),
        })
    });
    let map = report
        .name_map
        .as_ref()
        .map(|p| format!(", name map in {}", p.display()))
        .unwrap_or_default();
    super::print_done(
        &format!(
            "wrote {} (PyTorch state_dict, {} tensors, {} bytes{map}; genotype {genotype}; checkpoint sha256 {}; load it with amoeba_torch.load)\n",
            report.output.display(),
            report.tensors,
            report.data_bytes,
            report.provenance.checkpoint_sha256
        ),
        json,
    )?;
    if !args.json {
        super::model_notes(model);
    }
    Ok(ExitCode::SUCCESS)
}
