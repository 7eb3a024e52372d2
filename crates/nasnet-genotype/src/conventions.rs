//! The names TensorFlow gives a NASNet-family module's variables and nodes, as data.
//!
//! Every TF scope and variable name the project reads or writes (stem, cell scopes, the parts
//! of a cell, each operation's variables, the head, the hub format's own names) comes from
//! `data/conventions.json`, embedded here; what differs between the code lineages (AmoebaNet's
//! tensorflow/tpu code, TF-slim's NASNet-A and PNASNet-5) is one entry of `families` there.
//! Adding a family member that names things differently is a change to that file.
//!
//! The unit tests parse the embedded file, so a broken one cannot ship; should it ever fail
//! to parse, every name is empty and every module is refused as missing its variables
//! (never a panic).

use crate::spec::CellKind;
use serde::Deserialize;
use std::sync::OnceLock;

const CONVENTIONS_JSON: &str = include_str!("../data/conventions.json");

/// The data file's schema this code reads.
const SCHEMA: u32 = 1;

/// How a family places its stride-2 cells between the normal ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReductionCells {
    /// `reduction_cell_K` scopes of their own, before the normal cells at the reduction
    /// positions (AmoebaNet, NASNet-A); the stem cells are reduction cells.
    #[default]
    Separate,
    /// One cell type numbered `cell_K` throughout, run with stride 2 at the reduction
    /// positions and as the stem cells (PNASNet-5).
    StridedNormal,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub repo: String,
    pub file: String,
}

/// What differs between the code lineages. The code reads `stem_scope` (which scopes can be
/// a stem); `reduction_cells` and `batch_norm_epsilon` record the lineage's facts for readers
/// and tests: a module's own graph gives its epsilon, and a genotype with one cell type is
/// what makes `cell_K` cells stride-2 ones.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Family {
    pub name: String,
    pub source: Source,
    /// Variable scope of the stem convolution; its batch norm is this plus `stem.bn_suffix`.
    pub stem_scope: String,
    pub reduction_cells: ReductionCells,
    /// The arg scopes' batch-norm epsilon (descriptive: extraction reads the graph's).
    pub batch_norm_epsilon: f64,
    /// How the family's hub modules train (their `{"train"}` graph): what the PyTorch export
    /// writes as `amoeba.training` for a fine-tuning model.
    pub training: Training,
}

/// How path dropout's keep probability varies through the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropPathSchedule {
    /// The same keep probability after every operation (tensorflow/tpu AmoebaNet, burn-in 0).
    #[default]
    Constant,
    /// Scaled by the cell's place in the network (TF-slim's drop path v3, at its last step).
    LayerScaled,
}

/// One configuration's path-dropout keep probability, told apart by the stem's width.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DropPathKeep {
    pub stem_filters: usize,
    pub keep_prob: f64,
}

/// A family's training hyper-parameters, as its hub modules were exported with them.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Training {
    #[serde(rename = "about")]
    _about: String,
    /// TensorFlow's moving-average decay (PyTorch's momentum is 1 - decay).
    pub batch_norm_decay: f64,
    pub dense_dropout_keep_prob: f64,
    pub drop_path_schedule: DropPathSchedule,
    /// Per configuration (NASNet-A mobile and large differ).
    pub drop_path_keep_prob: Vec<DropPathKeep>,
    /// For a configuration not listed.
    pub default_drop_path_keep_prob: f64,
}

impl Training {
    /// The keep probability of the configuration whose stem convolution has `stem_filters`.
    pub fn drop_path_keep_prob(&self, stem_filters: usize) -> f64 {
        self.drop_path_keep_prob
            .iter()
            .find(|k| k.stem_filters == stem_filters)
            .map_or(self.default_drop_path_keep_prob, |k| k.keep_prob)
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StemNames {
    pub bn_suffix: String,
    /// The op name of the stem convolution under its scope.
    pub conv_op: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CellScopes {
    pub stem: String,
    pub normal: String,
    pub reduction: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CellNames {
    pub input_conv: String,
    pub input_bn: String,
    pub prev_conv: String,
    pub prev_bn: String,
    pub factorized_paths: [String; 2],
    pub factorized_bn: String,
    pub combination: String,
    pub sides: [String; 2],
    pub combine: String,
    pub output: String,
    pub output_concat: String,
    pub output_reduction: String,
    pub output_reduction_conv: String,
    pub output_reduction_bn: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OperationNames {
    pub projection_conv: String,
    pub projection_bn: String,
    pub separable: String,
    pub separable_bn: String,
    pub depthwise_weights: String,
    pub pointwise_weights: String,
    pub bottleneck_in: String,
    pub bottleneck_in_bn: String,
    pub bottleneck_out: String,
    pub bottleneck_out_bn: String,
    pub factorized_row: String,
    pub factorized_row_bn: String,
    pub factorized_column: String,
    pub conv: String,
    pub dilated_conv: String,
    pub conv_bn: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct VariableNames {
    pub conv_weights: String,
    pub bn_gamma: String,
    pub bn_beta: String,
    pub bn_moving_mean: String,
    pub bn_moving_variance: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HeadNames {
    pub scope: String,
    pub fc_weights: String,
    pub fc_biases: String,
    pub aux_head_prefix: String,
}

/// The PyTorch layout export's names.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TorchNames {
    #[serde(rename = "about")]
    _about: String,
    /// TF variable leaf name -> PyTorch's (`weights` -> `weight`, `gamma` -> `weight`, ...).
    pub leaf_names: std::collections::BTreeMap<String, String>,
    /// The int64 counter every `torch.nn.BatchNorm2d` has in its state_dict.
    pub batch_norm_counter: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HubNames {
    pub consumer_prefix: String,
    pub input_placeholder: String,
    pub attachments_collection: String,
    pub image_module_info: String,
    pub default_signature: String,
    pub images_input: String,
}

/// The whole data file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Conventions {
    #[serde(rename = "about")]
    _about: String,
    schema: u32,
    pub families: Vec<Family>,
    pub stem: StemNames,
    pub cell_scopes: CellScopes,
    pub cell: CellNames,
    pub operations: OperationNames,
    pub variables: VariableNames,
    pub head: HeadNames,
    pub hub: HubNames,
    pub torch: TorchNames,
}

/// The embedded `data/conventions.json` as text (the PyTorch export carries it, so that
/// `python/amoeba_torch` reads the same names).
pub fn conventions_json() -> &'static str {
    CONVENTIONS_JSON
}

/// The embedded conventions, parsed once.
pub fn conventions() -> &'static Conventions {
    static ALL: OnceLock<Conventions> = OnceLock::new();
    ALL.get_or_init(|| parse(CONVENTIONS_JSON).unwrap_or_default())
}

fn parse(json: &str) -> Result<Conventions, String> {
    let c: Conventions = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if c.schema != SCHEMA {
        return Err(format!("schema {}, but this code reads {SCHEMA}", c.schema));
    }
    Ok(c)
}

/// `pattern` with each `{key}` replaced by its number.
fn fill(pattern: &str, values: &[(&str, usize)]) -> String {
    values.iter().fold(pattern.to_string(), |s, (key, v)| {
        s.replace(&format!("{{{key}}}"), &v.to_string())
    })
}

/// The numbers of `s` if it is `pattern` filled in, in pattern order (`None` if it is not,
/// or if one key stands for two numbers). A number is 1 to 20 ASCII digits that fit a `usize`:
/// callers cap what they accept, and name what they refuse.
fn unfill(pattern: &str, s: &str) -> Option<Vec<usize>> {
    let mut rest = s;
    let mut numbers: Vec<(&str, usize)> = Vec::new();
    let mut parts = pattern.split('{');
    let first = parts.next()?;
    rest = rest.strip_prefix(first)?;
    for part in parts {
        let (key, literal) = part.split_once('}')?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 20 {
            return None;
        }
        // One spelling per number: `cell_01` is not `cell_1`.
        if digits > 1 && rest.starts_with('0') {
            return None;
        }
        let value: usize = rest[..digits].parse().ok()?;
        if numbers.iter().any(|&(k, v)| k == key && v != value) {
            return None;
        }
        numbers.push((key, value));
        rest = rest[digits..].strip_prefix(literal)?;
    }
    rest.is_empty()
        .then(|| numbers.into_iter().map(|(_, v)| v).collect())
}

/// `scope/name`.
pub fn join(scope: &str, name: &str) -> String {
    format!("{scope}/{name}")
}

impl Conventions {
    /// A pattern for messages: `cell_{k}` -> `cell_K`, `separable_{k}x{k}_{n}` ->
    /// `separable_KxK_N`.
    pub fn display(&self, pattern: &str) -> String {
        ["k", "n", "i", "j"]
            .iter()
            .fold(pattern.to_string(), |s, key| {
                s.replace(&format!("{{{key}}}"), &key.to_uppercase())
            })
    }

    /// The stem scopes of the known families, each once, in data-file order.
    pub fn stem_scopes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for f in &self.families {
            if !out.contains(&f.stem_scope.as_str()) {
                out.push(&f.stem_scope);
            }
        }
        out
    }

    /// The stem convolution's batch-norm scope.
    pub fn stem_bn(&self, stem_scope: &str) -> String {
        format!("{stem_scope}{}", self.stem.bn_suffix)
    }

    /// The scope of cell `index` of `kind` in the given numbering (`cell_stem_0`, `cell_4`,
    /// `reduction_cell_1`).
    pub fn cell_scope(&self, kind: CellKind, index: usize) -> String {
        let pattern = match kind {
            CellKind::Stem => &self.cell_scopes.stem,
            CellKind::Normal => &self.cell_scopes.normal,
            CellKind::Reduction => &self.cell_scopes.reduction,
        };
        fill(pattern, &[("k", index)])
    }

    /// Splits a cell scope into the kind its name says and its number; `None` for any other
    /// name. (A `cell_K` may still be a stride-2 cell: the name alone does not say.)
    pub fn parse_cell_scope(&self, scope: &str) -> Option<(CellKind, usize)> {
        let s = &self.cell_scopes;
        [
            (CellKind::Stem, &s.stem),
            (CellKind::Reduction, &s.reduction),
            (CellKind::Normal, &s.normal),
        ]
        .into_iter()
        .find_map(|(kind, pattern)| match unfill(pattern, scope)?.as_slice() {
            [k] => Some((kind, *k)),
            _ => None,
        })
    }

    /// `comb_iter_<i>` -> i.
    pub fn parse_combination(&self, name: &str) -> Option<usize> {
        unfill(&self.cell.combination, name)?.first().copied()
    }

    /// `separable_<k>x<k>_<n>` -> (k, n).
    pub fn parse_separable(&self, name: &str) -> Option<(usize, usize)> {
        match unfill(&self.operations.separable, name)?.as_slice() {
            [k, _, n] => Some((*k, *n)),
            _ => None,
        }
    }

    /// `1x<k>` -> k, the first convolution of a factorized `1xK_Kx1` (k > 1: `1x1` is not).
    pub fn parse_factorized_row(&self, name: &str) -> Option<usize> {
        let k = *unfill(&self.operations.factorized_row, name)?.first()?;
        (k > 1).then_some(k)
    }

    /// `<k>x<k>` or `dilated_<k>x<k>` -> k (k > 1: `1x1` is not a bottleneck convolution).
    pub fn parse_conv(&self, name: &str) -> Option<usize> {
        let o = &self.operations;
        let k = [&o.conv, &o.dilated_conv]
            .into_iter()
            .find_map(|pattern| unfill(pattern, name)?.first().copied())?;
        (k > 1).then_some(k)
    }

    /// `<cell>/comb_iter_<i/2>/<left|right>`: the scope of operation `i` of a cell.
    pub fn branch(&self, cell_scope: &str, i: usize) -> String {
        join(
            &join(cell_scope, &self.combination(i / 2)),
            &self.cell.sides[i % 2],
        )
    }

    /// `comb_iter_<i>`.
    pub fn combination(&self, i: usize) -> String {
        fill(&self.cell.combination, &[("i", i)])
    }

    /// `<cell>/cell_output/concat`: the node every cell's output is.
    pub fn cell_output_concat(&self, cell_scope: &str) -> String {
        join(
            &join(cell_scope, &self.cell.output),
            &self.cell.output_concat,
        )
    }

    /// `/cell_output/concat`, the suffix of [`Conventions::cell_output_concat`].
    pub fn cell_output_concat_suffix(&self) -> String {
        self.cell_output_concat("")
    }

    /// `<cell>/cell_output/reduction_<j>`: where a concatenated state is brought to size.
    pub fn output_reduction(&self, cell_scope: &str, j: usize) -> String {
        join(
            &join(cell_scope, &self.cell.output),
            &fill(&self.cell.output_reduction, &[("j", j)]),
        )
    }

    /// `<scope>/weights`.
    pub fn weights(&self, scope: &str) -> String {
        join(scope, &self.variables.conv_weights)
    }

    /// The four variables of a batch norm, in the order gamma, beta, mean, variance.
    pub fn bn_variables(&self, bn_scope: &str) -> [String; 4] {
        let v = &self.variables;
        [
            &v.bn_gamma,
            &v.bn_beta,
            &v.bn_moving_mean,
            &v.bn_moving_variance,
        ]
        .map(|name| join(bn_scope, name))
    }

    /// `separable_<k>x<k>_<n>` and its batch norm `bn_sep_<k>x<k>_<n>`.
    pub fn separable(&self, kernel: usize, n: usize) -> (String, String) {
        let o = &self.operations;
        let values = [("k", kernel), ("n", n)];
        (fill(&o.separable, &values), fill(&o.separable_bn, &values))
    }

    /// `1x<k>`, its batch norm, and `<k>x1` (the factorized `1xK_Kx1` convolution).
    pub fn factorized(&self, kernel: usize) -> (String, String, String) {
        let o = &self.operations;
        let k = [("k", kernel)];
        (
            fill(&o.factorized_row, &k),
            fill(&o.factorized_row_bn, &k),
            fill(&o.factorized_column, &k),
        )
    }

    /// `<k>x<k>` (or `dilated_<k>x<k>`): the scope of a bottleneck's plain convolution.
    pub fn conv(&self, kernel: usize, dilated: bool) -> String {
        let o = &self.operations;
        fill(
            if dilated { &o.dilated_conv } else { &o.conv },
            &[("k", kernel)],
        )
    }

    /// The PyTorch name of TF variable `tf_name`: `/` -> `.`, the last part renamed by
    /// `torch.leaf_names`; `None` for a leaf the table does not name.
    pub fn torch_name(&self, tf_name: &str) -> Option<String> {
        let (scope, leaf) = tf_name.rsplit_once('/')?;
        let leaf = self.torch.leaf_names.get(leaf)?;
        Some(format!("{}.{leaf}", scope.replace('/', ".")))
    }

    /// The family whose stem scope is `stem_scope` and whose reduction cells are placed so.
    pub fn family(&self, stem_scope: &str, reduction_cells: ReductionCells) -> Option<&Family> {
        self.families
            .iter()
            .find(|f| f.stem_scope == stem_scope && f.reduction_cells == reduction_cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_names_follow_the_leaf_table() {
        let c = parse(CONVENTIONS_JSON).expect("data/conventions.json");
        let name = |tf: &str| c.torch_name(tf);
        assert_eq!(
            name("cell_0/comb_iter_3/left/separable_3x3_1/depthwise_weights").as_deref(),
            Some("cell_0.comb_iter_3.left.separable_3x3_1.depthwise.weight")
        );
        assert_eq!(
            name("stem/conv0_bn/moving_variance").as_deref(),
            Some("stem.conv0_bn.running_var")
        );
        assert_eq!(
            name("final_layer/FC/biases").as_deref(),
            Some("final_layer.FC.bias")
        );
        assert_eq!(name("global_step"), None);
        assert_eq!(name("cell_0/1x1/kernel"), None);
        // The three families' training facts, and NASNet-A's two configurations.
        let nasnet = c.family("conv0", ReductionCells::Separate).unwrap();
        assert_eq!(nasnet.training.drop_path_keep_prob(32), 1.0);
        assert_eq!(nasnet.training.drop_path_keep_prob(96), 0.7);
        let amoeba = c.family("stem/conv0", ReductionCells::Separate).unwrap();
        assert_eq!(amoeba.training.batch_norm_decay, 0.9);
        assert_eq!(
            amoeba.training.drop_path_schedule,
            DropPathSchedule::Constant
        );
    }

    #[test]
    fn the_embedded_file_parses_and_names_what_the_spec_says() {
        let c = parse(CONVENTIONS_JSON).expect("data/conventions.json");
        assert_eq!(c.stem_scopes(), ["stem/conv0", "conv0"]);
        assert_eq!(c.stem_bn("conv0"), "conv0_bn");
        assert_eq!(c.cell_scope(CellKind::Stem, 1), "cell_stem_1");
        assert_eq!(c.cell_scope(CellKind::Reduction, 0), "reduction_cell_0");
        assert_eq!(c.branch("cell_3", 5), "cell_3/comb_iter_2/right");
        assert_eq!(c.cell_output_concat("cell_3"), "cell_3/cell_output/concat");
        assert_eq!(
            c.output_reduction("cell_3", 1),
            "cell_3/cell_output/reduction_1"
        );
        assert_eq!(
            c.separable(5, 2),
            ("separable_5x5_2".into(), "bn_sep_5x5_2".into())
        );
        assert_eq!(
            c.factorized(7),
            ("1x7".into(), "bn_1x7_7x1".into(), "7x1".into())
        );
        assert_eq!(c.conv(3, true), "dilated_3x3");
        assert_eq!(c.bn_variables("x/bn")[3], "x/bn/moving_variance");
        let pnas = c.family("conv0", ReductionCells::StridedNormal).unwrap();
        assert_eq!(
            (pnas.name.as_str(), pnas.batch_norm_epsilon),
            ("pnasnet", 1e-3)
        );
        assert_eq!(conventions().head.fc_weights, "final_layer/FC/weights");
    }

    #[test]
    fn cell_scopes_parse_exactly() {
        let c = conventions();
        assert_eq!(c.parse_cell_scope("cell_stem_0"), Some((CellKind::Stem, 0)));
        assert_eq!(c.parse_cell_scope("cell_17"), Some((CellKind::Normal, 17)));
        assert_eq!(
            c.parse_cell_scope("reduction_cell_1"),
            Some((CellKind::Reduction, 1))
        );
        for bad in [
            "cell_",
            "cell_x",
            "cell_+1",
            "cell_1a",
            "stem/conv0",
            "xcell_1",
            "cell_stem_",
        ] {
            assert_eq!(c.parse_cell_scope(bad), None, "{bad}");
        }
        assert_eq!(
            c.parse_cell_scope(&format!("cell_{}", "9".repeat(40))),
            None
        );
    }

    #[test]
    fn operation_scopes_parse_by_their_patterns() {
        let c = conventions();
        assert_eq!(c.parse_separable("separable_7x7_2"), Some((7, 2)));
        assert_eq!(c.parse_separable("separable_7x5_2"), None);
        assert_eq!(c.parse_separable("separable_7x7_"), None);
        assert_eq!(c.parse_factorized_row("1x7"), Some(7));
        assert_eq!(c.parse_factorized_row("1x1"), None);
        assert_eq!(c.parse_conv("3x3"), Some(3));
        assert_eq!(c.parse_conv("dilated_3x3"), Some(3));
        assert_eq!(c.parse_conv("1x1"), None);
        assert_eq!(c.parse_conv("3x5"), None);
        assert_eq!(c.parse_combination("comb_iter_4"), Some(4));
        assert_eq!(c.parse_combination("comb_iter_"), None);
        assert_eq!(unfill("a{k}b", "a12b"), Some(vec![12]));
        assert_eq!(unfill("a{k}", "a0"), Some(vec![0]));
        assert_eq!(unfill("a{k}", "a01"), None);
        assert_eq!(c.display("separable_{k}x{k}_{n}"), "separable_KxK_N");
        assert_eq!(unfill("a{k}b", "a12bc"), None);
        assert_eq!(
            unfill("a{k}", &format!("a{}", usize::MAX)),
            Some(vec![usize::MAX])
        );
        assert_eq!(unfill("a{k}", "a99999999999999999999"), None);
        assert_eq!(unfill("a{k}", &format!("a{}", "1".repeat(21))), None);
    }

    #[test]
    fn a_broken_file_is_refused() {
        assert!(parse("{}").is_err());
        let wrong_schema = CONVENTIONS_JSON.replace("\"schema\": 1", "\"schema\": 2");
        assert!(parse(&wrong_schema).unwrap_err().contains("schema 2"));
        let unknown = CONVENTIONS_JSON.replace("\"schema\": 1", "\"schema\": 1, \"extra\": 0");
        assert!(parse(&unknown).is_err());
    }
}
