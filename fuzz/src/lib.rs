//! The bodies of the fuzz targets, one function per target, so that `fuzz_targets/*.rs` are
//! one line each and `make_seeds` can encode inputs in the same formats the targets decode.
//!
//! Every function must return normally for *any* input: errors are the expected outcome, a
//! panic, abort, hang or huge allocation is a bug in the crate under test.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use prost::Message;
use tensor_bundle::testing::{build_table, TableOptions};
use tensor_bundle::TensorBundle;
use tf_proto::tensorflow::{BundleHeaderProto, MetaGraphDef, SavedModel, VersionDef};

/// A per-process scratch folder: targets that read files rewrite the same few files on every
/// run rather than creating a temporary folder per input (which would dominate run time).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        tempfile::Builder::new()
            .prefix("amoeba-fuzz-")
            .tempdir()
            .expect("cannot create the fuzz scratch folder")
    })
    .path()
}

/// Writes `bytes` to `name` in the scratch folder and returns its path.
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    let mut file = std::fs::File::create(&path).expect("cannot write a scratch file");
    file.write_all(bytes).expect("cannot write a scratch file");
    path
}

/// Target `index_table`: the raw bytes of a `<prefix>.index` file.
pub fn index_table(data: &[u8]) {
    let _ = tensor_bundle::table::read_table(Path::new("fuzz.index"), data);
}

/// The input of `bundle_entries`, decoded from the fuzzer's bytes (see [`EntriesInput::decode`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EntriesInput {
    /// Contents of the single data shard.
    pub shard: Vec<u8>,
    /// Table rows; the `""` key is the bundle header (a valid one is added when absent).
    pub rows: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Reads a u16-length-prefixed record.
fn record(data: &mut &[u8]) -> Option<Vec<u8>> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_le_bytes(*len));
    let bytes = rest.get(..len)?.to_vec();
    *data = &rest[len..];
    Some(bytes)
}

fn push_record(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

impl EntriesInput {
    /// `shard record, then (key record, value record)*`; a record is a u16 LE length and its
    /// bytes. Framing the rows this way (instead of fuzzing the table bytes) lets the fuzzer
    /// reach the entry decoding behind the table's checksums.
    pub fn decode(mut data: &[u8]) -> EntriesInput {
        let shard = record(&mut data).unwrap_or_default();
        let mut rows = BTreeMap::new();
        while let (Some(key), Some(value)) = (record(&mut data), record(&mut data)) {
            rows.insert(key, value);
        }
        EntriesInput { shard, rows }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        push_record(&mut out, &self.shard);
        for (key, value) in &self.rows {
            push_record(&mut out, key);
            push_record(&mut out, value);
        }
        out
    }
}

/// A valid one-shard, little-endian bundle header.
pub fn default_header() -> Vec<u8> {
    BundleHeaderProto {
        num_shards: 1,
        endianness: 0,
        version: Some(VersionDef {
            producer: 1,
            min_consumer: 0,
            bad_consumers: vec![],
        }),
    }
    .encode_to_vec()
}

/// Target `bundle_entries`: a bundle with a well-formed table around fuzzed rows and shard;
/// opens it, then reads and checksums every tensor, as `inspect --check` and `convert` do.
pub fn bundle_entries(data: &[u8]) {
    let mut input = EntriesInput::decode(data);
    input.rows.entry(Vec::new()).or_insert_with(default_header);
    let rows: Vec<(Vec<u8>, Vec<u8>)> = input.rows.into_iter().collect();
    let index = build_table(&rows, &TableOptions::default());
    scratch_file("ckpt.index", &index);
    scratch_file("ckpt.data-00000-of-00001", &input.shard);
    let Ok(bundle) = TensorBundle::open(&scratch().join("ckpt")) else {
        return;
    };
    let _ = bundle.verify_all();
    let names: Vec<String> = bundle.entries().map(|e| e.name.clone()).collect();
    for name in names
        .iter()
        .chain(bundle.unsupported().iter().map(|u| &u.name))
    {
        let _ = bundle.tensor_bytes(name);
    }
}

/// The variables a graph declares (`VariableV2`/`VarHandleOp`/`Variable` nodes with a fully
/// defined `shape` attribute), standing in for a checkpoint that matches the graph.
pub fn graph_variables(meta: &MetaGraphDef) -> Vec<(String, Vec<usize>)> {
    let Some(graph) = &meta.graph_def else {
        return Vec::new();
    };
    graph
        .node
        .iter()
        .filter(|n| matches!(n.op.as_str(), "VariableV2" | "VarHandleOp" | "Variable"))
        .filter_map(|n| {
            let shape = match n.attr.get("shape")?.value.as_ref()? {
                tf_proto::tensorflow::attr_value::Value::Shape(s) => s,
                _ => return None,
            };
            let dims = shape
                .dim
                .iter()
                .map(|d| usize::try_from(d.size).ok())
                .collect::<Option<Vec<_>>>()?;
            Some((n.name.clone(), dims))
        })
        .collect()
}

/// Target `saved_model_genotype`: a `saved_model.pb`; extracts the genotype of its first
/// meta graph with the variables that graph declares.
pub fn saved_model_genotype(data: &[u8]) {
    let Ok(saved) = SavedModel::decode(data) else {
        return;
    };
    let Some(meta) = saved.meta_graphs.first() else {
        return;
    };
    let variables = graph_variables(meta);
    let _ = nasnet_genotype::extract(meta, &variables, None);
    let _ = nasnet_genotype::extract(meta, &variables, Some([331, 331]));
}

/// Target `safetensors_model`: a `.safetensors` file opened as weights and as a converted
/// model; when it opens as a model, its network is loaded from it (shape checks, batch-norm
/// folding) but not run.
pub fn safetensors_model(data: &[u8]) {
    let path = scratch_file("model.safetensors", data);
    if let Ok(weights) = model_io::SafetensorsWeights::open(&path) {
        use nasnet_forward::WeightSource;
        let _ = weights.metadata();
        for (name, _) in weights.names_and_shapes() {
            let _ = weights.shape(&name);
            let _ = weights.values(&name);
        }
    }
    if let Ok(model) = model_io::Model::open(&path) {
        let _ = model.network();
    }
}

/// Largest image the `image` target decodes: keeps each run fast and memory small while
/// still exercising the size check.
pub const IMAGE_MAX_PIXELS: u64 = 1 << 20;

/// Target `image`: a photo file (JPEG, PNG, anything) decoded and preprocessed.
pub fn image(data: &[u8]) {
    let Ok(rgb) = preprocess::decode_rgb8(data, Path::new("fuzz.img"), IMAGE_MAX_PIXELS) else {
        return;
    };
    let _ = preprocess::preprocess_rgb(&rgb, 16);
}

/// Extraction cap of the `archive` target: small, so that bombs are cut off quickly.
pub const ARCHIVE_MAX_BYTES: u64 = 1 << 20;

/// Target `archive`: a module `.tar.gz` (or plain `.tar`) opened with a small byte cap.
pub fn archive(data: &[u8]) {
    let path = scratch_file("module.tar.gz", data);
    let limits = hub_module::ArchiveLimits {
        max_extracted_bytes: ARCHIVE_MAX_BYTES,
    };
    let _ = hub_module::HubModule::open_with_limits(&path, limits);
}
