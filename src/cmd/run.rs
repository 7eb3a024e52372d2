//! `amoeba run MODEL --input images.safetensors -o out.safetensors [--features]`.

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
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let images = read_images(&args.input)?;
    let model = Model::open(&args.model)?;
    let network = model.network()?;
    let out = network.forward(&images)?;
    let n = out.n;
    let mut tensors: Vec<(&str, Vec<f32>, Vec<usize>)> = Vec::new();
    let dim = out.features.len() / n;
    tensors.push(("features", out.features, vec![n, dim]));
    if let (false, Some(logits)) = (args.features, out.logits) {
        let classes = logits.len() / n;
        tensors.push(("logits", logits, vec![n, classes]));
    }
    super::write_f32_safetensors(&args.output, &tensors)?;
    println!("wrote {} ({n} images)", args.output.display());
    Ok(ExitCode::SUCCESS)
}

fn read_images(path: &Path) -> anyhow::Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
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
