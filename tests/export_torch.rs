//! `amoeba export --format torch`: every tensor is a TF variable of the module (per the name
//! map) moved into PyTorch's layout, compared element by element with the same variable in
//! TF layout from `amoeba convert`; batch norms keep their four vectors and get a counter;
//! the metadata holds the plan, the conventions and the training facts; refusals leave no file.
//! (That the names equal `torch.nn.Module.state_dict()` is checked with PyTorch itself by
//! `cargo xtask check-torch`.)

mod common;

use common::repo;
use safetensors::SafeTensors;
use std::collections::BTreeMap;
use std::path::Path;

fn amoeba(args: &[&str]) -> (Option<i32>, String, String) {
    common::amoeba_run(args, &[])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Exports `module` as torch and converts it (TF layout); returns both files' bytes and the
/// name map file's JSON.
fn export_and_convert(module: &Path, dir: &Path) -> (Vec<u8>, Vec<u8>, BTreeMap<String, String>) {
    let torch = dir.join("t.safetensors");
    let map = dir.join("t.map.json");
    let tf = dir.join("tf.safetensors");
    let (code, out, err) = amoeba(&[
        "export",
        s(module),
        "--format",
        "torch",
        "-o",
        s(&torch),
        "--name-map",
        s(&map),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("PyTorch state_dict"), "{out}");
    let (code, _, err) = amoeba(&["convert", s(module), "-o", s(&tf)]);
    assert_eq!(code, Some(0), "{err}");
    let map: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&map).unwrap()).unwrap();
    (
        std::fs::read(torch).unwrap(),
        std::fs::read(tf).unwrap(),
        map,
    )
}

/// TF `[kh, kw, ci, co]` element for the PyTorch layout of `torch_shape`'s flat index.
fn check_tensor(name: &str, tf_shape: &[usize], tf: &[f32], torch_shape: &[usize], torch: &[f32]) {
    assert_eq!(tf.len(), torch.len(), "{name}");
    match tf_shape.len() {
        4 if name.ends_with("depthwise.weight") => {
            let [kh, kw, c] = [tf_shape[0], tf_shape[1], tf_shape[2]];
            assert_eq!(torch_shape, [c, 1, kh, kw], "{name}");
            for (i, &v) in torch.iter().enumerate() {
                let (ch, y, x) = (i / (kh * kw), i / kw % kh, i % kw);
                assert_eq!(v, tf[(y * kw + x) * c + ch], "{name}[{i}]");
            }
        }
        4 => {
            let [kh, kw, ci, co] = [tf_shape[0], tf_shape[1], tf_shape[2], tf_shape[3]];
            assert_eq!(torch_shape, [co, ci, kh, kw], "{name}");
            for (i, &v) in torch.iter().enumerate() {
                let (o, c, y, x) = (i / (ci * kh * kw), i / (kh * kw) % ci, i / kw % kh, i % kw);
                assert_eq!(v, tf[((y * kw + x) * ci + c) * co + o], "{name}[{i}]");
            }
        }
        2 => {
            let [n_in, n_out] = [tf_shape[0], tf_shape[1]];
            assert_eq!(torch_shape, [n_out, n_in], "{name}");
            for (i, &v) in torch.iter().enumerate() {
                assert_eq!(v, tf[(i % n_in) * n_out + i / n_in], "{name}[{i}]");
            }
        }
        _ => {
            assert_eq!(torch_shape, tf_shape, "{name}");
            assert_eq!(torch, tf, "{name}");
        }
    }
}

fn check_export(module: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let (torch_bytes, tf_bytes, map) = export_and_convert(module, dir.path());
    let torch = SafeTensors::deserialize(&torch_bytes).unwrap();
    let tf = SafeTensors::deserialize(&tf_bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&torch_bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["amoeba.format"], "torch-state-dict/1");
    assert_eq!(
        serde_json::from_str::<BTreeMap<String, String>>(&meta["amoeba.name_map"]).unwrap(),
        map,
        "the name map file equals the metadata's"
    );
    let (_, tf_meta) = SafeTensors::read_metadata(&tf_bytes).unwrap();
    assert_eq!(
        meta["amoeba.network"],
        tf_meta.metadata().as_ref().unwrap()["amoeba.network"]
    );
    let training: serde_json::Value = serde_json::from_str(&meta["amoeba.training"]).unwrap();
    assert!(training["batch_norm_momentum"].as_f64().unwrap() > 0.0);
    let conventions: serde_json::Value = serde_json::from_str(&meta["amoeba.conventions"]).unwrap();
    assert_eq!(
        conventions["torch"]["batch_norm_counter"],
        "num_batches_tracked"
    );
    let mut counters = 0;
    for (name, view) in torch.tensors() {
        if let Some(scope) = name.strip_suffix(".num_batches_tracked") {
            assert_eq!(view.dtype(), safetensors::Dtype::I64);
            assert_eq!(view.shape(), &[] as &[usize]);
            assert_eq!(view.data(), &[0u8; 8]);
            for leaf in ["weight", "bias", "running_mean", "running_var"] {
                assert!(
                    torch.tensor(&format!("{scope}.{leaf}")).is_ok(),
                    "{scope}.{leaf}"
                );
            }
            counters += 1;
            continue;
        }
        let tf_name = map
            .get(&name)
            .unwrap_or_else(|| panic!("{name} not in the name map"));
        let tf_view = tf.tensor(tf_name).unwrap();
        check_tensor(
            &name,
            tf_view.shape(),
            &f32s(tf_view.data()),
            view.shape(),
            &f32s(view.data()),
        );
    }
    assert!(counters > 0);
    assert_eq!(
        torch.len(),
        map.len() + counters,
        "every weight has a TF name"
    );
    // Exactly the TF names the network reads: nothing of another scope.
    assert!(map
        .values()
        .all(|n| !n.contains("global_step") && !n.contains("aux_")));
}

#[test]
fn an_amoebanet_export_is_the_tf_weights_in_pytorch_layout() {
    check_export(&repo("fixtures/modules/amoebanet_a_n3_f8"));
}

#[test]
fn nasnet_pnasnet_and_amoebanet_c_exports_too() {
    for m in [
        "fixtures/conformance/nasnet_a_mobile_n6_f8",
        "fixtures/modules/pnasnet_5_large_n6_f16",
        "fixtures/modules/amoebanet_c_n3_f8_224",
    ] {
        check_export(&repo(m));
    }
}

#[test]
fn training_facts_follow_the_family_and_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("fixtures/modules/amoebanet_a_n3_f8", 0.1, 0.7, "constant"),
        (
            "fixtures/modules/nasnet_a_mobile_n6_f8",
            0.0003,
            1.0,
            "layer_scaled",
        ),
        (
            "fixtures/modules/nasnet_a_large_n6_f16",
            0.0003,
            0.7,
            "layer_scaled",
        ),
        (
            "fixtures/modules/pnasnet_5_large_n6_f16",
            0.0003,
            0.6,
            "layer_scaled",
        ),
    ];
    for (module, momentum, keep, schedule) in cases {
        let out = dir.path().join("t.safetensors");
        let (code, _, err) = amoeba(&[
            "export",
            s(&repo(module)),
            "--format",
            "torch",
            "-o",
            s(&out),
            "-q",
        ]);
        assert_eq!(code, Some(0), "{module}: {err}");
        let bytes = std::fs::read(&out).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let t: serde_json::Value =
            serde_json::from_str(&meta.metadata().as_ref().unwrap()["amoeba.training"]).unwrap();
        assert_eq!(
            t["batch_norm_momentum"].as_f64(),
            Some(momentum),
            "{module}"
        );
        assert_eq!(t["drop_path_keep_prob"].as_f64(), Some(keep), "{module}");
        assert_eq!(t["drop_path_schedule"], schedule, "{module}");
        assert_eq!(t["dense_dropout_keep_prob"].as_f64(), Some(0.5), "{module}");
    }
}

#[test]
fn an_export_from_a_converted_file_equals_the_one_from_the_module() {
    let dir = tempfile::tempdir().unwrap();
    let module = repo("fixtures/modules/amoebanet_a_n3_f8");
    let converted = dir.path().join("c.safetensors");
    assert_eq!(
        amoeba(&["convert", s(&module), "-o", s(&converted)]).0,
        Some(0)
    );
    let a = dir.path().join("a.safetensors");
    let b = dir.path().join("b.safetensors");
    assert_eq!(
        amoeba(&["export", s(&module), "--format", "torch", "-o", s(&a)]).0,
        Some(0)
    );
    assert_eq!(
        amoeba(&["export", s(&converted), "--format", "torch", "-o", s(&b)]).0,
        Some(0)
    );
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let (ta, tb) = (
        SafeTensors::deserialize(&a).unwrap(),
        SafeTensors::deserialize(&b).unwrap(),
    );
    let mut names = ta.names();
    names.sort();
    let mut names_b = tb.names();
    names_b.sort();
    assert_eq!(names, names_b);
    for n in names {
        assert_eq!(
            ta.tensor(n).unwrap().data(),
            tb.tensor(n).unwrap().data(),
            "{n}"
        );
    }
}

#[test]
fn wrong_flag_combinations_and_collisions_are_refused_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let module = repo("fixtures/modules/amoebanet_a_n3_f8");
    let out = dir.path().join("t.safetensors");
    let onnx = dir.path().join("m.onnx");
    let map = dir.path().join("map.json");
    let (code, _, err) = amoeba(&["export", s(&module), "-o", s(&onnx), "--name-map", s(&map)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--name-map is for --format torch"), "{err}");
    let (code, _, err) = amoeba(&[
        "export",
        s(&module),
        "--format",
        "torch",
        "-o",
        s(&out),
        "--external-data",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--external-data is for --format onnx"),
        "{err}"
    );
    // The name map may not be the output (however spelt), nor inside the module (a copy: a
    // regression must not overwrite a repository file).
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let spelt = sub.join("../t.safetensors");
    for map in [&out, &spelt] {
        let args = [
            "export",
            s(&module),
            "--format",
            "torch",
            "-o",
            s(&out),
            "--name-map",
            s(map),
        ];
        let (code, _, err) = amoeba(&args);
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("is also the output"), "{err}");
    }
    std::fs::remove_dir(&sub).unwrap();
    let copy = common::copy_fixture_module(&dir.path().join("copy"));
    let inside = copy.join("variables/variables.index");
    let args = [
        "export",
        s(&copy),
        "--format",
        "torch",
        "-o",
        s(&out),
        "--name-map",
        s(&inside),
    ];
    let (code, _, err) = amoeba(&args);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("inside the input"), "{err}");
    assert!(!out.exists() && !onnx.exists() && !map.exists());
    std::fs::remove_dir_all(dir.path().join("copy")).unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "no temporary files left: {left:?}");
}
