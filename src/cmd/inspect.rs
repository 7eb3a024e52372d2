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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let module = HubModule::open(&args.module)?;
    let summary = module.summary(args.variables);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(ExitCode::SUCCESS)
}
