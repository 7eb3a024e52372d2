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
    let rendered = diagrams::try_render(&model.spec, format)
        .with_context(|| format!("{}: cannot draw the genotype", args.model.display()))?;
    match &args.output {
        Some(path) => {
            let inputs = model.input_paths();
            let inputs: Vec<&std::path::Path> = inputs.iter().map(PathBuf::as_path).collect();
            super::write_atomically(path, &inputs, rendered.as_bytes())?
        }
        None => super::print_out(&rendered)?,
    }
    for note in &model.notes {
        super::note(note);
    }
    for note in &model.disagreements {
        super::note(&format!(
            "variable names and graph disagree (the graph wins): {note}"
        ));
    }
    Ok(ExitCode::SUCCESS)
}
