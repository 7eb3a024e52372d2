//! Every module in the project's `fixtures/manifest.json` (made by TensorFlow with the official
//! code): the extracted network must be what the manifest says it built, with the checkpoint's
//! own variable listing (TensorFlow's, `fixtures/tf-read/modules.<name>.variables.tsv`).

use nasnet_genotype::{extract, known_genotype};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tf_proto::tensorflow::{MetaGraphDef, SavedModel};
use tf_proto::Message;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn inference_graph(path: &Path) -> MetaGraphDef {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let model = SavedModel::decode(bytes.as_slice()).unwrap();
    model
        .meta_graphs
        .into_iter()
        .find(|m| m.meta_info_def.as_ref().is_none_or(|i| i.tags.is_empty()))
        .expect("a graph with tags {}")
}

/// TensorFlow's listing: `name dtype shape(comma-separated) nbytes sha256`.
fn listing(path: &Path) -> Vec<(String, Vec<usize>)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let shape = if cols[2].is_empty() {
                vec![]
            } else {
                cols[2].split(',').map(|d| d.parse().unwrap()).collect()
            };
            (cols[0].to_string(), shape)
        })
        .collect()
}

#[test]
fn every_manifest_fixture_extracts_as_built() {
    let manifest = std::fs::read_to_string(fixtures().join("manifest.json"))
        .expect("fixtures/manifest.json is committed");
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    let list = manifest["fixtures"].as_array().expect("fixtures array");
    assert!(!list.is_empty());
    for f in list {
        let name = f["name"].as_str().unwrap();
        let graph = inference_graph(
            &fixtures()
                .join(f["module"].as_str().unwrap())
                .join("saved_model.pb"),
        );
        let vars = listing(&fixtures().join(format!("tf-read/modules.{name}.variables.tsv")));
        let ex = extract(&graph, &vars, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let s = &ex.spec;
        assert!(
            ex.disagreements.is_empty(),
            "{name}: {:?}",
            ex.disagreements
        );
        let genotype = f["genotype"].as_str().unwrap();
        assert_eq!(s.genotype.name.as_deref(), Some(genotype), "{name}");
        let known = known_genotype(genotype).unwrap();
        assert_eq!(
            (&s.genotype.normal, &s.genotype.reduction),
            (&known.normal, &known.reduction),
            "{name}"
        );
        assert_eq!(
            s.num_cells as u64,
            f["num_cells"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(s.filters as u64, f["filters"].as_u64().unwrap(), "{name}");
        let size = f["image_size"].as_u64().unwrap() as usize;
        assert_eq!(s.image_size, [size, size], "{name}");
        let classes = f["num_classes"].as_u64().unwrap() as usize;
        assert_eq!(s.num_classes, (classes > 0).then_some(classes), "{name}");
        let reductions: Vec<usize> = f["reduction_indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(s.reduction_indices, reductions, "{name}");
        let cells: Vec<&str> = f["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let scopes: Vec<&str> = s.cells.iter().map(|c| c.scope.as_str()).collect();
        assert_eq!(scopes, cells, "{name}");
        // AmoebaNet's 1.001e-5 unless the manifest says (NASNet-A: 1e-3), as float32.
        let epsilon = f["batch_norm_epsilon"].as_f64().unwrap_or(1.001e-5) as f32;
        assert_eq!(s.batch_norm_epsilon, epsilon, "{name}");
        eprintln!(
            "{name}: {genotype}, {} cells, features {}",
            s.cells.len(),
            s.num_features
        );
    }
}

#[test]
fn auxiliary_head_variables_are_ignored_and_said_once() {
    // TF-slim's training-only aux head (`aux_7/aux_logits/...`), added to a real listing.
    let name = "nasnet_a_mobile_n6_f8";
    let graph = inference_graph(&fixtures().join(format!("modules/{name}/saved_model.pb")));
    let mut vars = listing(&fixtures().join(format!("tf-read/modules.{name}.variables.tsv")));
    let plain = extract(&graph, &vars, None).unwrap();
    assert!(plain.notes.is_empty(), "{:?}", plain.notes);
    vars.push(("aux_7/aux_logits/proj/weights".into(), vec![1, 1, 48, 128]));
    vars.push(("aux_7/aux_logits/FC/weights".into(), vec![768, 1001]));
    let with_aux = extract(&graph, &vars, None).unwrap();
    assert_eq!(with_aux.spec, plain.spec, "the network is the same");
    assert_eq!(with_aux.notes.len(), 1, "{:?}", with_aux.notes);
    assert!(
        with_aux.notes[0].starts_with("2 variables of the training-only auxiliary head (aux_7/"),
        "{:?}",
        with_aux.notes
    );
}

/// PNASNet-5 from names alone (a converted file without a graph): its stride-2 cells are
/// `cell_K` whose width grows, and the plan equals the one extracted with the graph.
#[test]
fn pnasnet_from_variables_alone_equals_the_graph_extraction() {
    let name = "pnasnet_5_large_n6_f16";
    let graph = inference_graph(&fixtures().join(format!("modules/{name}/saved_model.pb")));
    let vars = listing(&fixtures().join(format!("tf-read/modules.{name}.variables.tsv")));
    let with_graph = extract(&graph, &vars, None).unwrap().spec;
    let assumptions = nasnet_genotype::Assumptions {
        genotype: known_genotype("pnasnet_5").unwrap(),
        image_size: [331, 331],
        batch_norm_epsilon: 1e-3,
        input_scale: 2.0,
        input_offset: -1.0,
    };
    let names_only = nasnet_genotype::from_variables(&vars, &assumptions).unwrap();
    assert!(
        names_only.disagreements.is_empty(),
        "{:?}",
        names_only.disagreements
    );
    assert_eq!(names_only.spec, with_graph);
    let strided: Vec<&str> = with_graph
        .cells
        .iter()
        .filter(|c| c.stride == 2)
        .map(|c| c.scope.as_str())
        .collect();
    assert_eq!(strided, ["cell_stem_0", "cell_stem_1", "cell_2", "cell_4"]);
    assert_eq!(
        (with_graph.num_cells, &with_graph.reduction_indices[..]),
        (6, &[2, 4][..])
    );
}
