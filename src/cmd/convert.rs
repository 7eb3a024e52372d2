//! `amoeba convert MODEL -o model.safetensors`.

use model_io::Model;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Module folder, .tar.gz archive, or a .safetensors file written by convert.
    model: PathBuf,
    /// Output .safetensors file (written to a temporary file, then renamed).
    #[arg(short, long)]
    output: PathBuf,
    /// Print the result as one JSON document.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let model = Model::open(&args.model)?;
    let bar = super::progress_bar("converting", std::io::stderr().is_terminal());
    // Ctrl-C needs no check here: the signal handler (`safe_fs::cleanup`) removes the
    // registered temporary output and ends the process.
    let mut progress = |done: u64, total: u64| {
        bar.update(done, total);
        std::ops::ControlFlow::Continue(())
    };
    let report = model_io::convert(&model, &args.output, &mut progress)?;
    bar.finish();
    let genotype = model.spec.genotype.name.as_deref().unwrap_or("unknown");
    let json = args.json.then(|| {
        serde_json::json!({
            "output": report.output.display().to_string(),
            "tensors": report.tensors,
            "data_bytes": report.data_bytes,
            "genotype": genotype,
            "checkpoint_sha256": report.provenance.checkpoint_sha256,
            "notes": model.notes.iter().chain(&model.disagreements).collect::<Vec<_>>(),
        })
    });
    super::print_done(
        &format!(
            "wrote {} ({} tensors, {} bytes of data; genotype {genotype}; checkpoint sha256 {})\n",
            report.output.display(),
            report.tensors,
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
