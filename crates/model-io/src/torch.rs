//! `amoeba export --format torch`: the weights as a PyTorch `state_dict` in safetensors, for
//! `python/amoeba_torch` (which builds the network from the plan in the metadata).
//!
//! Which variables: exactly those the forward pass reads, in the order it reads them (the
//! loader is run once on a recording store that hands out zeros), so the export cannot
//! disagree with what `run` and `verify` use, and nothing here re-derives the network.
//!
//! Names: the TF name with `/` -> `.` and its last part renamed by `conventions.json`'s
//! `torch.leaf_names` (`weights` -> `weight`, `depthwise_weights` -> `depthwise.weight`,
//! `gamma` -> `weight`, `moving_variance` -> `running_var`, ...), plus each batch norm's int64
//! `num_batches_tracked` (0), as `torch.nn.BatchNorm2d` has it. Layouts: convolutions OIHW
//! (from HWIO), depthwise `[C, 1, kh, kw]` (from `[kh, kw, C, 1]`), dense `[out, in]`. Batch
//! norms are not folded, so the model can train.
//!
//! Metadata: `amoeba.format`, the plan (`amoeba.network`), the conventions, the family's
//! training facts (`amoeba.training`), the name map back to TF (`amoeba.name_map`, JSON
//! `{torch name: TF name}`), provenance and the weights note.

use crate::convert::{insert_provenance, provenance, verify_and_hash};
use crate::{keys, Model, ModelError, ModelKind, Provenance};
use nasnet_forward::{ForwardError, WeightSource};
use nasnet_genotype::conventions::{conventions, conventions_json, ReductionCells};
use nasnet_genotype::{CellKind, NetworkSpec};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// `amoeba.format` of a PyTorch export.
pub const TORCH_FORMAT: &str = "torch-state-dict/1";

/// `__metadata__` keys of a PyTorch export (besides those of [`keys`]).
pub mod torch_keys {
    /// [`super::TORCH_FORMAT`].
    pub const FORMAT: &str = "amoeba.format";
    /// `data/conventions.json`, the names the Python model builds its modules with.
    pub const CONVENTIONS: &str = "amoeba.conventions";
    /// The family's training facts (JSON): batch-norm momentum, dropout keep probabilities.
    pub const TRAINING: &str = "amoeba.training";
    /// `{torch name: TF name}` (JSON).
    pub const NAME_MAP: &str = "amoeba.name_map";
}

/// What a PyTorch export wrote.
#[derive(Debug, Clone)]
pub struct TorchExportReport {
    pub output: PathBuf,
    /// Tensors written (weights and batch-norm counters).
    pub tensors: usize,
    pub data_bytes: u64,
    /// The name map file, when one was asked for.
    pub name_map: Option<PathBuf>,
    pub provenance: Provenance,
}

/// How a TF tensor becomes its PyTorch tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `[kh, kw, cin, cout]` -> `[cout, cin, kh, kw]`.
    Conv,
    /// `[kh, kw, c, 1]` -> `[c, 1, kh, kw]`.
    Depthwise,
    /// `[in, out]` -> `[out, in]`.
    Dense,
    /// Vectors as they are.
    Same,
    /// A batch norm's `num_batches_tracked`: int64 0, no TF counterpart.
    Counter,
}

/// One tensor of the export.
#[derive(Debug, Clone)]
struct TorchTensor {
    torch: String,
    /// The TF variable, `None` for a counter.
    tf: Option<String>,
    layout: Layout,
    tf_shape: Vec<usize>,
}

impl TorchTensor {
    fn shape(&self) -> Vec<usize> {
        let s = &self.tf_shape;
        match self.layout {
            Layout::Conv => vec![s[3], s[2], s[0], s[1]],
            Layout::Depthwise => vec![s[2] * s[3], 1, s[0], s[1]],
            Layout::Dense => vec![s[1], s[0]],
            Layout::Same => s.clone(),
            Layout::Counter => Vec::new(),
        }
    }

    fn dtype(&self) -> &'static str {
        if self.layout == Layout::Counter {
            "I64"
        } else {
            "F32"
        }
    }

    fn bytes(&self) -> u64 {
        if self.layout == Layout::Counter {
            8
        } else {
            4 * self.tf_shape.iter().product::<usize>() as u64
        }
    }
}

/// A store that records which variables the forward pass reads and answers with zeros, so
/// that loading costs no reading of the checkpoint.
struct Recorder<'a> {
    inner: &'a dyn WeightSource,
    read: RefCell<Vec<(String, Vec<usize>)>>,
}

impl WeightSource for Recorder<'_> {
    fn source_name(&self) -> String {
        self.inner.source_name()
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.inner.shape(name)
    }
    fn values(&self, name: &str) -> Result<Vec<f32>, ForwardError> {
        let shape = self.inner.shape(name).unwrap_or_default();
        let len = shape.iter().product();
        let mut read = self.read.borrow_mut();
        if !read.iter().any(|(n, _)| n == name) {
            read.push((name.to_string(), shape));
        }
        Ok(vec![0.0; len])
    }
}

/// The variables the forward pass reads, in its order, with their TF shapes.
fn used_variables(model: &Model) -> Result<Vec<(String, Vec<usize>)>, ModelError> {
    let weights = model.weights();
    let recorder = Recorder {
        inner: weights.as_ref(),
        read: RefCell::new(Vec::new()),
    };
    drop(nasnet_forward::Network::load(&model.spec, &recorder)?);
    Ok(recorder.read.into_inner())
}

/// The export's tensors: each used variable under its PyTorch name and layout, each batch
/// norm followed by its counter.
fn torch_tensors(model: &Model) -> Result<Vec<TorchTensor>, ModelError> {
    let c = conventions();
    let invalid = |problem: String| ModelError::Invalid {
        path: model.path.clone(),
        problem,
    };
    let mut out = Vec::new();
    for (tf, shape) in used_variables(model)? {
        let torch = c.torch_name(&tf).ok_or_else(|| {
            invalid(format!(
                "variable {tf}: no PyTorch name for its last part (conventions.json torch.leaf_names)"
            ))
        })?;
        let leaf = tf.rsplit('/').next().unwrap_or_default();
        let depthwise = leaf == c.operations.depthwise_weights;
        let layout = match shape.len() {
            4 if depthwise && shape[3] == 1 => Layout::Depthwise,
            4 if depthwise => {
                return Err(invalid(format!(
                    "variable {tf} has shape {shape:?}; depthwise weights are [kh, kw, C, 1]"
                )))
            }
            4 => Layout::Conv,
            2 => Layout::Dense,
            1 => Layout::Same,
            _ => {
                return Err(invalid(format!(
                    "variable {tf} has shape {shape:?}; a PyTorch layout exists for 1, 2 and 4 dimensions"
                )))
            }
        };
        let is_bn_end = leaf == c.variables.bn_moving_variance;
        out.push(TorchTensor {
            torch: torch.clone(),
            tf: Some(tf),
            layout,
            tf_shape: shape,
        });
        if is_bn_end {
            let scope = torch.rsplit_once('.').map_or("", |(s, _)| s);
            out.push(TorchTensor {
                torch: format!("{scope}.{}", c.torch.batch_norm_counter),
                tf: None,
                layout: Layout::Counter,
                tf_shape: Vec::new(),
            });
        }
    }
    let mut seen = HashSet::new();
    if let Some(t) = out.iter().find(|t| !seen.insert(t.torch.as_str())) {
        return Err(invalid(format!(
            "two variables map to the PyTorch name {}",
            t.torch
        )));
    }
    Ok(out)
}

/// The family's training facts as `amoeba.training` JSON.
fn training_json(spec: &NetworkSpec, path: &Path) -> Result<String, ModelError> {
    // Separate reduction cells have scopes of their own (`reduction_cell_K`); PNASNet's
    // stride-2 cells are `cell_K`, though of kind reduction.
    let has_reduction_scopes = spec.cells.iter().any(|c| {
        conventions()
            .parse_cell_scope(&c.scope)
            .is_some_and(|(kind, _)| kind == CellKind::Reduction)
    });
    let placement = if has_reduction_scopes {
        ReductionCells::Separate
    } else {
        ReductionCells::StridedNormal
    };
    let family = conventions()
        .family(&spec.stem_scope, placement)
        .ok_or_else(|| ModelError::Invalid {
            path: path.to_path_buf(),
            problem: format!(
                "no family in conventions.json has stem {:?} with these cells: its training facts are unknown",
                spec.stem_scope
            ),
        })?;
    let t = &family.training;
    // PyTorch's momentum is TF's 1 - decay; rounded so that 0.9 gives 0.1, not 0.09999999999999998.
    let momentum = ((1.0 - t.batch_norm_decay) * 1e12).round() / 1e12;
    Ok(serde_json::json!({
        "family": family.name,
        "batch_norm_decay": t.batch_norm_decay,
        "batch_norm_momentum": momentum,
        "dense_dropout_keep_prob": t.dense_dropout_keep_prob,
        "drop_path_keep_prob": t.drop_path_keep_prob(spec.stem_filters),
        "drop_path_schedule": t.drop_path_schedule,
    })
    .to_string())
}

/// The metadata, without provenance (added once the checkpoint is hashed).
fn metadata(
    model: &Model,
    tensors: &[TorchTensor],
) -> Result<BTreeMap<String, String>, ModelError> {
    let name_map: BTreeMap<&str, &str> = tensors
        .iter()
        .filter_map(|t| t.tf.as_deref().map(|tf| (t.torch.as_str(), tf)))
        .collect();
    let mut meta = BTreeMap::new();
    meta.insert(torch_keys::FORMAT.to_string(), TORCH_FORMAT.to_string());
    meta.insert(keys::NETWORK.to_string(), model.spec.to_json());
    meta.insert(
        torch_keys::CONVENTIONS.to_string(),
        conventions_json().to_string(),
    );
    meta.insert(
        torch_keys::TRAINING.to_string(),
        training_json(&model.spec, &model.path)?,
    );
    meta.insert(
        torch_keys::NAME_MAP.to_string(),
        serde_json::to_string(&name_map).unwrap_or_default(),
    );
    Ok(meta)
}

/// The safetensors header (see [`crate::header::header_json`]).
fn header(tensors: &[TorchTensor], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let entries = tensors
        .iter()
        .map(|t| (t.torch.as_str(), t.dtype(), t.shape(), t.bytes()));
    crate::header::header_json(entries, metadata)
}

/// `values` (TF layout) in `layout`.
fn to_torch_layout(values: &[f32], shape: &[usize], layout: Layout) -> Vec<f32> {
    match layout {
        Layout::Conv | Layout::Depthwise => {
            let [kh, kw, ci, co] = [shape[0], shape[1], shape[2], shape[3]];
            let mut out = vec![0.0; values.len()];
            for y in 0..kh {
                for x in 0..kw {
                    for i in 0..ci {
                        for o in 0..co {
                            let tf = ((y * kw + x) * ci + i) * co + o;
                            // Depthwise: channel i with multiplier o is output channel i*co+o.
                            let torch = match layout {
                                Layout::Conv => ((o * ci + i) * kh + y) * kw + x,
                                _ => ((i * co + o) * kh + y) * kw + x,
                            };
                            out[torch] = values[tf];
                        }
                    }
                }
            }
            out
        }
        Layout::Dense => {
            let [n_in, n_out] = [shape[0], shape[1]];
            let mut out = vec![0.0; values.len()];
            for i in 0..n_in {
                for o in 0..n_out {
                    out[o * n_in + i] = values[i * n_out + o];
                }
            }
            out
        }
        Layout::Same | Layout::Counter => values.to_vec(),
    }
}

/// Writes `model`'s weights in PyTorch layout to `output`, and the name map to `name_map`
/// when given; both through temporary files, renamed only when complete.
pub fn export_torch(
    model: &Model,
    output: &Path,
    name_map: Option<&Path>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<TorchExportReport, ModelError> {
    // Bad output paths are refused before the work (hashing, loading), not after it.
    let inputs = model.input_paths();
    let mut inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    safe_fs::check_output(output, &inputs)?;
    if let Some(map) = name_map {
        if safe_fs::same_target(map, output) {
            return Err(ModelError::Invalid {
                path: map.to_path_buf(),
                problem: "is also the output; the name map needs a file of its own".into(),
            });
        }
        safe_fs::check_output(map, &inputs)?;
    }
    let tensors = torch_tensors(model)?;
    let mut meta = metadata(model, &tensors)?;
    let mut provenance = provenance(model);
    if let ModelKind::Module(module) = &model.kind {
        // Every checksum verified, and the checkpoint hashed, before anything is written.
        provenance.checkpoint_sha256 = verify_and_hash(model, module)?;
    }
    insert_provenance(&mut meta, model, &provenance);
    let mut map_out = match name_map {
        Some(path) => {
            let mut out = safe_fs::AtomicOutput::create(path, &inputs)?;
            let json = meta.get(torch_keys::NAME_MAP).cloned().unwrap_or_default();
            out.file()
                .write_all(json.as_bytes())
                .map_err(|e| write_error(path, e))?;
            Some(out)
        }
        None => None,
    };
    inputs.extend(name_map);
    let mut out = safe_fs::AtomicOutput::create(output, &inputs)?;
    let header = header(&tensors, &meta);
    let total: u64 = tensors.iter().map(TorchTensor::bytes).sum();
    let weights = model.weights();
    {
        let mut w = BufWriter::with_capacity(1 << 20, out.file());
        let err = |e| write_error(output, e);
        w.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(err)?;
        w.write_all(&header).map_err(err)?;
        let mut done = 0u64;
        for t in &tensors {
            match &t.tf {
                None => w.write_all(&0i64.to_le_bytes()).map_err(err)?,
                Some(tf) => {
                    let values = weights.values(tf)?;
                    if values.len() as u64 * 4 != t.bytes() {
                        return Err(ModelError::Invalid {
                            path: model.path.clone(),
                            problem: format!(
                                "variable {tf}: {} values for shape {:?}",
                                values.len(),
                                t.tf_shape
                            ),
                        });
                    }
                    for v in to_torch_layout(&values, &t.tf_shape, t.layout) {
                        w.write_all(&v.to_le_bytes()).map_err(err)?;
                    }
                }
            }
            done += t.bytes();
            progress(done, total);
        }
        w.flush().map_err(err)?;
    }
    // The export first: the name map repeats its metadata, so a map that fails to land leaves
    // a complete export, never a map without the export it describes.
    out.persist()?;
    if let (Some(map), Some(path)) = (map_out.take(), name_map) {
        map.persist()?;
        return Ok(report(output, &tensors, total, Some(path), provenance));
    }
    Ok(report(output, &tensors, total, None, provenance))
}

fn report(
    output: &Path,
    tensors: &[TorchTensor],
    data_bytes: u64,
    name_map: Option<&Path>,
    provenance: Provenance,
) -> TorchExportReport {
    TorchExportReport {
        output: output.to_path_buf(),
        tensors: tensors.len(),
        data_bytes,
        name_map: name_map.map(Path::to_path_buf),
        provenance,
    }
}

fn write_error(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Write {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_move_each_element_where_pytorch_expects_it() {
        // conv [kh=1, kw=2, cin=2, cout=3]: TF index ((y*kw+x)*ci+i)*co+o.
        let shape = [1, 2, 2, 3];
        let values: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let out = to_torch_layout(&values, &shape, Layout::Conv);
        // torch [o][i][y][x] with kh = 1: element (o=2, i=1, x=1) is at (2*2+1)*2+1 = 11 and
        // is TF ((0*2+1)*2+1)*3+2 = 11; (o=1, i=0, x=0) is at 4 and is TF 1.
        assert_eq!(out[11], 11.0);
        assert_eq!(out[4], 1.0);
        // dense [in=2, out=3] -> [3, 2].
        let dense = to_torch_layout(&values[..6], &[2, 3], Layout::Dense);
        assert_eq!(dense, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        // depthwise [kh=1, kw=2, c=3, 1] -> [3, 1, 1, 2]: channel c's taps together.
        let dw = to_torch_layout(&values[..6], &[1, 2, 3, 1], Layout::Depthwise);
        assert_eq!(dw, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn the_header_is_aligned_and_offsets_are_contiguous() {
        let tensors = vec![
            TorchTensor {
                torch: "a.weight".into(),
                tf: Some("a/gamma".into()),
                layout: Layout::Same,
                tf_shape: vec![3],
            },
            TorchTensor {
                torch: "a.num_batches_tracked".into(),
                tf: None,
                layout: Layout::Counter,
                tf_shape: vec![],
            },
        ];
        let h = header(&tensors, &BTreeMap::new());
        assert_eq!(h.len() % 8, 0);
        let v: serde_json::Value = serde_json::from_slice(&h).unwrap();
        assert_eq!(v["a.weight"]["data_offsets"], serde_json::json!([0, 12]));
        assert_eq!(
            v["a.num_batches_tracked"]["data_offsets"],
            serde_json::json!([12, 20])
        );
        assert_eq!(v["a.num_batches_tracked"]["shape"], serde_json::json!([]));
        assert_eq!(v["a.num_batches_tracked"]["dtype"], "I64");
    }
}
