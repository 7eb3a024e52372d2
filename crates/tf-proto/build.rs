//! Generates the prost types from the trimmed `.proto` files in the workspace's `proto/`
//! folder. protox compiles them in pure Rust, so no system `protoc` is needed.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "tensorflow/core/protobuf/saved_model.proto",
    "tensorflow/core/protobuf/tensor_bundle.proto",
    "tensorflow/core/framework/variable.proto",
    "tensorflow_hub/module_def.proto",
    "tensorflow_hub/module_attachment.proto",
    "tensorflow_hub/image_module_info.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| root.join(p)).collect();
    let descriptors = protox::compile(&files, [&root])?;
    // The schema at run time, for estimating what a decode will allocate before decoding.
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("descriptors.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    // BTreeMap keeps signatures, collections and attributes in a stable order for reports.
    prost_build::Config::new()
        .btree_map(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
