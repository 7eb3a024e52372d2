//! `amoeba verify MODEL --golden golden.safetensors [--atol A] [--rtol R]`.

use model_io::Model;
use std::path::PathBuf;
use std::process::ExitCode;
use verify::{Golden, Options};

#[derive(clap::Args)]
pub struct Args {
    /// Module folder, .tar.gz archive, or a .safetensors file written by convert.
    model: PathBuf,
    /// Golden outputs made by TensorFlow (`cargo xtask golden`).
    #[arg(long)]
    golden: PathBuf,
    /// Absolute tolerance, scaled by max(1, max |golden|) per tensor (finite, >= 0).
    #[arg(long, default_value_t = 1e-4, value_parser = verify::parse_tolerance)]
    atol: f32,
    /// Relative tolerance per element (finite, >= 0).
    #[arg(long, default_value_t = 0.0, value_parser = verify::parse_tolerance)]
    rtol: f32,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = Options {
        atol: args.atol,
        rtol: args.rtol,
        ..Options::default()
    };
    // Everything that can be refused is refused before the (slow) model load.
    options.check()?;
    let golden = Golden::open(&args.golden)?;
    let model = Model::open(&args.model)?;
    // The weights are checked against the model's own description first, so that a model
    // at odds with itself is named as such, not blamed on the golden file.
    let network = model.network()?;
    golden.check_against(&model.spec)?;
    let report = verify::verify(&network, &golden, options)?;
    if args.json {
        super::print_report(&(serde_json::to_string_pretty(&report)? + "\n"))?;
    } else {
        super::print_report(&report.to_text(options))?;
    }
    Ok(if report.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_VERIFY_FAILED)
    })
}
