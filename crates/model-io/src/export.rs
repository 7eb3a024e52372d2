//! `amoeba export --format onnx`: the model's ONNX graph (crate `onnx-export`) written next to
//! nothing else, atomically, with its provenance in the metadata.

use crate::convert::{provenance, verify_and_hash};
use crate::{keys, Model, ModelError, ModelKind, Provenance};
use onnx_export::{Weights, MAX_EMBEDDED_BYTES};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub output: PathBuf,
    /// The external-data file, when the weights are not inside the model file.
    pub data_file: Option<PathBuf>,
    pub data_bytes: u64,
    pub nodes: usize,
    pub initializers: usize,
    pub provenance: Provenance,
}

/// The model's metadata props: the network plan, provenance, and what the input must be.
const PREPROCESSING: &str = "input `images`: float32 NHWC [N, H, W, 3], RGB in [0, 1] (the hub \
     signature; the model scales it itself). The AmoebaNet evaluation preprocessing: decode, \
     central crop 0.875 of each side, bilinear resize to H x W (half-pixel centers off).";
const LABELS: &str = "logits: 1001 ImageNet classes, index 0 = background, in the order of the \
     hub modules' ImageNetLabels.txt";

/// `<output>.data` beside the model, and the name the model records for it.
fn data_file(output: &Path) -> (PathBuf, String) {
    let name = output
        .file_name()
        .map(|n| format!("{}.data", n.to_string_lossy()))
        .unwrap_or_else(|| "model.onnx.data".to_string());
    (output.with_file_name(&name), name)
}

/// Writes `model` as ONNX to `output` (and, with `external_data` or when the weights exceed
/// what one protobuf can hold, its weights to `<output>.data`). `progress(done, total)` sees
/// data bytes. Nothing is left behind on failure.
pub fn export_onnx(
    model: &Model,
    output: &Path,
    external_data: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExportReport, ModelError> {
    let export_err = |source| ModelError::Export {
        path: model.path.clone(),
        source,
    };
    let mut metadata = vec![
        (keys::NETWORK.to_string(), model.spec.to_json()),
        (
            keys::TOOL.to_string(),
            format!("amoeba {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "amoeba.preprocessing".to_string(),
            PREPROCESSING.to_string(),
        ),
        ("amoeba.labels".to_string(), LABELS.to_string()),
    ];
    if let Some(note) = &model.weights_note {
        metadata.push((keys::WEIGHTS.to_string(), note.clone()));
    }
    let weights = model.weights();
    let graph = onnx_export::build(&model.spec, &*weights, metadata).map_err(export_err)?;
    let data_bytes = graph.data_bytes();
    let external = external_data || data_bytes > MAX_EMBEDDED_BYTES;
    let inputs = model.input_paths();
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let mut out = safe_fs::AtomicOutput::create(output, &inputs)?;
    let mut data = match external {
        true => {
            let file = data_file(output);
            let out = safe_fs::AtomicOutput::create(&file.0, &inputs)?;
            Some((file, out))
        }
        false => None,
    };
    // The checkpoint is checksummed and hashed on other threads while the weights are
    // written; the provenance goes at the end of the model (protobuf allows fields anywhere).
    let (written, provenance) = std::thread::scope(|scope| {
        let hasher = scope.spawn(|| -> Result<Provenance, ModelError> {
            let mut provenance = provenance(model);
            if let ModelKind::Module(module) = &model.kind {
                provenance.checkpoint_sha256 = verify_and_hash(model, module)?;
            }
            Ok(provenance)
        });
        let mut model_writer = BufWriter::with_capacity(1 << 20, out.file());
        let written = match data.as_mut() {
            Some(((_, location), data_out)) => {
                let mut data_writer = BufWriter::with_capacity(1 << 20, data_out.file());
                let target = Weights::External {
                    location,
                    data: &mut data_writer,
                };
                graph.write(&*weights, &mut model_writer, target, progress)
            }
            None => graph.write(&*weights, &mut model_writer, Weights::Embedded, progress),
        };
        let provenance = hasher.join().unwrap_or_else(|_| {
            Err(ModelError::Read {
                path: model.path.clone(),
                source: std::io::Error::other("the checkpoint hashing thread failed"),
            })
        });
        let written = written.map_err(export_err).and_then(|()| {
            let Ok(provenance) = provenance.as_ref() else {
                // The hasher's own error is returned below.
                return Ok(());
            };
            let tail = [
                (
                    keys::SOURCE_FILE.to_string(),
                    provenance.source_file.clone(),
                ),
                (
                    keys::SOURCE_SHA256.to_string(),
                    provenance.checkpoint_sha256.clone(),
                ),
            ];
            onnx_export::append_metadata(&mut model_writer, &tail).map_err(export_err)
        });
        (written, provenance)
    });
    let provenance = provenance?;
    written?;
    let data_path = match data {
        Some(((path, _), data_out)) => {
            data_out.persist()?;
            Some(path)
        }
        None => None,
    };
    // The model names its data file: should the model not land, the new data file must not
    // stay beside an older model whose offsets it does not match.
    if let Err(e) = out.persist() {
        if let Some(path) = &data_path {
            let _ = std::fs::remove_file(path);
        }
        return Err(e.into());
    }
    Ok(ExportReport {
        output: output.to_path_buf(),
        data_file: data_path,
        data_bytes,
        nodes: graph.nodes.len(),
        initializers: graph.initializers.len(),
        provenance,
    })
}
