//! The published genotypes and recognition of an extracted genotype. The data is
//! `data/genotypes.json`, the single source also read by the fixture generator
//! (`xtask/python/genotypes.py`): AmoebaNet-A..D (tensorflow/tpu
//! `models/official/amoeba_net/model_specs.py`), NASNet-A (tensorflow/models
//! `research/slim/nets/nasnet/nasnet_utils.py`) and PNASNet-5 (`pnasnet.py`, one cell type).

use crate::spec::{CellSpec, Genotype, Operation};
use serde::Deserialize;
use std::sync::OnceLock;

/// The data file, embedded at build time; a unit test parses and validates every entry.
const GENOTYPES_JSON: &str = include_str!("../data/genotypes.json");

/// The data file's `schema` this code reads.
const SCHEMA: u32 = 1;

/// The whole data file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataFile {
    #[allow(dead_code)] // free text for readers of the file
    about: String,
    schema: u32,
    genotypes: Vec<Entry>,
}

/// One published genotype as the data file writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    title: String,
    aliases: Vec<String>,
    /// Free text on what is special about the genotype.
    #[serde(default)]
    notes: Option<String>,
    source: Source,
    cell_types: CellTypes,
    cells: Cells,
}

/// Where a genotype is published.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Source {
    repo: String,
    file: String,
}

/// Whether a genotype has a normal and a reduction cell, or one cell used everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CellTypes {
    NormalAndReduction,
    One,
}

/// The cells of an entry: `normal` and `reduction`, or `cell` alone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cells {
    normal: Option<CellLists>,
    reduction: Option<CellLists>,
    cell: Option<CellLists>,
}

/// One published cell: operation names, hidden-state indices, used-state flags.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CellLists {
    operations: Vec<String>,
    hiddenstate_indices: Vec<usize>,
    used_hiddenstates: Vec<u8>,
}

/// A published genotype, parsed and validated.
#[derive(Debug)]
struct Published {
    name: String,
    aliases: Vec<String>,
    cells: PublishedCells,
}

#[derive(Debug)]
struct PublishedCells {
    /// As a [`Genotype`]: a one-cell-type entry (PNASNet-5) has that cell as both its normal
    /// and its reduction cell (the network runs it with stride 2 where it reduces).
    genotype: Genotype,
    /// `cell_types` is `one`.
    one_cell_type: bool,
}

fn cell(name: &str, kind: &str, lists: &CellLists) -> Result<CellSpec, String> {
    let ops: Vec<&str> = lists.operations.iter().map(String::as_str).collect();
    CellSpec::from_names(&ops, &lists.hiddenstate_indices, &lists.used_hiddenstates)
        .map_err(|e| format!("{name}.{kind}: {e}"))
}

fn nonempty(what: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    Ok(())
}

/// One entry, checked completely: names and origin present, cells as `cell_types` says,
/// every cell valid ([`CellSpec::validate`]).
fn published(entry: &Entry) -> Result<Published, String> {
    let name = entry.name.as_str();
    nonempty("a genotype name", name)?;
    nonempty(&format!("{name}.title"), &entry.title)?;
    nonempty(&format!("{name}.source.repo"), &entry.source.repo)?;
    nonempty(&format!("{name}.source.file"), &entry.source.file)?;
    if let Some(notes) = &entry.notes {
        nonempty(&format!("{name}.notes"), notes)?;
    }
    for alias in &entry.aliases {
        nonempty(&format!("{name}.aliases"), alias)?;
    }
    let c = &entry.cells;
    let cells = match (entry.cell_types, &c.normal, &c.reduction, &c.cell) {
        (CellTypes::NormalAndReduction, Some(normal), Some(reduction), None) => PublishedCells {
            genotype: Genotype {
                name: Some(entry.name.clone()),
                normal: cell(name, "normal", normal)?,
                reduction: cell(name, "reduction", reduction)?,
            },
            one_cell_type: false,
        },
        (CellTypes::One, None, None, Some(one)) => {
            let one = cell(name, "cell", one)?;
            PublishedCells {
                genotype: Genotype {
                    name: Some(entry.name.clone()),
                    normal: one.clone(),
                    reduction: one,
                },
                one_cell_type: true,
            }
        }
        (CellTypes::NormalAndReduction, ..) => {
            return Err(format!(
                "{name}: cell_types normal_and_reduction needs cells `normal` and `reduction` only"
            ))
        }
        (CellTypes::One, ..) => {
            return Err(format!("{name}: cell_types one needs the cell `cell` only"))
        }
    };
    Ok(Published {
        name: entry.name.clone(),
        aliases: entry.aliases.clone(),
        cells,
    })
}

/// Parses and checks a data file: schema, every entry, names and aliases unique.
fn parse(json: &str) -> Result<Vec<Published>, String> {
    let file: DataFile = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if file.schema != SCHEMA {
        return Err(format!(
            "schema {}, but this code reads {SCHEMA}",
            file.schema
        ));
    }
    let all = file
        .genotypes
        .iter()
        .map(published)
        .collect::<Result<Vec<_>, _>>()?;
    let mut names: Vec<&str> = all
        .iter()
        .flat_map(|p| std::iter::once(p.name.as_str()).chain(p.aliases.iter().map(String::as_str)))
        .collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("the name {} is given twice", w[0]));
    }
    Ok(all)
}

/// The embedded data, parsed once. The unit tests parse the same file, so a broken file
/// cannot ship; should it ever be broken, there are no known genotypes (never a panic).
fn all_published() -> &'static [Published] {
    static ALL: OnceLock<Vec<Published>> = OnceLock::new();
    ALL.get_or_init(|| parse(GENOTYPES_JSON).unwrap_or_default())
}

/// The published genotypes, in data-file order.
fn genotypes() -> impl Iterator<Item = (&'static str, &'static Genotype)> {
    all_published()
        .iter()
        .map(|p| (p.name.as_str(), &p.cells.genotype))
}

/// The names of the known genotypes: `amoeba_net_a`, `amoeba_net_b`, `amoeba_net_c`,
/// `amoeba_net_d`, `nasnet_a`, `pnasnet_5`.
pub fn known_names() -> Vec<&'static str> {
    genotypes().map(|(name, _)| name).collect()
}

/// Whether the known genotype `name` has one cell type (PNASNet-5), its [`Genotype`] holding
/// that cell as both normal and reduction cell; `None` for an unknown name.
pub fn is_one_cell_type(name: &str) -> Option<bool> {
    all_published()
        .iter()
        .find(|p| p.name == name || p.aliases.iter().any(|a| a == name))
        .map(|p| p.cells.one_cell_type)
}

/// A known genotype by its official name or alias (`amoeba_net_a`, `evol_net_g`, `nasnet_a`, ...).
pub fn known_genotype(name: &str) -> Option<Genotype> {
    let official = all_published()
        .iter()
        .find(|p| p.name == name || p.aliases.iter().any(|a| a == name))?;
    Some(official.cells.genotype.clone())
}

/// The official name of `genotype` if its cells equal a known genotype's, else `None`.
///
/// `none` on a strided input of a reduction cell always convolves, exactly like `1x1`, so the
/// two are compared as equal there: a graph cannot tell them apart.
pub fn recognize(genotype: &Genotype) -> Option<&'static str> {
    let normal = normalized(&genotype.normal, false);
    let reduction = normalized(&genotype.reduction, true);
    genotypes().find_map(|(name, known)| {
        let same = normalized(&known.normal, false) == normal
            && normalized(&known.reduction, true) == reduction;
        same.then_some(name)
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

    /// The embedded data file parses, and every cell of every entry holds the invariants
    /// (checked here on the raw lists, and again by `CellSpec::validate`).
    #[test]
    fn the_embedded_data_file_parses_and_every_cell_is_valid() {
        let all = parse(GENOTYPES_JSON).expect("data/genotypes.json");
        let file: DataFile = serde_json::from_str(GENOTYPES_JSON).unwrap();
        assert_eq!(all.len(), file.genotypes.len());
        assert_eq!(all_published().len(), all.len());
        for entry in &file.genotypes {
            let c = &entry.cells;
            let cells: Vec<&CellLists> = [&c.normal, &c.reduction, &c.cell]
                .into_iter()
                .flatten()
                .collect();
            let expected = match entry.cell_types {
                CellTypes::NormalAndReduction => 2,
                CellTypes::One => 1,
            };
            assert_eq!(cells.len(), expected, "{}", entry.name);
            for lists in cells {
                let n = lists.operations.len();
                assert!(n >= 2 && n % 2 == 0, "{}: {n} operations", entry.name);
                assert_eq!(lists.hiddenstate_indices.len(), n, "{}", entry.name);
                assert_eq!(lists.used_hiddenstates.len(), n / 2 + 2, "{}", entry.name);
                for (i, &h) in lists.hiddenstate_indices.iter().enumerate() {
                    assert!(h < 2 + i / 2, "{}: index {i} reads h{h}", entry.name);
                }
                assert!(lists.used_hiddenstates.iter().all(|&u| u <= 1));
                assert!(lists.used_hiddenstates.contains(&0));
                // Published cells have 10 operations, and every name parses.
                assert_eq!(n, 10, "{}", entry.name);
                for op in &lists.operations {
                    Operation::parse(op).expect(op);
                }
            }
        }
    }

    #[test]
    fn the_data_holds_every_published_genotype() {
        let names: Vec<&str> = all_published().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "amoeba_net_a",
                "amoeba_net_b",
                "amoeba_net_c",
                "amoeba_net_d",
                "nasnet_a",
                "pnasnet_5"
            ]
        );
        assert_eq!(
            known_names(),
            [
                "amoeba_net_a",
                "amoeba_net_b",
                "amoeba_net_c",
                "amoeba_net_d",
                "nasnet_a",
                "pnasnet_5"
            ]
        );
        for (alias, official) in [
            ("evol_net_g", "amoeba_net_a"),
            ("evol_net_h", "amoeba_net_b"),
            ("evol_net_a", "amoeba_net_c"),
            ("evol_net_x", "amoeba_net_d"),
        ] {
            assert_eq!(known_genotype(alias), known_genotype(official));
            assert!(known_genotype(alias).is_some());
        }
        // PNASNet-5 is one cell type: its genotype holds the cell twice.
        let pnas = known_genotype("pnasnet_5").unwrap();
        assert_eq!(is_one_cell_type("pnasnet_5"), Some(true));
        assert_eq!(is_one_cell_type("nasnet_a"), Some(false));
        assert_eq!(pnas.normal, pnas.reduction);
        let cell = &pnas.normal;
        assert_eq!(cell.hiddenstate_indices, [1, 1, 0, 0, 0, 0, 4, 0, 1, 0]);
        assert_eq!(cell.concat_states(), [2, 3, 4, 5, 6]);
        assert_eq!(cell.operations[9], Operation::Identity);
        assert_eq!(recognize(&pnas), Some("pnasnet_5"));
        assert_eq!(known_genotype("no_such_net"), None);
    }

    #[test]
    fn broken_data_files_are_refused() {
        let good: serde_json::Value = serde_json::from_str(GENOTYPES_JSON).unwrap();
        let broken = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v = good.clone();
            edit(&mut v);
            parse(&v.to_string())
        };
        assert!(broken(&|_| {}).is_ok());
        let e = broken(&|v| v["schema"] = 2.into()).unwrap_err();
        assert!(e.contains("schema 2"), "{e}");
        let e =
            broken(&|v| v["genotypes"][0]["cells"]["normal"]["hiddenstate_indices"][2] = 7.into())
                .unwrap_err();
        assert!(e.contains("amoeba_net_a.normal"), "{e}");
        let e =
            broken(&|v| v["genotypes"][1]["cells"]["reduction"]["used_hiddenstates"][0] = 2.into())
                .unwrap_err();
        assert!(e.contains("amoeba_net_b.reduction"), "{e}");
        let e = broken(&|v| v["genotypes"][2]["cells"]["normal"]["operations"][0] = "sep_9".into())
            .unwrap_err();
        assert!(e.contains("amoeba_net_c.normal"), "{e}");
        let e = broken(&|v| v["genotypes"][3]["aliases"] = serde_json::json!(["evol_net_g"]))
            .unwrap_err();
        assert!(e.contains("evol_net_g"), "{e}");
        let e = broken(&|v| v["genotypes"][5]["cell_types"] = "normal_and_reduction".into())
            .unwrap_err();
        assert!(e.contains("pnasnet_5"), "{e}");
        let e = broken(&|v| v["genotypes"][4]["source"]["repo"] = "".into()).unwrap_err();
        assert!(e.contains("nasnet_a.source.repo"), "{e}");
        assert!(broken(&|v| v["genotypes"][0]["extra"] = 1.into()).is_err());
        assert!(parse("{").is_err());
    }

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
