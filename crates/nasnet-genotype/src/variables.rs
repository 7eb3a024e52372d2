//! What the checkpoint's variable names and shapes say about the network: which cells exist,
//! their widths and prev-layer adjustments, which operations own variables, the stem and the
//! classifier. Pools and identities own no variables, so this source alone cannot give a
//! whole genotype (see `graph` for that).

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

/// Splits `cell_stem_3` / `cell_3` / `reduction_cell_3` into kind and index.
pub fn parse_cell_scope(scope: &str) -> Option<(CellKind, usize)> {
    let (kind, rest) = if let Some(r) = scope.strip_prefix("cell_stem_") {
        (CellKind::Stem, r)
    } else if let Some(r) = scope.strip_prefix("reduction_cell_") {
        (CellKind::Reduction, r)
    } else {
        (CellKind::Normal, scope.strip_prefix("cell_")?)
    };
    Some((kind, rest.parse().ok()?))
}

/// Strips a consumer-side `module/` prefix if every name has it.
fn strip_module_prefix(variables: &[(String, Vec<usize>)]) -> Vec<(&str, &[usize])> {
    let all_prefixed =
        !variables.is_empty() && variables.iter().all(|(n, _)| n.starts_with("module/"));
    variables
        .iter()
        .map(|(n, s)| {
            (
                if all_prefixed {
                    &n["module/".len()..]
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
            return Err(GenotypeError::vars(
                "(all)",
                "no cell_stem_K, cell_K or reduction_cell_K variables: not a NASNet-space network",
            ));
        }
        let (stem_scope, stem_filters) = stem(&shapes)?;
        let cells = by_cell
            .iter()
            .map(|(&(kind, index), names)| cell_vars(kind, index, names, &shapes))
            .collect::<Result<Vec<_>, _>>()?;
        let fc = shapes.get("final_layer/FC/weights").and_then(|s| match s {
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
    /// `reduction_cell_k` inserted before the k-th normal cell whose width grows. With no
    /// `reduction_cell_K` scope at all (PNASNet: one cell type, numbered together), a `cell_K`
    /// whose width grows is itself the stride-2 cell, and is returned with kind `Reduction`.
    pub fn order(&self) -> Result<Vec<CellVars>, GenotypeError> {
        let of = |kind| self.cells.iter().filter(move |c| c.kind == kind);
        let strided_normal_cells = of(CellKind::Reduction).next().is_none();
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
    for scope in crate::spec::STEM_SCOPES {
        if let Some(shape) = shapes.get(format!("{scope}/weights").as_str()) {
            return match shape {
                [3, 3, _, out] => Ok((scope.to_string(), *out)),
                other => Err(GenotypeError::vars(
                    scope,
                    format!("stem weights {other:?}, expected [3, 3, in, out]"),
                )),
            };
        }
    }
    Err(GenotypeError::vars(
        "stem/conv0",
        "no stem conv weights (stem/conv0/weights or conv0/weights)",
    ))
}

fn cell_vars(
    kind: CellKind,
    index: usize,
    names: &[&str],
    shapes: &BTreeMap<&str, &[usize]>,
) -> Result<CellVars, GenotypeError> {
    let scope = match kind {
        CellKind::Stem => format!("cell_stem_{index}"),
        CellKind::Normal => format!("cell_{index}"),
        CellKind::Reduction => format!("reduction_cell_{index}"),
    };
    let shape = |rel: &str| shapes.get(format!("{scope}/{rel}").as_str()).copied();
    let (net_channels, filters) = match shape("1x1/weights") {
        Some([1, 1, cin, cout]) => (*cin, *cout),
        Some(other) => {
            return Err(GenotypeError::vars(
                &scope,
                format!("1x1/weights is {other:?}, expected [1, 1, in, out]"),
            ))
        }
        None => {
            return Err(GenotypeError::vars(
                &scope,
                "no 1x1/weights (the cell input's 1x1 conv before beginning_bn)",
            ))
        }
    };
    let (prev_adjust, prev_channels) = if let Some(s) = shape("path1_conv/weights") {
        (Some(PrevAdjust::FactorizedReduction), s.get(2).copied())
    } else if let Some(s) = shape("prev_1x1/weights") {
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
    let mut subs: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
    let mut combinations = 0;
    for name in names {
        let parts: Vec<&str> = name.split('/').collect();
        let Some(iter) = parts
            .get(1)
            .and_then(|p| p.strip_prefix("comb_iter_"))
            .and_then(|i| i.parse::<usize>().ok())
        else {
            continue;
        };
        let side = match parts.get(2) {
            Some(&"left") => 0,
            Some(&"right") => 1,
            _ => {
                return Err(GenotypeError::vars(
                    *name,
                    "comb_iter scope without left/right",
                ))
            }
        };
        // The index comes from a name: cap it before it sizes anything.
        if iter >= MAX_OPERATIONS_PER_CELL / 2 {
            return Err(GenotypeError::vars(
                *name,
                format!(
                    "comb_iter_{iter}: a cell has at most {} combinations (the cap)",
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
        .map(|i| {
            var_op(
                &format!("{scope}/comb_iter_{}/{}", i / 2, ["left", "right"][i % 2]),
                subs.get(&i),
                shapes,
            )
        })
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
    let mut separable = None;
    for sub in subs {
        if let Some((k, n)) = sub
            .strip_prefix("separable_")
            .and_then(|r| r.rsplit_once('_'))
        {
            let kernel = square(k)
                .ok_or_else(|| GenotypeError::vars(branch, format!("bad separable scope {sub}")))?;
            let n: usize = n
                .parse()
                .map_err(|_| GenotypeError::vars(branch, format!("bad separable scope {sub}")))?;
            let depthwise = shapes.get(format!("{branch}/{sub}/depthwise_weights").as_str());
            if depthwise.is_some_and(|s| s.first() != Some(&kernel)) {
                return Err(GenotypeError::vars(branch, format!("{sub}/depthwise_weights {depthwise:?} do not match the scope's kernel {kernel}")));
            }
            let (_, reps) = separable.unwrap_or((kernel, 0));
            separable = Some((kernel, reps.max(n)));
        }
    }
    if let Some((kernel, repeats)) = separable {
        return Ok(VarOp::Separable { kernel, repeats });
    }
    let row = subs.iter().find_map(|s| {
        s.strip_prefix("1x")
            .and_then(|k| k.parse::<usize>().ok())
            .filter(|&k| k > 1)
    });
    if let Some(k) = row {
        if subs.contains(format!("{k}x1").as_str()) {
            return Ok(VarOp::Factorized { kernel: k });
        }
    }
    let conv = subs
        .iter()
        .find_map(|s| square(s.strip_prefix("dilated_").unwrap_or(s)).filter(|&k| k > 1));
    if let Some(kernel) = conv {
        return Ok(VarOp::Conv { kernel });
    }
    if subs.contains("1x1") {
        return Ok(VarOp::Projection);
    }
    Err(GenotypeError::vars(
        branch,
        format!("variable scopes {subs:?} match no NASNet-space operation"),
    ))
}

fn square(s: &str) -> Option<usize> {
    let (a, b) = s.split_once('x')?;
    let k = a.parse().ok()?;
    (b.parse::<usize>().ok()? == k).then_some(k)
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
}
