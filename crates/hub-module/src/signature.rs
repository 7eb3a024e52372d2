//! Signatures of a graph variant: named inputs and outputs with dtypes and shapes.

use serde::Serialize;
use tf_proto::tensorflow::{tensor_info, DataType, SignatureDef, TensorInfo};

/// One input or output of a signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorSpec {
    /// The signature's key, e.g. `images` or `default`.
    pub key: String,
    /// The graph tensor, e.g. `hub_input/images:0`.
    pub tensor: String,
    /// TensorFlow's dtype name without the `DT_` prefix, lower case (`float`, `int32`, ...).
    pub dtype: String,
    /// Dimensions, -1 where unknown; `None` when the rank itself is unknown.
    pub shape: Option<Vec<i64>>,
}

/// A signature (`default`, `image_classification`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signature {
    pub name: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// TensorFlow's own limit on a tensor's rank (`TensorShape::MaxDimensions`).
pub const MAX_RANK: usize = 254;

impl Signature {
    /// Reads a signature; a shape of more than [`MAX_RANK`] dimensions is refused with the
    /// signature and tensor named (`Err` holds the problem, the caller adds the file).
    pub(crate) fn from_proto(name: &str, def: &SignatureDef) -> Result<Signature, String> {
        let specs = |map: &std::collections::BTreeMap<String, TensorInfo>| {
            map.iter()
                .map(|(k, v)| {
                    TensorSpec::from_proto(k, v).map_err(|rank| {
                        format!(
                            "signature {name:?}, tensor {k:?}: a shape of {rank} dimensions \
                             (TensorFlow allows at most {MAX_RANK})"
                        )
                    })
                })
                .collect::<Result<Vec<_>, String>>()
        };
        Ok(Signature {
            name: name.to_string(),
            inputs: specs(&def.inputs)?,
            outputs: specs(&def.outputs)?,
        })
    }

    /// The input with this key.
    pub fn input(&self, key: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|t| t.key == key)
    }

    /// The output with this key.
    pub fn output(&self, key: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|t| t.key == key)
    }
}

impl TensorSpec {
    /// `Err(rank)` when the shape has more than [`MAX_RANK`] dimensions.
    fn from_proto(key: &str, info: &TensorInfo) -> Result<TensorSpec, usize> {
        let tensor = match &info.encoding {
            Some(tensor_info::Encoding::Name(name)) => name.clone(),
            Some(tensor_info::Encoding::CooSparse(coo)) => {
                format!("sparse({})", coo.values_tensor_name)
            }
            None => String::new(),
        };
        let known = info.tensor_shape.as_ref().filter(|s| !s.unknown_rank);
        if let Some(s) = known.filter(|s| s.dim.len() > MAX_RANK) {
            return Err(s.dim.len());
        }
        let shape = known.map(|s| s.dim.iter().map(|d| d.size).collect());
        Ok(TensorSpec {
            key: key.to_string(),
            tensor,
            dtype: dtype_name(info.dtype),
            shape,
        })
    }

    /// The shape as text, e.g. `[-1, 331, 331, 3]` or `unknown`.
    pub fn shape_text(&self) -> String {
        match &self.shape {
            None => "unknown".to_string(),
            Some(dims) => {
                let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
                format!("[{}]", dims.join(", "))
            }
        }
    }
}

/// `DT_FLOAT` -> `float`; unknown values are shown as numbers.
pub(crate) fn dtype_name(value: i32) -> String {
    match DataType::try_from(value) {
        Ok(dt) => dt
            .as_str_name()
            .trim_start_matches("DT_")
            .to_ascii_lowercase(),
        Err(_) => format!("dtype#{value}"),
    }
}
