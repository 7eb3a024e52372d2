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
    super::print_out(&format!(
        "wrote {} ({} tensors, {} bytes of data; genotype {}; checkpoint sha256 {})\n",
        report.output.display(),
        report.tensors,
        report.data_bytes,
        model.spec.genotype.name.as_deref().unwrap_or("unknown"),
        report.provenance.checkpoint_sha256
    ))?;
    for note in &model.notes {
        eprintln!("note: {note}");
    }
    for note in &model.disagreements {
        eprintln!("note: {note}");
    }
    Ok(ExitCode::SUCCESS)
}
