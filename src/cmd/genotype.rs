//! `amoeba genotype MODEL --format text|json|dot|svg|mermaid [-o FILE]`.

use anyhow::Context;
use diagrams::Format;
use model_io::Model;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Module folder, .tar.gz archive, or a .safetensors file written by convert.
    model: PathBuf,
    /// text, json, dot, svg or mermaid.
    #[arg(long, default_value = "text")]
    format: String,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let format: Format = args.format.parse().map_err(|_| {
        anyhow::anyhow!(
            "unknown --format {:?}: use text, json, dot, svg or mermaid",
            args.format
        )
    })?;
    let model = Model::open(&args.model)?;
    let rendered = diagrams::render(&model.spec, format);
    match &args.output {
        Some(path) => super::write_atomically(path, rendered.as_bytes())
            .with_context(|| format!("{}: cannot write", path.display()))?,
        None => print!("{rendered}"),
    }
    for note in &model.disagreements {
        eprintln!("note: variable names and graph disagree (the graph wins): {note}");
    }
    Ok(ExitCode::SUCCESS)
}
