//! `amoeba run MODEL --input images.safetensors -o out.safetensors [--features] [--repeat N]`.

use anyhow::Context;
use model_io::Model;
use nasnet_forward::Tensor;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Module folder, .tar.gz archive, or a .safetensors file written by convert.
    model: PathBuf,
    /// safetensors file with `images` [N, H, W, 3] float32 in [0, 1] (already preprocessed).
    #[arg(long)]
    input: PathBuf,
    /// Output safetensors file with `logits` and `features`.
    #[arg(short, long)]
    output: PathBuf,
    /// Write only the feature vectors.
    #[arg(long)]
    features: bool,
    /// Run the forward pass N times on the same images (after loading) and print each run's
    /// time and the median to stderr; the output is written once, from the last run.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Print the result as one JSON document.
    #[arg(long)]
    json: bool,
    /// The GEMMs' arithmetic.
    #[arg(long, value_enum, default_value_t)]
    precision: super::PrecisionArg,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // A bad output path is refused before the work, not after it.
    safe_fs::check_output(&args.output, &[args.model.as_path(), args.input.as_path()])?;
    let images = read_images(&args.input)?;
    let model = Model::open(&args.model)?;
    super::model_notes(&model);
    let mut inputs = model.input_paths();
    inputs.push(args.input.clone());
    // Again with every file of the model (a module folder's files, through links too).
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    safe_fs::check_output(&args.output, &inputs)?;
    let network = super::load_network(&model, args.precision)?;
    let out = timed_forwards(&network, &images, args.repeat)
        .with_context(|| format!("{}: cannot run these images", args.input.display()))?;
    let n = out.n;
    let mut tensors: Vec<(&str, Vec<f32>, Vec<usize>)> = Vec::new();
    let dim = out.features.len() / n;
    tensors.push(("features", out.features, vec![n, dim]));
    if let (false, Some(logits)) = (args.features, out.logits) {
        let classes = logits.len() / n;
        tensors.push(("logits", logits, vec![n, classes]));
    }
    super::write_f32_safetensors(&args.output, &inputs, &tensors)?;
    let json = args.json.then(|| {
        serde_json::json!({
            "output": args.output.display().to_string(),
            "images": n,
            "tensors": tensors.iter().map(|(name, _, shape)| serde_json::json!({"name": name, "shape": shape})).collect::<Vec<_>>(),
        })
    });
    super::print_done(
        &format!("wrote {} ({n} images)\n", args.output.display()),
        json,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the forward pass `repeat` times and returns the last outputs. Every run is timed,
/// the first included (it pays for first-touch page faults of the activations), so a caller
/// wanting a warm-up drops the first `forward_seconds` line. With `repeat > 1`, one
/// `forward_seconds S` line per run and a `forward_median_seconds S` line go to stderr, for
/// scripts (`cargo xtask bench`) to parse.
fn timed_forwards(
    network: &nasnet_forward::Network,
    images: &Tensor,
    repeat: u32,
) -> anyhow::Result<nasnet_forward::Outputs> {
    let mut seconds = Vec::with_capacity(repeat as usize);
    let mut last = None;
    for _ in 0..repeat {
        // Drop the previous outputs first, so runs do not hold two sets of buffers.
        drop(last.take());
        let start = std::time::Instant::now();
        last = Some(network.forward(images)?);
        let s = start.elapsed().as_secs_f64();
        if repeat > 1 {
            eprintln!("forward_seconds {s:.6}");
        }
        seconds.push(s);
    }
    if repeat > 1 {
        eprintln!("forward_median_seconds {:.6}", median(&mut seconds));
    }
    last.context("no forward pass ran")
}

/// The median (the mean of the two middle values for an even count; for an odd count both
/// indices below are the middle one). `values` is not empty: `repeat` is at least 1.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    (values[(n - 1) / 2] + values[n / 2]) / 2.0
}

/// 16 GiB: a batch of 4,096 images at 331x331 in float32 is 5.4 GB.
const MAX_INPUT_BYTES: u64 = 16 << 30;

fn read_images(path: &Path) -> anyhow::Result<Tensor> {
    let bytes = safe_fs::read_regular(path, MAX_INPUT_BYTES)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a valid safetensors file", path.display()))?;
    let view = st
        .tensor("images")
        .with_context(|| format!("{}: no `images` tensor [N, H, W, 3]", path.display()))?;
    let shape: [usize; 4] = view.shape().try_into().map_err(|_| {
        anyhow::anyhow!(
            "{}: `images` has shape {:?}, expected [N, H, W, 3]",
            path.display(),
            view.shape()
        )
    })?;
    if view.dtype() != safetensors::Dtype::F32 {
        anyhow::bail!(
            "{}: `images` is {:?}, expected F32",
            path.display(),
            view.dtype()
        );
    }
    let data = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Tensor::from_vec(data, shape)
        .with_context(|| format!("{}: `images` data does not match its shape", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(super::median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
