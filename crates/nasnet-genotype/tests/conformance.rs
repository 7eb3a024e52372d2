//! Extraction from real modules exported by the official code: the shared conformance module
//! (AmoebaNet-A, num_cells 6, F 16) and the project's fixtures when present.

use nasnet_genotype::{extract, known_genotype, CellKind, Extraction, Operation, PrevAdjust};
use std::path::{Path, PathBuf};
use tf_proto::tensorflow::attr_value::Value;
use tf_proto::tensorflow::{MetaGraphDef, SavedModel};
use tf_proto::Message;

/// The official conformance module's graph (`fixtures/conformance/`, TensorFlow's export).
fn conformance_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/conformance/amoebanet_a_n6_f16/saved_model.pb")
}

fn inference_graph(path: &Path) -> Option<MetaGraphDef> {
    let bytes = std::fs::read(path).ok()?;
    let model = SavedModel::decode(bytes.as_slice()).expect("saved_model.pb decodes");
    model
        .meta_graphs
        .into_iter()
        .find(|m| m.meta_info_def.as_ref().is_none_or(|i| i.tags.is_empty()))
}

/// Variable names and shapes from the graph's variable nodes (the checkpoint has the same keys).
fn graph_variables(graph: &MetaGraphDef) -> Vec<(String, Vec<usize>)> {
    let nodes = &graph.graph_def.as_ref().expect("graph").node;
    nodes
        .iter()
        .filter(|n| n.op == "VarHandleOp" || n.op == "VariableV2")
        .map(|n| {
            let shape = match n.attr.get("shape").and_then(|a| a.value.as_ref()) {
                Some(Value::Shape(s)) => s.dim.iter().map(|d| d.size as usize).collect(),
                _ => vec![],
            };
            (n.name.clone(), shape)
        })
        .collect()
}

fn conformance() -> Option<(MetaGraphDef, Extraction)> {
    let path = conformance_path();
    let graph = inference_graph(&path);
    assert!(
        graph.is_some(),
        "conformance module missing at {}",
        path.display()
    );
    let graph = graph?;
    let vars = graph_variables(&graph);
    let extraction = extract(&graph, &vars, None).expect("extraction succeeds");
    Some((graph, extraction))
}

#[test]
fn conformance_module_is_amoebanet_a_exactly() {
    let Some((_, ex)) = conformance() else { return };
    let g = &ex.spec.genotype;
    let a = known_genotype("amoeba_net_a").unwrap();
    assert_eq!(g.name.as_deref(), Some("amoeba_net_a"));
    assert_eq!(
        g.normal.operation_names(),
        [
            "avg_pool_3x3",
            "max_pool_3x3",
            "separable_3x3_2",
            "none",
            "none",
            "avg_pool_3x3",
            "separable_3x3_2",
            "separable_5x5_2",
            "avg_pool_3x3",
            "separable_3x3_2"
        ]
    );
    assert_eq!(g.normal.hiddenstate_indices, [0, 0, 1, 1, 0, 1, 0, 2, 5, 0]);
    assert_eq!(g.normal.used_hiddenstates, [1, 0, 1, 0, 0, 1, 0]);
    assert_eq!(
        g.reduction.operation_names(),
        [
            "separable_3x3_2",
            "avg_pool_3x3",
            "max_pool_3x3",
            "separable_7x7_2",
            "max_pool_3x3",
            "max_pool_3x3",
            "separable_3x3_2",
            "1x7_7x1",
            "avg_pool_3x3",
            "separable_7x7_2"
        ]
    );
    assert_eq!(
        g.reduction.hiddenstate_indices,
        [1, 0, 0, 2, 1, 0, 4, 0, 1, 0]
    );
    assert_eq!(g.reduction.used_hiddenstates, [1, 1, 0, 0, 0, 0, 0]);
    assert_eq!((&g.normal, &g.reduction), (&a.normal, &a.reduction));
    assert!(ex.disagreements.is_empty(), "{:#?}", ex.disagreements);
}

#[test]
fn conformance_network_structure() {
    let Some((_, ex)) = conformance() else { return };
    let s = &ex.spec;
    assert_eq!(
        (s.num_cells, s.filters, s.stem_filters, s.num_stem_cells),
        (6, 16, 32, 2)
    );
    assert_eq!(s.reduction_indices, vec![2, 4]);
    assert_eq!(
        s.reduction_indices,
        vec![s.num_cells / 3, 2 * s.num_cells / 3]
    );
    assert_eq!(s.image_size, [331, 331]);
    assert_eq!(s.num_classes, Some(1001));
    assert_eq!(s.num_features, 256);
    assert_eq!(s.filter_scaling_rate, 2);
    assert_eq!((s.input_scale, s.input_offset), (2.0, -1.0));
    let scopes: Vec<&str> = s.cells.iter().map(|c| c.scope.as_str()).collect();
    assert_eq!(
        scopes,
        [
            "cell_stem_0",
            "cell_stem_1",
            "cell_0",
            "cell_1",
            "reduction_cell_0",
            "cell_2",
            "cell_3",
            "reduction_cell_1",
            "cell_4",
            "cell_5"
        ]
    );
    let c = |i: usize| &s.cells[i];
    assert_eq!(
        (c(0).output_hw, c(0).output_channels, c(0).prev_adjust),
        ([83, 83], 20, PrevAdjust::UseInput)
    );
    assert_eq!(
        (c(1).output_hw, c(1).output_channels, c(1).prev_adjust),
        ([42, 42], 40, PrevAdjust::FactorizedReduction)
    );
    assert_eq!(
        (c(2).prev_adjust, c(3).prev_adjust, c(4).prev_adjust),
        (
            PrevAdjust::FactorizedReduction,
            PrevAdjust::Prev1x1,
            PrevAdjust::Prev1x1
        )
    );
    assert_eq!(
        (c(4).kind, c(4).output_hw, c(4).output_channels),
        (CellKind::Reduction, [21, 21], 160)
    );
    assert_eq!((c(9).output_hw, c(9).output_channels), ([11, 11], 256));
}

#[test]
fn conformance_epsilon_is_the_graphs() {
    let Some((graph, ex)) = conformance() else {
        return;
    };
    // The attr as stored: f32 1.001e-5, i.e. 1.0009999641624745e-05 as f64.
    let stored = graph
        .graph_def
        .as_ref()
        .unwrap()
        .node
        .iter()
        .find(|n| n.op.starts_with("FusedBatchNorm"))
        .and_then(|n| match n.attr.get("epsilon")?.value {
            Some(Value::F(f)) => Some(f),
            _ => None,
        })
        .unwrap();
    assert_eq!(ex.spec.batch_norm_epsilon.to_bits(), stored.to_bits());
    assert_eq!(ex.spec.batch_norm_epsilon as f64, 1.0009999641624745e-05);
}

#[test]
fn conformance_json_roundtrip() {
    let Some((_, ex)) = conformance() else { return };
    let json = ex.spec.to_json();
    let back = nasnet_genotype::NetworkSpec::from_json(&json).unwrap();
    assert_eq!(back, ex.spec);
    assert_eq!(
        back.batch_norm_epsilon.to_bits(),
        ex.spec.batch_norm_epsilon.to_bits()
    );
}

#[test]
fn module_prefix_is_handled() {
    let Some((mut graph, ex)) = conformance() else {
        return;
    };
    let vars = graph_variables(&graph);
    for node in &mut graph.graph_def.as_mut().unwrap().node {
        node.name = format!("module/{}", node.name);
        for input in &mut node.input {
            let (ctl, name) = input
                .strip_prefix('^')
                .map_or(("", input.as_str()), |n| ("^", n));
            *input = format!("{ctl}module/{name}");
        }
    }
    let again = extract(&graph, &vars, Some([331, 331])).unwrap();
    assert_eq!(again.spec, ex.spec);
}

#[test]
fn graph_wins_over_names_and_reports() {
    let Some((graph, _)) = conformance() else {
        return;
    };
    // Rename cell_1's comb_iter_3/right separable_5x5 variables to 3x3: names now disagree.
    let vars: Vec<_> = graph_variables(&graph)
        .into_iter()
        .map(|(n, mut s)| {
            if n.starts_with("cell_1/comb_iter_3/right/separable_5x5")
                && n.ends_with("depthwise_weights")
            {
                s[0] = 3;
                s[1] = 3;
            }
            (
                n.replace(
                    "cell_1/comb_iter_3/right/separable_5x5",
                    "cell_1/comb_iter_3/right/separable_3x3",
                ),
                s,
            )
        })
        .collect();
    let ex = extract(&graph, &vars, None).unwrap();
    assert_eq!(
        ex.spec.genotype.normal.operations[7],
        Operation::Separable {
            kernel: 5,
            repeats: 2
        }
    );
    assert_eq!(ex.disagreements.len(), 1, "{:?}", ex.disagreements);
    assert!(
        ex.disagreements[0].contains("cell_1/comb_iter_3/right"),
        "{}",
        ex.disagreements[0]
    );
}

#[test]
fn inconsistent_cells_are_an_error_naming_the_scope() {
    let Some((mut graph, _)) = conformance() else {
        return;
    };
    let vars = graph_variables(&graph);
    // Turn cell_3's comb_iter_0/left avg pool into a max pool.
    for node in &mut graph.graph_def.as_mut().unwrap().node {
        if node.name == "cell_3/comb_iter_0/left/AvgPool2D/AvgPool" {
            node.op = "MaxPool".to_string();
        }
    }
    let err = extract(&graph, &vars, None).unwrap_err().to_string();
    assert!(
        err.contains("cell_3") && err.contains("comb_iter_0/left"),
        "{err}"
    );
}

/// Every `saved_model.pb` under the project's fixtures: extraction succeeds, and a module whose
/// directory name says which genotype it is gets recognised as that one.
#[test]
fn fixtures_extract_and_recognise() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let mut found = Vec::new();
    visit(&root, &mut found);
    for path in found {
        let Some(graph) = inference_graph(&path) else {
            continue;
        };
        let vars = graph_variables(&graph);
        let ex = extract(&graph, &vars, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let dir = path
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        for (tag, name) in [
            ("amoebanet_a", "amoeba_net_a"),
            ("amoebanet_b", "amoeba_net_b"),
            ("amoebanet_c", "amoeba_net_c"),
            ("amoebanet_d", "amoeba_net_d"),
            ("nasnet_a", "nasnet_a"),
        ] {
            if dir.contains(tag) || dir.contains(name) {
                assert_eq!(
                    ex.spec.genotype.name.as_deref(),
                    Some(name),
                    "{}",
                    path.display()
                );
            }
        }
        eprintln!(
            "{}: {:?} {:?}",
            path.display(),
            ex.spec.genotype.name,
            ex.disagreements
        );
    }
}

fn visit(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            visit(&path, out);
        } else if path.file_name().is_some_and(|n| n == "saved_model.pb") {
            out.push(path);
        }
    }
}

#[test]
fn image_size_without_attachment_comes_from_the_signature_or_placeholder() {
    // Modules exported before tensorflow_hub had `image_module_info` carry no attachment.
    let (mut graph, _) = conformance().expect("conformance module");
    graph.collection_def.remove("hub_module_attachments");
    let vars = graph_variables(&graph);
    let extraction = extract(&graph, &vars, None).expect("extraction succeeds");
    assert_eq!(extraction.spec.image_size, [331, 331]);
    // Nor signature shapes (TF 1.12-era exports store unknown rank): the placeholder remains.
    for sig in graph.signature_def.values_mut() {
        for info in sig.inputs.values_mut() {
            info.tensor_shape = None;
        }
    }
    let extraction = extract(&graph, &vars, None).expect("extraction succeeds");
    assert_eq!(extraction.spec.image_size, [331, 331]);
}
