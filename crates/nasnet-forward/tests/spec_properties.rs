//! Property tests of the contract between `NetworkSpec::validate` and the forward pass: every
//! description validation accepts builds and runs (random valid descriptions), and a
//! description edited at random is either refused or builds and runs, never a panic.
//!
//! Weights are fabricated to fit whatever the loader asks for (see [`Fabricated`]), so the
//! forward pass is exercised on every description, not only those with a real module.

use nasnet_forward::{ForwardError, Network, Tensor, WeightSource};
use nasnet_genotype::layout::{build_layout, CellPlan};
use nasnet_genotype::{known_genotype, known_names, CellKind, Genotype, NetworkSpec, Operation};
use proptest::prelude::*;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;

/// Weights of any name: `shape` answers with the shape last asked for (a placeholder `[0]`
/// for a name never asked for, which the loader refuses with the shape it expected). The
/// optional bottleneck convolutions are absent. Values are deterministic per name; batch
/// norm variances and scales stay positive.
#[derive(Default)]
struct Fabricated {
    shapes: RefCell<HashMap<String, Vec<usize>>>,
}

impl WeightSource for Fabricated {
    fn source_name(&self) -> String {
        "fabricated weights".into()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        if ["pre_1x1", "post_1x1", "pre_bn", "post_bn"]
            .iter()
            .any(|s| name.contains(s))
        {
            return None;
        }
        Some(self.shapes.borrow().get(name).cloned().unwrap_or(vec![0]))
    }

    fn values(&self, name: &str) -> Result<Vec<f32>, ForwardError> {
        let shapes = self.shapes.borrow();
        let shape = shapes
            .get(name)
            .ok_or_else(|| ForwardError::MissingWeight {
                source_name: self.source_name(),
                name: name.into(),
                why: "never asked for its shape".into(),
            })?;
        let len: usize = shape.iter().product();
        let fan_in = shape[..shape.len().saturating_sub(1)]
            .iter()
            .product::<usize>()
            .max(1);
        let mut state = name.bytes().fold(0x9e37_79b9_7f4a_7c15u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let positive = name.ends_with("moving_variance") || name.ends_with("gamma");
        let scale = (1.0 / fan_in as f32).sqrt();
        Ok((0..len)
            .map(|_| {
                if positive {
                    0.5 + next()
                } else {
                    (next() - 0.5) * 2.0 * scale
                }
            })
            .collect())
    }
}

/// At most this many rounds of asking the loader which shapes it wants.
const DISCOVERY_ROUNDS: usize = 5000;

/// Loads `spec` with weights fabricated to the shapes the loader expects: each round
/// records the shape of the first variable the loader finds wrong, and loads again.
fn load_fabricated(spec: &NetworkSpec) -> Result<Network, ForwardError> {
    let weights = Fabricated::default();
    for _ in 0..DISCOVERY_ROUNDS {
        match Network::load(spec, &weights) {
            Err(ForwardError::WeightShape { name, expected, .. }) => {
                let previous = weights
                    .shapes
                    .borrow_mut()
                    .insert(name.clone(), expected.clone());
                assert_ne!(
                    previous,
                    Some(expected),
                    "{name}: asked for one shape twice"
                );
            }
            other => return other,
        }
    }
    panic!("the loader still wanted new shapes after {DISCOVERY_ROUNDS} rounds");
}

/// A deterministic image in [0, 1].
fn image(size: [usize; 2], seed: u64) -> Tensor {
    let len = size[0] * size[1] * 3;
    let data = (0..len as u64)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 999.0)
        .collect();
    Tensor::from_vec(data, [1, size[0], size[1], 3]).unwrap()
}

/// Runs one image through `network` and checks the outputs' sizes and values.
fn run_once(network: &Network, seed: u64) -> Result<(), TestCaseError> {
    let spec = network.spec();
    let out = network
        .forward(&image(spec.image_size, seed))
        .map_err(|e| TestCaseError::fail(format!("forward refused a loaded network: {e}")))?;
    prop_assert_eq!(out.features.len(), spec.num_features);
    prop_assert!(out.features.iter().all(|v| v.is_finite()));
    match (&out.logits, spec.num_classes) {
        (Some(l), Some(c)) => prop_assert!(l.len() == c && l.iter().all(|v| v.is_finite())),
        (None, None) => {}
        other => prop_assert!(false, "logits {:?}", other),
    }
    Ok(())
}

/// An operation of the same kind with other valid kernel sizes.
fn rekernel(op: Operation, pick: u64) -> Operation {
    let k = |min: usize| min + (pick % (8 - min as u64)) as usize;
    match op {
        Operation::Separable { .. } => Operation::Separable {
            kernel: k(1),
            repeats: 1 + (pick / 7 % 3) as usize,
        },
        Operation::AvgPool { .. } => Operation::AvgPool { kernel: k(1) },
        Operation::MaxPool { .. } => Operation::MaxPool { kernel: k(1) },
        Operation::Factorized { .. } => Operation::Factorized { kernel: k(1) },
        Operation::Conv { .. } => Operation::Conv {
            kernel: k(2),
            dilation: 1,
        },
        other => other,
    }
}

/// What a random valid description is made of.
#[derive(Debug, Clone)]
struct Recipe {
    genotype: usize,
    kernels: Vec<u64>,
    stem_cells: usize,
    normal_cells: usize,
    reductions: Vec<usize>,
    f: usize,
    stem_filters: usize,
    image: [usize; 2],
    classes: Option<usize>,
    /// NASNet-A large's wiring: the normal cell after a reduction cell takes as prev_layer
    /// the output before the reduction cell's input.
    skip_reduction_layer_input: bool,
}

fn recipe() -> impl Strategy<Value = Recipe> {
    (
        0..known_names().len(),
        proptest::collection::vec(any::<u64>(), 20),
        0usize..=2,
        1usize..=3,
        proptest::collection::btree_set(1usize..3, 0..=2),
        prop_oneof![Just(2usize), Just(4)],
        prop_oneof![Just(2usize), Just(3), Just(4)],
        (32usize..=48, 32usize..=48),
        proptest::option::of(1usize..=5),
        any::<bool>(),
    )
        .prop_map(
            |(
                genotype,
                kernels,
                stem_cells,
                normal_cells,
                reductions,
                f,
                stem_filters,
                (h, w),
                classes,
                skip_reduction_layer_input,
            )| {
                Recipe {
                    genotype,
                    kernels,
                    stem_cells,
                    normal_cells,
                    reductions: reductions
                        .into_iter()
                        .filter(|&r| r < normal_cells)
                        .collect(),
                    f,
                    stem_filters,
                    image: [h, w],
                    classes,
                    skip_reduction_layer_input,
                }
            },
        )
}

/// The cells of a recipe as the official code orders them (stem widths even, at least 2).
fn plan(r: &Recipe) -> Vec<CellPlan> {
    let cell = |scope: String, kind, filters| CellPlan {
        scope,
        kind,
        filters,
        prev: None,
    };
    let mut plan: Vec<CellPlan> = (0..r.stem_cells)
        .map(|i| cell(format!("cell_stem_{i}"), CellKind::Stem, 2 * (i + 1)))
        .collect();
    let mut width = r.f;
    for i in 0..r.normal_cells {
        if let Some(k) = r.reductions.iter().position(|&p| p == i) {
            width *= 2;
            plan.push(cell(
                format!("reduction_cell_{k}"),
                CellKind::Reduction,
                width,
            ));
        }
        let mut normal = cell(format!("cell_{i}"), CellKind::Normal, width);
        let after_reduction = plan.last().is_some_and(|c| c.kind == CellKind::Reduction);
        if r.skip_reduction_layer_input && after_reduction {
            // This cell's output index is plan.len() + 1; the reduction's input is
            // plan.len() - 1, and the output before it plan.len() - 2.
            normal.prev = plan.len().checked_sub(2);
        }
        plan.push(normal);
    }
    plan
}

fn genotype(r: &Recipe) -> Genotype {
    let name = known_names()[r.genotype];
    let mut g = known_genotype(name).unwrap();
    let ops = g
        .normal
        .operations
        .iter_mut()
        .chain(g.reduction.operations.iter_mut());
    for (op, pick) in ops.zip(&r.kernels) {
        *op = rekernel(*op, *pick);
    }
    g.name = nasnet_genotype::recognize(&g).map(str::to_string);
    g
}

/// The description of a recipe, assembled as extraction does.
fn spec(r: &Recipe) -> NetworkSpec {
    let genotype = genotype(r);
    let plan = plan(r);
    let cells = build_layout(&genotype, &plan, r.stem_filters, r.image).unwrap();
    let count = |kind| cells.iter().filter(|c| c.kind == kind).count();
    let mut normal = 0;
    let mut reduction_indices = Vec::new();
    for c in &cells {
        match c.kind {
            CellKind::Normal => normal += 1,
            CellKind::Reduction => reduction_indices.push(normal),
            CellKind::Stem => {}
        }
    }
    NetworkSpec {
        filters: r.f,
        num_cells: count(CellKind::Normal),
        reduction_indices,
        stem_filters: r.stem_filters,
        stem_scope: "stem/conv0".to_string(),
        num_stem_cells: count(CellKind::Stem),
        filter_scaling_rate: 2,
        image_size: r.image,
        num_classes: r.classes,
        num_features: cells.last().unwrap().output_channels,
        batch_norm_epsilon: 1e-3,
        input_scale: 2.0,
        input_offset: -1.0,
        genotype,
        cells,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_valid_description_builds_and_runs(r in recipe(), seed in any::<u64>()) {
        let spec = spec(&r);
        prop_assert!(spec.validate().is_ok(), "{:?}: {}", spec.validate(), spec.to_json());
        let reread = NetworkSpec::from_json(&spec.to_json());
        prop_assert!(reread.as_ref().is_ok_and(|s| *s == spec), "{:?}", reread.err());
        let network = load_fabricated(&spec)
            .map_err(|e| TestCaseError::fail(format!("a valid description did not load: {e}")))?;
        run_once(&network, seed)?;
    }
}

/// One edit of a JSON value, chosen by `pick` among every node of the tree.
#[derive(Debug, Clone)]
struct Edit {
    node: u64,
    how: u64,
}

/// Every node's path, depth first.
fn paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    let children: Vec<(String, &Value)> = match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| (i.to_string(), x))
            .collect(),
        Value::Object(o) => o.iter().map(|(k, x)| (k.clone(), x)).collect(),
        _ => Vec::new(),
    };
    for (key, child) in children {
        at.push(key);
        paths(child, at, out);
        at.pop();
    }
}

fn node_mut<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, key| match v {
        Value::Array(a) => a.get_mut(key.parse::<usize>().ok()?),
        Value::Object(o) => o.get_mut(key),
        _ => None,
    })
}

/// Counts and sizes an attacker would try in place of an integer.
const INTEGERS: [u64; 12] = [0, 1, 2, 3, 5, 7, 8, 64, 4097, 1 << 31, 1 << 32, u64::MAX];

/// Values an attacker would try in place of a float (or, sometimes, of an integer).
const FLOATS: [f64; 9] = [
    0.0,
    -1.0,
    0.5,
    1e38,
    -1e38,
    1e-30,
    300.0,
    4294967296.5,
    -0.0,
];

/// Strings that are other variants of the enums, or junk.
const STRINGS: [&str; 12] = [
    "",
    "stem",
    "normal",
    "reduction",
    "use_input",
    "unchanged",
    "factorized_reduction",
    "prev1x1",
    "avg_pool",
    "separable",
    "conv",
    "cell_0",
];

fn apply(v: &mut Value, edit: &Edit) {
    let mut all = Vec::new();
    paths(v, &mut Vec::new(), &mut all);
    let path = &all[(edit.node % all.len() as u64) as usize];
    let how = edit.how as usize;
    if let Some(node) = node_mut(v, path) {
        edit_node(node, how);
    }
    // Field removal: the parent object loses this key.
    if how % 11 == 10 {
        if let Some((key, parent)) = path.split_last() {
            if let Some(Value::Object(o)) = node_mut(v, parent) {
                o.remove(key);
            }
        }
    }
}

fn edit_node(node: &mut Value, how: usize) {
    match node {
        Value::Number(n) => {
            *node = match (n.as_u64(), how % 6) {
                (Some(x), 0..=4) => {
                    let near = [
                        x.saturating_add(1),
                        x.saturating_mul(2),
                        x.saturating_sub(1),
                    ];
                    let all: Vec<u64> = INTEGERS.iter().copied().chain(near).collect();
                    serde_json::json!(all[how / 6 % all.len()])
                }
                _ => {
                    let x = n.as_f64().unwrap_or(0.0);
                    let all: Vec<f64> = FLOATS.iter().copied().chain([x * 2.0, -x]).collect();
                    serde_json::json!(all[how / 6 % all.len()])
                }
            };
        }
        Value::Array(a) => match how % 5 {
            0 => a.clear(),
            1 => {
                a.pop();
            }
            2 => {
                if let Some(last) = a.last().cloned() {
                    a.push(last);
                }
            }
            3 => {
                let copy = a.clone();
                a.extend(copy);
            }
            _ => a.reverse(),
        },
        Value::String(s) => *s = STRINGS[how % STRINGS.len()].to_string(),
        Value::Null => *node = serde_json::json!(how % 9),
        Value::Bool(b) => *b = !*b,
        Value::Object(_) => {}
    }
}

/// Most activations (values, one image) for which a mutated description is also run, so
/// that the test stays fast; larger ones are only loaded.
const RUN_BUDGET: u64 = 1 << 22;

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_description_is_refused_or_builds_and_runs(
        r in recipe(),
        edits in proptest::collection::vec((any::<u64>(), any::<u64>()).prop_map(|(node, how)| Edit { node, how }), 1..=3),
        seed in any::<u64>(),
    ) {
        let mut json: Value = serde_json::from_str(&spec(&r).to_json()).unwrap();
        for edit in &edits {
            apply(&mut json, edit);
        }
        let Ok(spec) = NetworkSpec::from_json(&json.to_string()) else {
            return Ok(());
        };
        let Ok(network) = load_fabricated(&spec) else {
            return Ok(());
        };
        if spec.activation_elements_per_image().is_some_and(|n| n <= RUN_BUDGET) {
            run_once(&network, seed)?;
        }
    }
}

#[test]
fn cells_of_four_and_six_combinations_build_and_run() {
    // Eight operations per cell once panicked (five combinations were indexed); now the
    // forward pass runs as many as validation accepts.
    for n in [8, 12] {
        let r = Recipe {
            genotype: 0,
            kernels: vec![3; 20],
            stem_cells: 2,
            normal_cells: 2,
            reductions: vec![1],
            f: 4,
            stem_filters: 4,
            image: [40, 40],
            classes: Some(3),
            skip_reduction_layer_input: false,
        };
        let mut spec = spec(&r);
        let mut g = spec.genotype.clone();
        for cell in [&mut g.normal, &mut g.reduction] {
            cell.operations.resize(n, Operation::AvgPool { kernel: 3 });
            cell.hiddenstate_indices.resize(n, 0);
            cell.used_hiddenstates.resize(n / 2 + 2, 0);
        }
        g.name = None;
        let cells = build_layout(&g, &plan(&r), r.stem_filters, r.image).unwrap();
        spec.num_features = cells.last().unwrap().output_channels;
        spec.genotype = g;
        spec.cells = cells;
        spec.validate().unwrap();
        let network = load_fabricated(&spec).unwrap();
        run_once(&network, 7).unwrap();
    }
}
