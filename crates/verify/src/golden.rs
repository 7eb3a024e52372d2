//! Golden files: what TensorFlow computed for a batch of images.

use nasnet_forward::Tensor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a golden file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct GoldenError {
    pub path: PathBuf,
    pub problem: String,
}

/// Row-major values and their `[rows, columns]` shape.
pub type Matrix = (Vec<f32>, [usize; 2]);

/// The contents of a golden file.
pub struct Golden {
    pub path: PathBuf,
    /// `[N, H, W, 3]` in [0, 1].
    pub images: Tensor,
    /// `[N, classes]`, when the module classifies.
    pub logits: Option<Matrix>,
    /// `[N, features]`.
    pub features: Option<Matrix>,
    /// Cell scope -> output `[N, h, w, c]`.
    pub cells: BTreeMap<String, Tensor>,
}

const CELL_PREFIX: &str = "cell_output/";

impl Golden {
    /// Reads and checks a golden file.
    pub fn open(path: &Path) -> Result<Golden, GoldenError> {
        let err = |problem: String| GoldenError {
            path: path.to_path_buf(),
            problem,
        };
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| err(format!("not a valid safetensors file: {e}")))?;
        let images = read_nhwc(&st, "images").map_err(err)?.ok_or_else(|| {
            err("no `images` tensor: a golden file holds images [N,H,W,3], logits, features".into())
        })?;
        if images.shape[3] != 3 || images.shape[0] == 0 {
            return Err(err(format!(
                "`images` has shape {:?}, expected [N, H, W, 3]",
                images.shape
            )));
        }
        let n = images.shape[0];
        let logits = read_matrix(&st, "logits", n).map_err(err)?;
        let features = read_matrix(&st, "features", n).map_err(err)?;
        let mut cells = BTreeMap::new();
        for name in st.names() {
            if let Some(scope) = name.strip_prefix(CELL_PREFIX) {
                let t = read_nhwc(&st, name)
                    .map_err(err)?
                    .ok_or_else(|| err(format!("{name} vanished")))?;
                if t.shape[0] != n {
                    return Err(err(format!(
                        "{name} has batch {} but `images` has {n}",
                        t.shape[0]
                    )));
                }
                cells.insert(scope.to_string(), t);
            }
        }
        if logits.is_none() && features.is_none() {
            return Err(err(
                "neither `logits` nor `features`: nothing to compare".into()
            ));
        }
        Ok(Golden {
            path: path.to_path_buf(),
            images,
            logits,
            features,
            cells,
        })
    }
}

impl Golden {
    /// Checks that the golden file fits a network like `spec` (image size, classes, feature
    /// length), so a golden of another model is reported as bad input, not as a failed
    /// verification.
    pub fn check_against(&self, spec: &nasnet_forward::NetworkSpec) -> Result<(), GoldenError> {
        let err = |problem: String| GoldenError {
            path: self.path.clone(),
            problem,
        };
        let [_, h, w, _] = self.images.shape;
        if [h, w] != spec.image_size {
            return Err(err(format!(
                "`images` are {h}x{w} but the model takes {}x{}: a golden file of another model?",
                spec.image_size[0], spec.image_size[1]
            )));
        }
        if let (Some((_, [_, classes])), Some(ours)) = (&self.logits, spec.num_classes) {
            if *classes != ours {
                return Err(err(format!(
                    "`logits` have {classes} classes but the model has {ours}"
                )));
            }
        }
        if let Some((_, [_, dim])) = &self.features {
            if *dim != spec.num_features {
                return Err(err(format!(
                    "`features` have {dim} values but the model's feature vector has {}",
                    spec.num_features
                )));
            }
        }
        Ok(())
    }
}

fn f32_values(view: &safetensors::tensor::TensorView<'_>, name: &str) -> Result<Vec<f32>, String> {
    if view.dtype() != safetensors::Dtype::F32 {
        return Err(format!("`{name}` is {:?}, expected F32", view.dtype()));
    }
    Ok(view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn read_nhwc(st: &safetensors::SafeTensors<'_>, name: &str) -> Result<Option<Tensor>, String> {
    let Ok(view) = st.tensor(name) else {
        return Ok(None);
    };
    let shape: [usize; 4] = view.shape().try_into().map_err(|_| {
        format!(
            "`{name}` has shape {:?}, expected 4 dimensions (NHWC)",
            view.shape()
        )
    })?;
    let data = f32_values(&view, name)?;
    Ok(Tensor::from_vec(data, shape))
}

fn read_matrix(
    st: &safetensors::SafeTensors<'_>,
    name: &str,
    n: usize,
) -> Result<Option<Matrix>, String> {
    let Ok(view) = st.tensor(name) else {
        return Ok(None);
    };
    let shape: [usize; 2] = view
        .shape()
        .try_into()
        .map_err(|_| format!("`{name}` has shape {:?}, expected [N, K]", view.shape()))?;
    if shape[0] != n {
        return Err(format!(
            "`{name}` has batch {} but `images` has {n}",
            shape[0]
        ));
    }
    Ok(Some((f32_values(&view, name)?, shape)))
}
