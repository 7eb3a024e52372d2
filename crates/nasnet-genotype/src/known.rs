//! The published genotypes, written as data: AmoebaNet-A..D (tensorflow/tpu
//! `models/official/amoeba_net/model_specs.py`) and NASNet-A (tensorflow/models
//! `research/slim/nets/nasnet/nasnet_utils.py`), and recognition of an extracted genotype.

use crate::spec::{CellSpec, Genotype, Operation};

/// One published cell: operation names, hidden-state indices, used-state flags.
struct CellLists {
    operations: [&'static str; 10],
    hiddenstate_indices: [usize; 10],
    used_hiddenstates: [u8; 7],
}

/// One published genotype under its official name.
struct Known {
    name: &'static str,
    normal: CellLists,
    reduction: CellLists,
}

const KNOWN: [Known; 5] = [
    Known {
        name: "amoeba_net_a",
        normal: CellLists {
            operations: [
                "avg_pool_3x3",
                "max_pool_3x3",
                "separable_3x3_2",
                "none",
                "none",
                "avg_pool_3x3",
                "separable_3x3_2",
                "separable_5x5_2",
                "avg_pool_3x3",
                "separable_3x3_2",
            ],
            hiddenstate_indices: [0, 0, 1, 1, 0, 1, 0, 2, 5, 0],
            used_hiddenstates: [1, 0, 1, 0, 0, 1, 0],
        },
        reduction: CellLists {
            operations: [
                "separable_3x3_2",
                "avg_pool_3x3",
                "max_pool_3x3",
                "separable_7x7_2",
                "max_pool_3x3",
                "max_pool_3x3",
                "separable_3x3_2",
                "1x7_7x1",
                "avg_pool_3x3",
                "separable_7x7_2",
            ],
            hiddenstate_indices: [1, 0, 0, 2, 1, 0, 4, 0, 1, 0],
            used_hiddenstates: [1, 1, 0, 0, 0, 0, 0],
        },
    },
    Known {
        name: "amoeba_net_b",
        normal: CellLists {
            operations: [
                "1x1",
                "max_pool_3x3",
                "none",
                "separable_3x3_2",
                "1x1",
                "separable_3x3_2",
                "1x1",
                "none",
                "avg_pool_3x3",
                "1x1",
            ],
            hiddenstate_indices: [1, 1, 1, 0, 1, 0, 2, 2, 1, 5],
            used_hiddenstates: [0, 1, 1, 0, 0, 1, 0],
        },
        reduction: CellLists {
            operations: [
                "max_pool_2x2",
                "max_pool_3x3",
                "none",
                "3x3",
                "dil_2_separable_5x5_2",
                "max_pool_3x3",
                "none",
                "separable_3x3_2",
                "avg_pool_3x3",
                "1x1",
            ],
            hiddenstate_indices: [0, 0, 2, 1, 2, 2, 3, 1, 4, 3],
            used_hiddenstates: [1, 1, 1, 1, 1, 0, 0],
        },
    },
    Known {
        name: "amoeba_net_c",
        normal: CellLists {
            operations: [
                "avg_pool_3x3",
                "separable_3x3_2",
                "none",
                "separable_3x3_2",
                "avg_pool_3x3",
                "separable_3x3_2",
                "none",
                "separable_3x3_2",
                "avg_pool_3x3",
                "separable_3x3_2",
            ],
            hiddenstate_indices: [0, 0, 0, 0, 2, 1, 0, 1, 3, 0],
            used_hiddenstates: [1, 0, 0, 1, 0, 0, 0],
        },
        reduction: CellLists {
            operations: [
                "max_pool_3x3",
                "max_pool_3x3",
                "separable_7x7_2",
                "separable_3x3_2",
                "separable_7x7_2",
                "max_pool_3x3",
                "separable_5x5_2",
                "separable_5x5_2",
                "max_pool_3x3",
                "separable_3x3_2",
            ],
            hiddenstate_indices: [0, 0, 2, 0, 0, 1, 4, 4, 1, 1],
            used_hiddenstates: [0, 1, 0, 0, 0, 0, 0],
        },
    },
    Known {
        name: "amoeba_net_d",
        normal: CellLists {
            operations: [
                "1x1",
                "max_pool_3x3",
                "none",
                "1x7_7x1",
                "1x1",
                "1x7_7x1",
                "max_pool_3x3",
                "none",
                "avg_pool_3x3",
                "1x1",
            ],
            hiddenstate_indices: [1, 1, 1, 0, 0, 0, 2, 2, 1, 5],
            used_hiddenstates: [0, 1, 1, 0, 0, 1, 0],
        },
        reduction: CellLists {
            operations: [
                "max_pool_2x2",
                "max_pool_3x3",
                "none",
                "3x3",
                "1x7_7x1",
                "max_pool_3x3",
                "none",
                "max_pool_2x2",
                "avg_pool_3x3",
                "1x1",
            ],
            hiddenstate_indices: [0, 0, 2, 1, 2, 2, 3, 1, 2, 3],
            used_hiddenstates: [1, 1, 1, 1, 0, 0, 0],
        },
    },
    Known {
        name: "nasnet_a",
        normal: CellLists {
            operations: [
                "separable_5x5_2",
                "separable_3x3_2",
                "separable_5x5_2",
                "separable_3x3_2",
                "avg_pool_3x3",
                "none",
                "avg_pool_3x3",
                "avg_pool_3x3",
                "separable_3x3_2",
                "none",
            ],
            hiddenstate_indices: [0, 1, 1, 1, 0, 1, 1, 1, 0, 0],
            used_hiddenstates: [1, 0, 0, 0, 0, 0, 0],
        },
        reduction: CellLists {
            operations: [
                "separable_5x5_2",
                "separable_7x7_2",
                "max_pool_3x3",
                "separable_7x7_2",
                "avg_pool_3x3",
                "separable_5x5_2",
                "none",
                "avg_pool_3x3",
                "separable_3x3_2",
                "max_pool_3x3",
            ],
            hiddenstate_indices: [0, 1, 0, 1, 0, 1, 3, 2, 2, 0],
            used_hiddenstates: [1, 1, 1, 0, 0, 0, 0],
        },
    },
];

/// Aliases of the official names (model_specs.py accepts both).
const ALIASES: [(&str, &str); 4] = [
    ("evol_net_g", "amoeba_net_a"),
    ("evol_net_h", "amoeba_net_b"),
    ("evol_net_a", "amoeba_net_c"),
    ("evol_net_x", "amoeba_net_d"),
];

fn cell(lists: &CellLists) -> Option<CellSpec> {
    // The tables above are fixed data whose names all parse; `None` would be a typo caught by tests.
    CellSpec::from_names(
        &lists.operations,
        &lists.hiddenstate_indices,
        &lists.used_hiddenstates,
    )
    .ok()
}

/// The names of the known genotypes: `amoeba_net_a`, `amoeba_net_b`, `amoeba_net_c`, `amoeba_net_d`, `nasnet_a`.
pub fn known_names() -> Vec<&'static str> {
    KNOWN.iter().map(|k| k.name).collect()
}

/// A known genotype by its official name or alias (`amoeba_net_a`, `evol_net_g`, `nasnet_a`, ...).
pub fn known_genotype(name: &str) -> Option<Genotype> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, official)| official);
    let known = KNOWN.iter().find(|k| k.name == name)?;
    Some(Genotype {
        name: Some(known.name.to_string()),
        normal: cell(&known.normal)?,
        reduction: cell(&known.reduction)?,
    })
}

/// The official name of `genotype` if its cells equal a known genotype's, else `None`.
///
/// `none` on a strided input of a reduction cell always convolves, exactly like `1x1`, so the
/// two are compared as equal there: a graph cannot tell them apart.
pub fn recognize(genotype: &Genotype) -> Option<&'static str> {
    KNOWN.iter().find_map(|k| {
        let known = known_genotype(k.name)?;
        let same = normalized(&known.normal, false) == normalized(&genotype.normal, false)
            && normalized(&known.reduction, true) == normalized(&genotype.reduction, true);
        same.then_some(k.name)
    })
}

/// The cell with `none` on a strided input rewritten to `1x1` (they compute the same).
fn normalized(cell: &CellSpec, strided: bool) -> CellSpec {
    let mut out = cell.clone();
    for (op, &h) in out.operations.iter_mut().zip(&cell.hiddenstate_indices) {
        if strided && h < 2 && *op == Operation::Identity {
            *op = Operation::Conv1x1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_genotype_parses_and_recognises_itself() {
        for name in known_names() {
            let g = known_genotype(name).expect(name);
            assert_eq!(recognize(&g), Some(name));
        }
        assert_eq!(known_genotype("evol_net_g"), known_genotype("amoeba_net_a"));
    }

    #[test]
    fn known_genotypes_are_distinct() {
        let all: Vec<_> = known_names()
            .into_iter()
            .filter_map(known_genotype)
            .collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!((&a.normal, &a.reduction), (&b.normal, &b.reduction));
            }
        }
    }

    #[test]
    fn amoeba_a_operations_as_in_the_spec() {
        let g = known_genotype("amoeba_net_a").unwrap();
        assert_eq!(
            g.normal.operation_names()[..4],
            ["avg_pool_3x3", "max_pool_3x3", "separable_3x3_2", "none"]
        );
        assert_eq!(
            g.reduction.operations[7],
            Operation::Factorized { kernel: 7 }
        );
        assert_eq!(g.normal.concat_states(), vec![1, 3, 4, 6]);
        assert_eq!(g.reduction.concat_states(), vec![2, 3, 4, 5, 6]);
    }

    #[test]
    fn an_altered_genotype_is_unknown() {
        let mut g = known_genotype("amoeba_net_a").unwrap();
        g.normal.hiddenstate_indices[9] = 1;
        assert_eq!(recognize(&g), None);
    }
}
