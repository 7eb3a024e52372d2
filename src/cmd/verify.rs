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
    /// Absolute tolerance, scaled by max(1, max |golden|) per tensor (finite, >= 0)
    /// [default: 1e-4; with --precision bf16, the bf16 bar (README)].
    #[arg(long, value_parser = verify::parse_tolerance)]
    atol: Option<f32>,
    /// Relative tolerance per element (finite, >= 0).
    #[arg(long, default_value_t = 0.0, value_parser = verify::parse_tolerance)]
    rtol: f32,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The GEMMs' arithmetic (f32 is the reference; bf16 is checked with its own bar).
    #[arg(long, value_enum, default_value_t)]
    precision: super::PrecisionArg,
}

/// The bar: f32's, or bf16's own (README "bf16"): a looser atol, and the top-1 class in
/// place of the top-5 order (still reported), which the near-tied scores of random-weight
/// fixtures swap under bf16 rounding. `--atol` overrides either.
fn options_for(args: &Args, precision: super::PrecisionArg) -> Options {
    let f32_bar = Options::default();
    let (atol, top1_only) = match precision {
        super::PrecisionArg::F32 => (f32_bar.atol, false),
        super::PrecisionArg::Bf16 => (verify::BF16_ATOL, true),
    };
    Options {
        atol: args.atol.unwrap_or(atol),
        rtol: args.rtol,
        top1_only,
        ..f32_bar
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    options_for(&args, super::PrecisionArg::F32).check()?;
    let golden = Golden::open(&args.golden)?;
    let model = Model::open(&args.model)?;
    // The weights are checked against the model's own description first, so that a model
    // at odds with itself is named as such, not blamed on the golden file.
    let network = super::load_network(&model, args.precision)?;
    golden.check_against(&model.spec)?;
    // The bar of what really runs: bf16's only where bf16 hardware ran it.
    let ran = match network.precision() {
        nasnet_forward::Precision::Bf16 => super::PrecisionArg::Bf16,
        nasnet_forward::Precision::F32 => super::PrecisionArg::F32,
    };
    let options = options_for(&args, ran);
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
