//! `amoeba inspect MODULE [--json] [--variables]`.

use hub_module::HubModule;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Module folder, or its .tar.gz / .tgz archive.
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
    let module = HubModule::open(&args.module)?;
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
        eprintln!(
            "checksums: {} tensors, {} bytes verified in {seconds:.2} s ({:.2} GB/s)",
            summary.num_variables,
            summary.num_bytes,
            summary.num_bytes as f64 / seconds.max(1e-9) / 1e9
        );
    }
    if args.json {
        super::print_out(&(serde_json::to_string_pretty(&summary)? + "\n"))?;
    } else {
        super::print_out(&summary.to_text())?;
    }
    Ok(ExitCode::SUCCESS)
}
