//! Writing an [`OnnxGraph`] as protobuf with the weights streamed: each initializer's values
//! are computed from the checkpoint, written and dropped before the next. prost encodes the
//! small messages (nodes, metadata, tensor headers); the `raw_data` of each embedded tensor
//! is appended by hand, which protobuf allows (a message's fields may come in any order, and
//! a length-delimited field is its tag, its length and its bytes).

use crate::graph::{Initializer, OnnxGraph, Recipe};
use crate::onnx::{
    tensor_proto::DataLocation, GraphProto, ModelProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto,
};
use crate::{ExportError, IR_VERSION, MAX_EMBEDDED_BYTES, OPSET};
use nasnet_forward::WeightSource;
use nasnet_genotype::conventions::conventions;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message;
use std::io::Write;

/// `GraphProto.initializer`, `ModelProto.graph`, `TensorProto.raw_data`,
/// `ModelProto.metadata_props`.
const GRAPH_INITIALIZER: u32 = 5;
const MODEL_METADATA: u32 = 14;
const MODEL_GRAPH: u32 = 7;
const TENSOR_RAW_DATA: u32 = 9;

/// Initializers up to this size stay in the model file even with external data (shapes,
/// pads, slice bounds: runtimes and checkers read them as constants), as `onnx` itself does.
const EXTERNAL_THRESHOLD: u64 = 1024;

/// Where the weights go.
pub enum Weights<'a> {
    /// Inside the model file (up to [`MAX_EMBEDDED_BYTES`]).
    Embedded,
    /// In a separate file, named in the model as `location` (relative to the model file).
    External {
        location: &'a str,
        data: &'a mut dyn Write,
    },
}

fn write_err(what: &str) -> impl Fn(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Write {
        what: what.to_string(),
        source,
    }
}

impl OnnxGraph {
    /// Bytes of every initializer's data.
    pub fn data_bytes(&self) -> u64 {
        self.initializers.iter().map(Initializer::byte_len).sum()
    }

    /// Writes the model to `model` (and its large weights to `weights`' data file), computing
    /// each weight from `source` when it is written. `progress(done, total)` sees data bytes.
    pub fn write(
        &self,
        source: &dyn WeightSource,
        model: &mut dyn Write,
        weights: Weights<'_>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), ExportError> {
        let total = self.data_bytes();
        match weights {
            Weights::Embedded => self.write_embedded(source, model, total, progress),
            Weights::External { location, data } => {
                self.write_external(source, model, location, data, total, progress)
            }
        }
    }

    fn model_proto(&self) -> ModelProto {
        ModelProto {
            ir_version: Some(IR_VERSION),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(OPSET),
            }],
            producer_name: Some("amoeba".into()),
            producer_version: Some(env!("CARGO_PKG_VERSION").into()),
            metadata_props: self
                .metadata
                .iter()
                .map(|(k, v)| StringStringEntryProto {
                    key: Some(k.clone()),
                    value: Some(v.clone()),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn graph_proto(&self, initializer: Vec<TensorProto>) -> GraphProto {
        GraphProto {
            node: self.nodes.clone(),
            name: Some("amoeba".into()),
            initializer,
            input: self.inputs.clone(),
            output: self.outputs.clone(),
            ..Default::default()
        }
    }

    fn write_embedded(
        &self,
        source: &dyn WeightSource,
        out: &mut dyn Write,
        total: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), ExportError> {
        if total > MAX_EMBEDDED_BYTES {
            return Err(ExportError::TooLargeToEmbed {
                bytes: total,
                max: MAX_EMBEDDED_BYTES,
            });
        }
        let head = self.graph_proto(Vec::new()).encode_to_vec();
        let headers: Vec<Vec<u8>> = self
            .initializers
            .iter()
            .map(|i| header(i).encode_to_vec())
            .collect();
        let tensor_len = |i: &Initializer, h: &[u8]| {
            let raw = i.byte_len();
            h.len() as u64 + key_len(TENSOR_RAW_DATA) as u64 + encoded_len_varint(raw) as u64 + raw
        };
        let graph_len: u64 = head.len() as u64
            + self
                .initializers
                .iter()
                .zip(&headers)
                .map(|(i, h)| {
                    let t = tensor_len(i, h);
                    key_len(GRAPH_INITIALIZER) as u64 + encoded_len_varint(t) as u64 + t
                })
                .sum::<u64>();
        let err = write_err("the ONNX model");
        let mut buf = self.model_proto().encode_to_vec();
        encode_key(MODEL_GRAPH, WireType::LengthDelimited, &mut buf);
        encode_varint(graph_len, &mut buf);
        buf.extend_from_slice(&head);
        out.write_all(&buf).map_err(&err)?;
        let mut done = 0;
        for (init, h) in self.initializers.iter().zip(&headers) {
            let data = values(self.epsilon, source, init)?;
            // The lengths above were framed from `byte_len`: a tensor of another size would
            // corrupt every field after it.
            if data.len() as u64 != init.byte_len() {
                return Err(ExportError::Unsupported {
                    scope: init.name.clone(),
                    problem: format!("{} bytes computed, {} framed", data.len(), init.byte_len()),
                });
            }
            let mut prefix = Vec::with_capacity(h.len() + 24);
            encode_key(GRAPH_INITIALIZER, WireType::LengthDelimited, &mut prefix);
            encode_varint(tensor_len(init, h), &mut prefix);
            prefix.extend_from_slice(h);
            encode_key(TENSOR_RAW_DATA, WireType::LengthDelimited, &mut prefix);
            encode_varint(data.len() as u64, &mut prefix);
            out.write_all(&prefix).map_err(&err)?;
            out.write_all(&data).map_err(&err)?;
            done += data.len() as u64;
            progress(done, total);
        }
        out.flush().map_err(&err)
    }

    fn write_external(
        &self,
        source: &dyn WeightSource,
        out: &mut dyn Write,
        location: &str,
        data: &mut dyn Write,
        total: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), ExportError> {
        let err = write_err("the ONNX weights file");
        let mut tensors = Vec::with_capacity(self.initializers.len());
        let mut offset = 0u64;
        let mut done = 0;
        for init in &self.initializers {
            let bytes = values(self.epsilon, source, init)?;
            let mut tensor = header(init);
            if init.byte_len() <= EXTERNAL_THRESHOLD {
                tensor.raw_data = Some(bytes.clone());
            } else {
                data.write_all(&bytes).map_err(&err)?;
                let entry = |k: &str, v: String| StringStringEntryProto {
                    key: Some(k.into()),
                    value: Some(v),
                };
                tensor.data_location = Some(DataLocation::External as i32);
                tensor.external_data = vec![
                    entry("location", location.to_string()),
                    entry("offset", offset.to_string()),
                    entry("length", bytes.len().to_string()),
                ];
                offset += bytes.len() as u64;
            }
            done += bytes.len() as u64;
            progress(done, total);
            tensors.push(tensor);
        }
        data.flush().map_err(&err)?;
        let mut model = self.model_proto();
        model.graph = Some(self.graph_proto(tensors));
        let err = write_err("the ONNX model");
        out.write_all(&model.encode_to_vec()).map_err(&err)?;
        out.flush().map_err(&err)
    }
}

/// Appends metadata props to a model already written to `out` (a message's fields may come
/// in any order, and repeated ones accumulate): so metadata known only after the weights are
/// written, such as a hash computed meanwhile, still lands in the model.
pub fn append_metadata(
    out: &mut dyn Write,
    metadata: &[(String, String)],
) -> Result<(), ExportError> {
    let mut buf = Vec::new();
    for (k, v) in metadata {
        let entry = StringStringEntryProto {
            key: Some(k.clone()),
            value: Some(v.clone()),
        }
        .encode_to_vec();
        encode_key(MODEL_METADATA, WireType::LengthDelimited, &mut buf);
        encode_varint(entry.len() as u64, &mut buf);
        buf.extend_from_slice(&entry);
    }
    let err = write_err("the ONNX model");
    out.write_all(&buf).map_err(&err)?;
    out.flush().map_err(&err)
}

/// A tensor's name, dims and type, without its data.
fn header(init: &Initializer) -> TensorProto {
    TensorProto {
        dims: init.dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(init.data_type() as i32),
        name: Some(init.name.clone()),
        ..Default::default()
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 * v.len());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// A variable's values, of exactly `len` elements.
fn read(source: &dyn WeightSource, name: &str, len: usize) -> Result<Vec<f32>, ExportError> {
    let v = source.values(name)?;
    if v.len() != len {
        return Err(ExportError::Weight {
            source_name: source.source_name(),
            name: name.to_string(),
            problem: format!("{} values, but its shape gives {len}", v.len()),
        });
    }
    Ok(v)
}

/// The four batch-norm vectors, channels `range` of each.
fn batch_norm(
    source: &dyn WeightSource,
    bn: &crate::graph::FoldedBn,
) -> Result<[Vec<f32>; 4], ExportError> {
    let [g, b, m, v] = conventions().bn_variables(&bn.scope);
    let part = |name: &str| -> Result<Vec<f32>, ExportError> {
        Ok(read(source, name, bn.channels)?[bn.range.clone()].to_vec())
    };
    Ok([part(&g)?, part(&b)?, part(&m)?, part(&v)?])
}

/// The little-endian bytes of an initializer, computed by its recipe.
fn values(eps: f32, source: &dyn WeightSource, init: &Initializer) -> Result<Vec<u8>, ExportError> {
    match &init.recipe {
        Recipe::Floats(v) => Ok(f32_bytes(v)),
        Recipe::Ints(v) => Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Recipe::Variable(name) => {
            let len = init.dims.iter().product();
            Ok(f32_bytes(&read(source, name, len)?))
        }
        Recipe::FoldedBias(bn) => {
            let [g, b, m, v] = batch_norm(source, bn)?;
            Ok(f32_bytes(
                &kernels::batch_norm_scale_shift(&g, &b, &m, &v, eps).1,
            ))
        }
        Recipe::ConvWeights {
            variable,
            kernel: [kh, kw],
            cin,
            cout,
            depthwise,
            bn,
        } => {
            let (kh, kw, cin, cout) = (*kh, *kw, *cin, *cout);
            let mut w = read(source, variable, kh * kw * cin * cout)?;
            if let Some(bn) = bn {
                let [g, b, m, v] = batch_norm(source, bn)?;
                kernels::fold_batch_norm(&mut w, cout, &g, &b, &m, &v, eps);
            }
            if kh == 1 && kw == 1 && !*depthwise {
                // Most of the bytes: `[cin][cout]` to `[cout][cin]`.
                return Ok(f32_bytes(&transpose(&w, cin, cout)));
            }
            // TF HWIO `[y][x][i][o]` (a depthwise `[y][x][c]`, `cin` 1 and `cout` c) to
            // ONNX `[o][i][y][x]`.
            let mut out = Vec::with_capacity(w.len());
            for o in 0..cout {
                for i in 0..cin {
                    for y in 0..kh {
                        for x in 0..kw {
                            let at = if *depthwise {
                                (y * kw + x) * cout + o
                            } else {
                                ((y * kw + x) * cin + i) * cout + o
                            };
                            out.push(w[at]);
                        }
                    }
                }
            }
            Ok(f32_bytes(&out))
        }
    }
}

/// A `[rows][cols]` matrix as `[cols][rows]`, in tiles so that both sides stay in cache.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const TILE: usize = 32;
    let mut out = vec![0f32; m.len()];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = m[r * cols + c];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiled_transpose_is_a_transpose() {
        for (rows, cols) in [(1, 1), (3, 70), (65, 33), (64, 64)] {
            let m: Vec<f32> = (0..rows * cols).map(|x| x as f32).collect();
            let t = transpose(&m, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], m[r * cols + c]);
                }
            }
        }
    }
}
