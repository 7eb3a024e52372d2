//! The N18/F448 layout built from the real modules' variable lists (copied from
//! `shared/spec/variables-n18-f448-*.tsv`) must match amoebanet.md's table.

use nasnet_genotype::{
    from_variables, known_genotype, Assumptions, CellKind, NetworkSpec, PrevAdjust,
};

fn read_tsv(text: &str) -> Vec<(String, Vec<usize>)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut cols = l.split('\t');
            let name = cols.next().unwrap().to_string();
            let shape = cols
                .next()
                .unwrap()
                .split('x')
                .map(|d| d.parse().unwrap())
                .collect();
            (name, shape)
        })
        .collect()
}

fn assumptions() -> Assumptions {
    Assumptions {
        genotype: known_genotype("amoeba_net_a").unwrap(),
        image_size: [331, 331],
        batch_norm_epsilon: 1.001e-5,
        input_scale: 2.0,
        input_offset: -1.0,
    }
}

fn spec(tsv: &str) -> (NetworkSpec, usize) {
    let vars = read_tsv(tsv);
    let ex = from_variables(&vars, &assumptions()).unwrap();
    assert!(ex.disagreements.is_empty(), "{:?}", ex.disagreements);
    (ex.spec, vars.len())
}

#[test]
fn n18_f448_classification_layout_matches_the_table() {
    let (s, count) = spec(include_str!("data/variables-n18-f448-classification.tsv"));
    assert_eq!(count, 1372);
    assert_eq!(
        (
            s.num_cells,
            s.filters,
            s.stem_filters,
            s.num_stem_cells,
            s.filter_scaling_rate
        ),
        (18, 448, 32, 2, 2)
    );
    assert_eq!(s.reduction_indices, vec![6, 12]);
    assert_eq!((s.num_classes, s.num_features), (Some(1001), 7168));
    assert_eq!(s.cells.len(), 22);
    let by = |scope: &str| s.cells.iter().find(|c| c.scope == scope).unwrap();
    let row = |scope: &str| {
        let c = by(scope);
        (c.filters, c.stride, c.output_hw, c.output_channels)
    };
    assert_eq!(row("cell_stem_0"), (112, 2, [83, 83], 560));
    assert_eq!(row("cell_stem_1"), (224, 2, [42, 42], 1120));
    for i in 0..6 {
        assert_eq!(row(&format!("cell_{i}")), (448, 1, [42, 42], 1792));
        assert_eq!(row(&format!("cell_{}", i + 6)), (896, 1, [21, 21], 3584));
        assert_eq!(row(&format!("cell_{}", i + 12)), (1792, 1, [11, 11], 7168));
    }
    assert_eq!(row("reduction_cell_0"), (896, 2, [21, 21], 4480));
    assert_eq!(row("reduction_cell_1"), (1792, 2, [11, 11], 8960));
    assert_eq!(by("cell_stem_0").input_hw, [165, 165]);
    // Network order: reduction cells right before cell_6 and cell_12.
    let order: Vec<&str> = s.cells.iter().map(|c| c.scope.as_str()).collect();
    assert_eq!(order[8], "reduction_cell_0");
    assert_eq!(order[9], "cell_6");
    assert_eq!(order[15], "reduction_cell_1");
    assert_eq!(order[16], "cell_12");
    for (i, c) in s.cells.iter().enumerate() {
        assert_eq!((c.input, c.prev), (i, i.checked_sub(1)));
        assert_eq!(c.stride, if c.kind == CellKind::Normal { 1 } else { 2 });
    }
}

#[test]
fn n18_f448_prev_adjustments_match_the_table() {
    let (s, _) = spec(include_str!("data/variables-n18-f448-classification.tsv"));
    let adjust = |scope: &str| {
        s.cells
            .iter()
            .find(|c| c.scope == scope)
            .unwrap()
            .prev_adjust
    };
    assert_eq!(adjust("cell_stem_0"), PrevAdjust::UseInput);
    for scope in ["cell_stem_1", "cell_0", "cell_6", "cell_12"] {
        assert_eq!(adjust(scope), PrevAdjust::FactorizedReduction, "{scope}");
    }
    for scope in [
        "cell_1",
        "cell_2",
        "cell_5",
        "reduction_cell_0",
        "cell_7",
        "cell_11",
        "reduction_cell_1",
        "cell_13",
        "cell_17",
    ] {
        assert_eq!(adjust(scope), PrevAdjust::Prev1x1, "{scope}");
    }
}

#[test]
fn n18_f448_feature_vector_has_no_classes() {
    let (s, count) = spec(include_str!("data/variables-n18-f448-feature-vector.tsv"));
    assert_eq!(count, 1370);
    assert_eq!((s.num_classes, s.num_features), (None, 7168));
}

#[test]
fn a_wrong_genotype_is_refused_naming_the_branch() {
    let vars = read_tsv(include_str!("data/variables-n18-f448-classification.tsv"));
    let mut a = assumptions();
    a.genotype = known_genotype("nasnet_a").unwrap();
    let err = from_variables(&vars, &a).unwrap_err().to_string();
    assert!(err.contains("comb_iter_0/left"), "{err}");
}

#[test]
fn json_roundtrip_n18() {
    let (s, _) = spec(include_str!("data/variables-n18-f448-classification.tsv"));
    assert_eq!(NetworkSpec::from_json(&s.to_json()).unwrap(), s);
}
