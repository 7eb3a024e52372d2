//! Writes the seed corpora `fuzz/corpus/<target>/seed-*` from the committed fixtures, kept
//! small (each seed is a slice or a shrunken copy of a fixture), so the corpora need not be
//! committed. Usage: `make_seeds <repository root>`; `cargo xtask fuzz` runs it.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use amoeba_fuzz::{default_header, EntriesInput};
use anyhow_free::{Context, Result};
use prost::Message;
use tensor_bundle::testing::{BundleBuilder, TableOptions};
use tensor_bundle::DType;
use tf_proto::tensorflow::{BundleEntryProto, MetaGraphDef, SavedModel};

/// A minimal `anyhow`-like error so the fuzz crate needs no extra dependency.
mod anyhow_free {
    pub type Result<T> = std::result::Result<T, String>;
    pub trait Context<T> {
        fn context(self, what: impl std::fmt::Display) -> Result<T>;
    }
    impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
        fn context(self, what: impl std::fmt::Display) -> Result<T> {
            self.map_err(|e| format!("{what}: {e}"))
        }
    }
}

const MODULES: [&str; 4] = [
    "amoebanet_a_n3_f8",
    "amoebanet_a_n3_f8_feature_vector",
    "amoebanet_a_n6_f16",
    "amoebanet_c_n3_f8_224",
];
/// How much of a fixture's data shard the `bundle_entries` seeds keep.
const SHARD_SLICE: usize = 4096;

fn main() -> std::process::ExitCode {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "..".into());
    match make_all(&root) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make_seeds: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn make_all(root: &Path) -> Result<()> {
    let corpus = root.join("fuzz/corpus");
    index_seeds(root, &corpus.join("index_table"))?;
    entries_seeds(root, &corpus.join("bundle_entries"))?;
    saved_model_seeds(root, &corpus.join("saved_model_genotype"))?;
    safetensors_seeds(root, &corpus.join("safetensors_model"))?;
    golden_seeds(root, &corpus.join("golden"))?;
    image_seeds(root, &corpus.join("image"))?;
    archive_seeds(&corpus.join("archive"))?;
    Ok(())
}

fn write_seed(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir).context(dir.display())?;
    let path = dir.join(format!("seed-{name}"));
    std::fs::write(&path, bytes).context(path.display())
}

fn module(root: &Path, name: &str) -> PathBuf {
    root.join("fixtures/modules").join(name)
}

/// A small bundle with what the fixtures lack: a partitioned tensor, big-endian data, two
/// shards' worth of layout options (the index alone is used where shards cannot be).
fn synthetic_bundle(big_endian: bool) -> BundleBuilder {
    let data: Vec<u8> = (0..48u8).collect();
    BundleBuilder::new()
        .tensor("a/weights", DType::F32, &[2, 3], &data[..24])
        .tensor("b/int", DType::I64, &[], &data[..8])
        .sliced(
            "c/part",
            DType::F32,
            &[4, 3],
            &data,
            &[vec![(0, 2), (0, -1)], vec![(2, 2), (0, -1)]],
        )
        .big_endian(big_endian)
}

fn index_seeds(root: &Path, dir: &Path) -> Result<()> {
    for name in MODULES {
        let path = module(root, name).join("variables/variables.index");
        write_seed(dir, name, &std::fs::read(&path).context(path.display())?)?;
    }
    let small_blocks = TableOptions {
        block_size: 64,
        restart_interval: 2,
        block_type: 0,
    };
    write_seed(
        dir,
        "synthetic",
        &synthetic_bundle(false).parts().index(&small_blocks),
    )
}

/// Rows of a fixture index whose data lies in the first [`SHARD_SLICE`] bytes of its shard.
fn entries_seeds(root: &Path, dir: &Path) -> Result<()> {
    let prefix = module(root, "amoebanet_a_n3_f8").join("variables/variables");
    let index_path = prefix.with_extension("index");
    let index = std::fs::read(&index_path).context(index_path.display())?;
    let rows = tensor_bundle::table::read_table(&index_path, &index).context("fixture index")?;
    let shard_path = prefix.with_extension("data-00000-of-00001");
    let shard = std::fs::read(&shard_path).context(shard_path.display())?;
    let mut input = EntriesInput {
        shard: shard[..SHARD_SLICE.min(shard.len())].to_vec(),
        rows: BTreeMap::new(),
    };
    for (key, value) in rows {
        let fits = BundleEntryProto::decode(value.as_slice())
            .is_ok_and(|e| e.offset.saturating_add(e.size) <= SHARD_SLICE as i64);
        if key.is_empty() || fits {
            input.rows.insert(key, value);
        }
    }
    write_seed(dir, "amoebanet_a_n3_f8", &input.encode())?;
    for (name, big) in [("synthetic_le", false), ("synthetic_be", true)] {
        let parts = synthetic_bundle(big).parts();
        let input = EntriesInput {
            shard: parts.shards.concat(),
            rows: parts.rows,
        };
        write_seed(dir, name, &input.encode())?;
    }
    let header_only = EntriesInput {
        shard: Vec::new(),
        rows: BTreeMap::from([(Vec::new(), default_header())]),
    };
    write_seed(dir, "header_only", &header_only.encode())
}

/// Each fixture's `saved_model.pb` cut down to its first meta graph (the one extracted from).
fn saved_model_seeds(root: &Path, dir: &Path) -> Result<()> {
    for name in MODULES {
        let path = module(root, name).join("saved_model.pb");
        let bytes = std::fs::read(&path).context(path.display())?;
        let mut saved = SavedModel::decode(bytes.as_slice()).context(path.display())?;
        saved.meta_graphs.truncate(1);
        if let Some(meta) = saved.meta_graphs.first_mut() {
            shrink(meta);
        }
        write_seed(dir, name, &saved.encode_to_vec())?;
    }
    Ok(())
}

/// Ops the genotype extraction never looks at (initialisation, regularisation, saving).
const UNUSED_OPS: [&str; 8] = [
    "AssignVariableOp",
    "VarIsInitializedOp",
    "TruncatedNormal",
    "L2Loss",
    "RandomUniform",
    "SaveV2",
    "RestoreV2",
    "MergeV2Checkpoints",
];

/// Drops what extraction does not read (`_output_shapes`/`_class` attributes, the op list,
/// init and save nodes), keeping each step only if the extracted network is unchanged, so
/// seeds stay well under libFuzzer's 1 MB input cap yet still extract.
fn shrink(meta: &mut MetaGraphDef) {
    let reference = extracted(meta);
    let steps: [fn(&mut MetaGraphDef); 3] = [
        |m| {
            if let Some(info) = m.meta_info_def.as_mut() {
                info.stripped_op_list = None;
            }
        },
        |m| {
            for node in m.graph_def.iter_mut().flat_map(|g| g.node.iter_mut()) {
                node.attr.retain(|k, _| !k.starts_with('_'));
            }
        },
        |m| {
            for g in m.graph_def.iter_mut() {
                g.node.retain(|n| {
                    !UNUSED_OPS.contains(&n.op.as_str())
                        && !n.name.starts_with("save/")
                        && !n.name.contains("/Initializer/")
                });
            }
        },
    ];
    for step in steps {
        let mut candidate = meta.clone();
        step(&mut candidate);
        if extracted(&candidate) == reference {
            *meta = candidate;
        }
    }
}

fn extracted(meta: &MetaGraphDef) -> Option<String> {
    let variables = amoeba_fuzz::graph_variables(meta);
    nasnet_genotype::extract(meta, &variables, None)
        .ok()
        .map(|e| e.spec.to_json())
}

/// The smallest fixture converted (a real `amoeba convert` output), and a tiny plain file.
fn safetensors_seeds(root: &Path, dir: &Path) -> Result<()> {
    let model = model_io::Model::open(&module(root, "amoebanet_a_n3_f8_feature_vector"))
        .context("open the feature-vector fixture")?;
    let tmp = tempfile::tempdir().context("temp folder")?;
    let out = tmp.path().join("fv.safetensors");
    model_io::convert(&model, &out, &mut |_, _| ControlFlow::Continue(()))
        .context("convert the feature-vector fixture")?;
    write_seed(
        dir,
        "feature_vector",
        &std::fs::read(&out).context(out.display())?,
    )?;
    let spec_dir = dir.with_file_name("network_spec");
    write_seed(
        &spec_dir,
        "feature_vector.json",
        model.spec.to_json().as_bytes(),
    )?;
    write_seed(
        dir,
        "plain",
        &safetensors_file(&[("x", vec![1, 2], vec![0u8; 8])], None),
    )
}

/// A safetensors file of F32 tensors `(name, shape, bytes)` and optional metadata.
fn safetensors_file(
    tensors: &[(&str, Vec<usize>, Vec<u8>)],
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .filter_map(|(name, shape, bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes);
            view.ok().map(|v| (name.to_string(), v))
        })
        .collect();
    safetensors::serialize(views, metadata).unwrap_or_default()
}

/// Goldens with the fixture goldens' tensor names but tiny shapes (1 image, 2x2 cells).
fn golden_seeds(root: &Path, dir: &Path) -> Result<()> {
    for name in ["amoebanet_a_n3_f8", "amoebanet_a_n3_f8_feature_vector"] {
        let path = root.join(format!("fixtures/goldens/{name}.golden.safetensors"));
        let bytes = std::fs::read(&path).context(path.display())?;
        let st = safetensors::SafeTensors::deserialize(&bytes).context(path.display())?;
        let mut small = Vec::new();
        for (tensor, view) in st.tensors() {
            let shape: Vec<usize> = match view.shape() {
                [_, _, _, c] => vec![1, 2, 2, (*c).min(4)],
                [_, k] => vec![1, (*k).min(8)],
                other => other.to_vec(),
            };
            let len = shape.iter().product::<usize>() * 4;
            let data: Vec<u8> = view.data().iter().copied().cycle().take(len).collect();
            small.push((tensor, shape, data));
        }
        let named: Vec<(&str, Vec<usize>, Vec<u8>)> = small
            .iter()
            .map(|(n, s, d)| (n.as_str(), s.clone(), d.clone()))
            .collect();
        write_seed(dir, name, &safetensors_file(&named, None))?;
    }
    Ok(())
}

/// 24x24 crops of the preprocessing fixtures, re-encoded (PNG: RGB, grey, 16-bit; JPEG).
fn image_seeds(root: &Path, dir: &Path) -> Result<()> {
    let src = root.join("fixtures/preprocess");
    for (name, file) in [
        ("astronaut", "astronaut.png"),
        ("camera", "camera.png"),
        ("rocket", "rocket.jpg"),
    ] {
        let img = image::open(src.join(file)).context(file)?;
        let crop = img.crop_imm(0, 0, 24, 24);
        for (suffix, format, variant) in [
            ("png", image::ImageFormat::Png, crop.clone()),
            (
                "jpg",
                image::ImageFormat::Jpeg,
                image::DynamicImage::ImageRgb8(crop.to_rgb8()),
            ),
            (
                "l16.png",
                image::ImageFormat::Png,
                image::DynamicImage::ImageLuma16(crop.to_luma16()),
            ),
        ] {
            let mut bytes = std::io::Cursor::new(Vec::new());
            variant.write_to(&mut bytes, format).context(file)?;
            write_seed(dir, &format!("{name}.{suffix}"), bytes.get_ref())?;
        }
    }
    Ok(())
}

/// A tiny module archive (a SavedModel header and the synthetic bundle) and a plain tar.
fn archive_seeds(dir: &Path) -> Result<()> {
    let parts = synthetic_bundle(false).parts();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("saved_model.pb", SavedModel::default().encode_to_vec()),
        ("tfhub_module.pb", vec![0x08, 0x03]),
        (
            "variables/variables.index",
            parts.index(&TableOptions::default()),
        ),
        (
            "variables/variables.data-00000-of-00001",
            parts.shards.concat(),
        ),
    ];
    let tar = tar_bytes(&files).context("tar")?;
    write_seed(dir, "module.tar", &tar)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).context("gzip")?;
    write_seed(dir, "module.tar.gz", &gz.finish().context("gzip")?)
}

fn tar_bytes(files: &[(&str, Vec<u8>)]) -> std::io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir_header = tar::Header::new_gnu();
    dir_header.set_entry_type(tar::EntryType::Directory);
    dir_header.set_mode(0o755);
    dir_header.set_size(0);
    builder.append_data(&mut dir_header, "./variables/", std::io::empty())?;
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, format!("./{name}"), bytes.as_slice())?;
    }
    builder.into_inner()
}
