//! `amoeba export MODEL --format onnx -o model.onnx [--external-data]`.

use model_io::Model;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// ONNX, opset 17: input `images` NHWC [N, H, W, 3] in [0, 1]; outputs `logits`, `features`.
    Onnx,
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
    /// Print the result as one JSON document.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let model = Model::open(&args.model)?;
    let ExportFormat::Onnx = args.format;
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
