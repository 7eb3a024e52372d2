//! What the checkpoint's variable names and shapes say about the network: which cells exist,
//! their widths and prev-layer adjustments, which operations own variables, the stem and the
//! classifier. Pools and identities own no variables, so this source alone cannot give a
//! whole genotype (see `graph` for that).

use crate::conventions::{conventions, join};
use crate::error::GenotypeError;
use crate::spec::{CellKind, PrevAdjust};
use crate::validate::limits::MAX_OPERATIONS_PER_CELL;
use std::collections::{BTreeMap, BTreeSet};

/// What one `comb_iter_i/{left,right}` scope's variables reveal about its operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarOp {
    /// `separable_KxK_n` for n = 1..repeats.
    Separable { kernel: usize, repeats: usize },
    /// `1xK` and `Kx1`.
    Factorized { kernel: usize },
    /// `KxK` or `dilated_KxK` (the dilation is not in the name).
    Conv { kernel: usize },
    /// Only `1x1` (+ `bn_1`): a pool with a projection, `none` that convolves, or `1x1`.
    Projection,
    /// No variables: a pool or the identity.
    Nothing,
}

/// Variable facts of one cell scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellVars {
    pub scope: String,
    pub kind: CellKind,
    /// The number in the scope name (`cell_7` -> 7).
    pub index: usize,
    /// Width of the hidden states (`1x1/weights` output channels).
    pub filters: usize,
    /// Channels of the cell input `net` (`1x1/weights` input channels).
    pub net_channels: usize,
    /// `FactorizedReduction` (`path1_conv`), `Prev1x1` (`prev_1x1`) or `None` (no variables:
    /// unchanged or the cell input itself).
    pub prev_adjust: Option<PrevAdjust>,
    /// Channels of the `prev_layer` when it is adjusted.
    pub prev_channels: Option<usize>,
    /// One entry per operation: `comb_iter_{i/2}/left` for even i, `right` for odd i.
    pub branches: Vec<VarOp>,
    /// Number of variables in the scope.
    pub count: usize,
}

/// Everything the variable list says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableFacts {
    /// Stem conv scope (`stem/conv0` in AmoebaNet, `conv0` in NASNet) and its output channels.
    pub stem_scope: String,
    pub stem_filters: usize,
    /// Cells sorted by kind (stem, normal, reduction) and index; use [`VariableFacts::order`] for network order.
    pub cells: Vec<CellVars>,
    /// `final_layer/FC/weights` [features, classes], if present.
    pub fc: Option<(usize, usize)>,
}

/// Splits `cell_stem_3` / `cell_3` / `reduction_cell_3` into the kind the name says and the
/// index (see [`Conventions::parse_cell_scope`]).
pub fn parse_cell_scope(scope: &str) -> Option<(CellKind, usize)> {
    conventions().parse_cell_scope(scope)
}

/// Strips a consumer-side `module/` prefix if every name has it.
fn strip_module_prefix(variables: &[(String, Vec<usize>)]) -> Vec<(&str, &[usize])> {
    let prefix = conventions().hub.consumer_prefix.as_str();
    let all_prefixed = !variables.is_empty()
        && !prefix.is_empty()
        && variables.iter().all(|(n, _)| n.starts_with(prefix));
    variables
        .iter()
        .map(|(n, s)| {
            (
                if all_prefixed {
                    &n[prefix.len()..]
                } else {
                    n.as_str()
                },
                s.as_slice(),
            )
        })
        .collect()
}

impl VariableFacts {
    /// Reads the facts from checkpoint names and shapes.
    pub fn from_variables(
        variables: &[(String, Vec<usize>)],
    ) -> Result<VariableFacts, GenotypeError> {
        let vars = strip_module_prefix(variables);
        let shapes: BTreeMap<&str, &[usize]> = vars.iter().copied().collect();
        let mut by_cell: BTreeMap<(CellKind, usize), Vec<&str>> = BTreeMap::new();
        for (name, _) in &vars {
            let scope = name.split('/').next().unwrap_or_default();
            if let Some(key) = parse_cell_scope(scope) {
                by_cell.entry(key).or_default().push(name);
            }
        }
        if by_cell.is_empty() {
            let conv = conventions();
            let c = &conv.cell_scopes;
            return Err(GenotypeError::vars(
                "(all)",
                format!(
                    "no {}, {} or {} variables: not a NASNet-space network",
                    conv.display(&c.stem),
                    conv.display(&c.normal),
                    conv.display(&c.reduction)
                ),
            ));
        }
        let (stem_scope, stem_filters) = stem(&shapes)?;
        let cells = by_cell
            .iter()
            .map(|(&(kind, index), names)| cell_vars(kind, index, names, &shapes))
            .collect::<Result<Vec<_>, _>>()?;
        let fc_weights = conventions().head.fc_weights.as_str();
        let fc = shapes.get(fc_weights).and_then(|s| match s {
            [features, classes] => Some((*features, *classes)),
            _ => None,
        });
        Ok(VariableFacts {
            stem_scope,
            stem_filters,
            cells,
            fc,
        })
    }

    /// Cells in network order as the names imply: stem cells, then normal cells with each
    /// `reduction_cell_k` inserted before the k-th normal cell whose width grows. For a
    /// genotype with one cell type (`one_cell_type`, PNASNet: its cells numbered together, no
    /// `reduction_cell_K`), a `cell_K` whose width grows is itself the stride-2 cell, and is
    /// returned with kind `Reduction`.
    pub fn order(&self, one_cell_type: bool) -> Result<Vec<CellVars>, GenotypeError> {
        let of = |kind| self.cells.iter().filter(move |c| c.kind == kind);
        let strided_normal_cells = one_cell_type && of(CellKind::Reduction).next().is_none();
        let mut order: Vec<CellVars> = of(CellKind::Stem).cloned().collect();
        let mut reductions = of(CellKind::Reduction);
        let mut last_width = None;
        for cell in of(CellKind::Normal) {
            let grows = last_width.is_some_and(|w| cell.filters > w);
            last_width = Some(cell.filters);
            if grows && strided_normal_cells {
                order.push(CellVars {
                    kind: CellKind::Reduction,
                    ..cell.clone()
                });
                continue;
            }
            if grows {
                let r = reductions.next().ok_or_else(|| {
                    GenotypeError::vars(
                        &cell.scope,
                        "width grows but no reduction cell is left to put before it",
                    )
                })?;
                order.push(r.clone());
            }
            order.push(cell.clone());
        }
        if let Some(r) = reductions.next() {
            return Err(GenotypeError::vars(
                &r.scope,
                "no normal cell grows in width after it: cannot place it",
            ));
        }
        Ok(order)
    }

    /// The facts of one cell scope.
    pub fn cell(&self, scope: &str) -> Option<&CellVars> {
        self.cells.iter().find(|c| c.scope == scope)
    }
}

fn stem(shapes: &BTreeMap<&str, &[usize]>) -> Result<(String, usize), GenotypeError> {
    let c = conventions();
    let scopes = c.stem_scopes();
    for scope in &scopes {
        if let Some(shape) = shapes.get(c.weights(scope).as_str()) {
            return match shape {
                [3, 3, _, out] => Ok((scope.to_string(), *out)),
                other => Err(GenotypeError::vars(
                    *scope,
                    format!("stem weights {other:?}, expected [3, 3, in, out]"),
                )),
            };
        }
    }
    let tried: Vec<String> = scopes.iter().map(|s| c.weights(s)).collect();
    Err(GenotypeError::vars(
        scopes.first().copied().unwrap_or("(stem)"),
        format!("no stem conv weights ({})", tried.join(" or ")),
    ))
}

fn cell_vars(
    kind: CellKind,
    index: usize,
    names: &[&str],
    shapes: &BTreeMap<&str, &[usize]>,
) -> Result<CellVars, GenotypeError> {
    let c = conventions();
    let scope = c.cell_scope(kind, index);
    let weights = |sub: &str| c.weights(&join(&scope, sub));
    let shape = |sub: &str| shapes.get(weights(sub).as_str()).copied();
    let input_conv = &c.cell.input_conv;
    let (net_channels, filters) = match shape(input_conv) {
        Some([1, 1, cin, cout]) => (*cin, *cout),
        Some(other) => {
            return Err(GenotypeError::vars(
                &scope,
                format!(
                    "{} is {other:?}, expected [1, 1, in, out]",
                    weights(input_conv)
                ),
            ))
        }
        None => {
            return Err(GenotypeError::vars(
                &scope,
                format!(
                    "no {} (the cell input's 1x1 conv before {})",
                    weights(input_conv),
                    c.cell.input_bn
                ),
            ))
        }
    };
    let (prev_adjust, prev_channels) = if let Some(s) = shape(&c.cell.factorized_paths[0]) {
        (Some(PrevAdjust::FactorizedReduction), s.get(2).copied())
    } else if let Some(s) = shape(&c.cell.prev_conv) {
        (Some(PrevAdjust::Prev1x1), s.get(2).copied())
    } else {
        (None, None)
    };
    let branches = branch_ops(&scope, names, shapes)?;
    Ok(CellVars {
        scope,
        kind,
        index,
        filters,
        net_channels,
        prev_adjust,
        prev_channels,
        branches,
        count: names.len(),
    })
}

/// The `VarOp` of each `comb_iter_i/{left,right}`; as many combinations as the names show.
fn branch_ops(
    scope: &str,
    names: &[&str],
    shapes: &BTreeMap<&str, &[usize]>,
) -> Result<Vec<VarOp>, GenotypeError> {
    let c = conventions();
    let mut subs: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
    let mut combinations = 0;
    for name in names {
        let parts: Vec<&str> = name.split('/').collect();
        let Some(iter) = parts.get(1).and_then(|p| c.parse_combination(p)) else {
            continue;
        };
        let Some(side) = parts
            .get(2)
            .and_then(|p| c.cell.sides.iter().position(|s| s == p))
        else {
            return Err(GenotypeError::vars(
                *name,
                format!(
                    "{} scope without {}/{}",
                    c.combination(iter),
                    c.cell.sides[0],
                    c.cell.sides[1]
                ),
            ));
        };
        // The index comes from a name: cap it before it sizes anything.
        if iter >= MAX_OPERATIONS_PER_CELL / 2 {
            return Err(GenotypeError::vars(
                *name,
                format!(
                    "{}: a cell has at most {} combinations (the cap)",
                    c.combination(iter),
                    MAX_OPERATIONS_PER_CELL / 2
                ),
            ));
        }
        combinations = combinations.max(iter + 1);
        if let Some(sub) = parts.get(3) {
            subs.entry(2 * iter + side).or_default().insert(sub);
        }
    }
    // Ops without variables leave no trace; the official cells have five combinations.
    let n = 2 * combinations.max(5);
    (0..n)
        .map(|i| var_op(&c.branch(scope, i), subs.get(&i), shapes))
        .collect()
}

fn var_op(
    branch: &str,
    subs: Option<&BTreeSet<&str>>,
    shapes: &BTreeMap<&str, &[usize]>,
) -> Result<VarOp, GenotypeError> {
    let Some(subs) = subs else {
        return Ok(VarOp::Nothing);
    };
    let c = conventions();
    let mut separable = None;
    let separable_prefix = c.operations.separable.split('{').next().unwrap_or_default();
    for sub in subs {
        if !separable_prefix.is_empty() && sub.starts_with(separable_prefix) {
            let Some((kernel, n)) = c.parse_separable(sub) else {
                return Err(GenotypeError::vars(
                    branch,
                    format!(
                        "bad separable scope {sub} (expected {})",
                        c.display(&c.operations.separable)
                    ),
                ));
            };
            let depthwise_name = join(&join(branch, sub), &c.operations.depthwise_weights);
            let depthwise = shapes.get(depthwise_name.as_str());
            if depthwise.is_some_and(|s| s.first() != Some(&kernel)) {
                return Err(GenotypeError::vars(
                    branch,
                    format!(
                        "{depthwise_name} {depthwise:?} do not match the scope's kernel {kernel}"
                    ),
                ));
            }
            let (_, reps) = separable.unwrap_or((kernel, 0));
            separable = Some((kernel, reps.max(n)));
        }
    }
    if let Some((kernel, repeats)) = separable {
        return Ok(VarOp::Separable { kernel, repeats });
    }
    let row = subs.iter().find_map(|s| c.parse_factorized_row(s));
    if let Some(k) = row {
        if subs.contains(c.factorized(k).2.as_str()) {
            return Ok(VarOp::Factorized { kernel: k });
        }
    }
    if let Some(kernel) = subs.iter().find_map(|s| c.parse_conv(s)) {
        return Ok(VarOp::Conv { kernel });
    }
    if subs.contains(c.operations.projection_conv.as_str()) {
        return Ok(VarOp::Projection);
    }
    Err(GenotypeError::vars(
        branch,
        format!("variable scopes {subs:?} match no NASNet-space operation"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_combination_index_beyond_the_cap_is_refused_before_it_sizes_anything() {
        let vars = |iter: &str| {
            vec![
                ("stem/conv0/weights".to_string(), vec![3, 3, 3, 8]),
                ("cell_0/1x1/weights".to_string(), vec![1, 1, 8, 8]),
                (
                    format!("cell_0/comb_iter_{iter}/left/1x1/weights"),
                    vec![1, 1, 8, 8],
                ),
            ]
        };
        for iter in ["16", "99999999999", &usize::MAX.to_string()] {
            let err = VariableFacts::from_variables(&vars(iter))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("comb_iter_{iter}"))
                    && err.contains("at most 16 combinations (the cap)"),
                "{err}"
            );
        }
        let facts = VariableFacts::from_variables(&vars("15")).unwrap();
        assert_eq!(facts.cells[0].branches.len(), 32);
    }

    /// A stride-2 `cell_K` exists only for a one-cell-type genotype: without one, a width
    /// that grows with no `reduction_cell_K` left is the error it always was.
    #[test]
    fn strided_cell_k_only_for_one_cell_type_genotypes() {
        let vars: Vec<(String, Vec<usize>)> = [
            ("conv0/weights", vec![3, 3, 3, 8]),
            ("cell_0/1x1/weights", vec![1, 1, 8, 8]),
            ("cell_1/1x1/weights", vec![1, 1, 8, 16]),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
        let facts = VariableFacts::from_variables(&vars).unwrap();
        let err = facts.order(false).unwrap_err().to_string();
        assert!(
            err.contains("width grows but no reduction cell is left"),
            "{err}"
        );
        let order = facts.order(true).unwrap();
        let kinds: Vec<CellKind> = order.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [CellKind::Normal, CellKind::Reduction]);
        assert_eq!(order[1].scope, "cell_1");
    }
}
