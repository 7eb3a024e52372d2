//! Converting the fixture modules: every tensor byte-identical, metadata complete.

use model_io::{keys, Model};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/modules")
        .join(name)
}

#[test]
fn converted_file_holds_every_variable_and_the_provenance() {
    let module_path = fixture("amoebanet_a_n3_f8");
    let model = Model::open(&module_path).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.safetensors");
    let mut calls = 0;
    let report = model_io::convert(&model, &out, &mut |_, _| {
        calls += 1;
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert!(calls > 0, "progress is reported");

    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let model_io::ModelKind::Module(module) = &model.kind else {
        panic!("a module")
    };
    let bundle = module.bundle();
    assert_eq!(st.len(), bundle.len());
    assert_eq!(report.tensors, bundle.len());
    for entry in bundle.entries() {
        let view = st.tensor(&entry.name).unwrap();
        assert_eq!(view.shape(), entry.shape.as_slice(), "{}", entry.name);
        assert_eq!(
            view.data(),
            &*bundle.tensor_bytes(&entry.name).unwrap(),
            "{}",
            entry.name
        );
    }

    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let shard = std::fs::read(module_path.join("variables/variables.data-00000-of-00001")).unwrap();
    let expected: String = Sha256::digest(&shard)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(meta[keys::SOURCE_SHA256], expected);
    assert_eq!(meta[keys::SOURCE_FILE], "amoebanet_a_n3_f8");
    assert!(meta[keys::TOOL].starts_with("amoeba "));
    let spec = nasnet_genotype::NetworkSpec::from_json(&meta[keys::NETWORK]).unwrap();
    assert_eq!(spec, model.spec);
    let signatures: serde_json::Value = serde_json::from_str(&meta[keys::SIGNATURES]).unwrap();
    assert_eq!(signatures.as_array().unwrap().len(), 3);

    // Converting the converted file again keeps tensors and provenance.
    let again = tmp.path().join("again.safetensors");
    let from_file = Model::open(&out).unwrap();
    let report2 = model_io::convert(&from_file, &again, &mut |_, _| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(report2.provenance, report.provenance);
    assert_eq!(std::fs::read(&again).unwrap().len(), bytes.len());
}

#[test]
fn failed_conversion_leaves_no_file() {
    let model = Model::open(&fixture("amoebanet_a_n3_f8")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("missing-folder/m.safetensors");
    assert!(model_io::convert(
        &model,
        &out,
        &mut |_, _| std::ops::ControlFlow::Continue(())
    )
    .is_err());
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no temporary file left"
    );
}

#[test]
fn interrupted_conversion_leaves_nothing() {
    let model = Model::open(&fixture("amoebanet_a_n3_f8")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.safetensors");
    let mut seen = 0;
    let result = model_io::convert(&model, &out, &mut |_, _| {
        seen += 1;
        if seen == 1 {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    });
    assert!(matches!(
        result,
        Err(model_io::ModelError::Interrupted { .. })
    ));
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no output, no temporary file"
    );
}
