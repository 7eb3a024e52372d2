//! The published genotypes have one source, `data/genotypes.json`: the Rust side embeds it
//! (known.rs) and the fixture generator's `xtask/python/genotypes.py` loads it. This test
//! checks that the Python file writes no genotype lists of its own and, when `python3` is
//! available, that Python's view of the data equals the Rust one.

use nasnet_genotype::{is_one_cell_type, known_genotype, known_names, CellSpec, Operation};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python_source() -> String {
    let path = root().join("xtask/python/genotypes.py");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn data() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/genotypes.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Every operation name the data file uses, plus the rest of the vocabulary's spellings.
fn operation_names(data: &Value) -> Vec<String> {
    let mut names: Vec<String> = [
        "none",
        "1x1",
        "3x3",
        "1x3_3x1",
        "1x7_7x1",
        "avg_pool_2x2",
        "avg_pool_3x3",
        "max_pool_2x2",
        "max_pool_3x3",
        "separable_3x3_2",
        "separable_5x5_2",
        "separable_7x7_2",
    ]
    .map(String::from)
    .to_vec();
    for entry in data["genotypes"].as_array().unwrap() {
        for cell in entry["cells"].as_object().unwrap().values() {
            for op in cell["operations"].as_array().unwrap() {
                names.push(op.as_str().unwrap().to_string());
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_python_genotypes_write_no_lists_of_their_own() {
    let source = python_source();
    for name in operation_names(&data()) {
        for quoted in [format!("\"{name}\""), format!("'{name}'")] {
            assert!(
                !source.contains(&quoted),
                "xtask/python/genotypes.py holds the literal {quoted}: the genotypes belong in \
                 crates/nasnet-genotype/data/genotypes.json only"
            );
        }
    }
    // Hand-written index or flag lists (`[0, 0, 1, 1, ...]`) would be a second source too.
    let digits_list = source.lines().find(|line| {
        let l = line.split('#').next().unwrap_or("");
        l.split('[').skip(1).any(|rest| {
            let inner = rest.split(']').next().unwrap_or("");
            inner
                .split(',')
                .filter(|x| x.trim().parse::<u32>().is_ok())
                .count()
                >= 3
        })
    });
    assert_eq!(
        digits_list, None,
        "a literal list of numbers in genotypes.py"
    );
    assert!(
        source.contains("genotypes.json") && source.contains("json.load"),
        "xtask/python/genotypes.py does not load genotypes.json"
    );
    assert!(
        source.contains("\"..\", \"..\", \"crates\", \"nasnet-genotype\", \"data\""),
        "xtask/python/genotypes.py does not find the data file relative to itself"
    );
    assert!(
        !source.contains("import tensorflow"),
        "genotypes.py must import without TensorFlow"
    );
}

fn cell_json(cell: &CellSpec, raw_names: &Value) -> Value {
    // The names as written (e.g. `dil_2_separable_5x5_2`), checked to parse to the Rust cell.
    let names: Vec<&str> = raw_names
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let parsed: Vec<Operation> = names.iter().map(|n| Operation::parse(n).unwrap()).collect();
    assert_eq!(parsed, cell.operations);
    serde_json::json!({
        "operations": names,
        "hiddenstate_indices": cell.hiddenstate_indices,
        "used_hiddenstates": cell.used_hiddenstates,
    })
}

/// The Rust view in the shape of Python's: `GENOTYPES`, `ONE_CELL_GENOTYPES`, `ALIASES`.
fn rust_view() -> Value {
    let data = data();
    let entries = data["genotypes"].as_array().unwrap();
    let entry = |name: &str| entries.iter().find(|e| e["name"] == name).unwrap();
    let mut two = serde_json::Map::new();
    for name in known_names() {
        let g = known_genotype(name).unwrap();
        let cells = &entry(name)["cells"];
        // A one-cell-type genotype (PNASNet-5) holds its cell as both kinds, in both languages.
        let (normal, reduction) = if is_one_cell_type(name) == Some(true) {
            (&cells["cell"], &cells["cell"])
        } else {
            (&cells["normal"], &cells["reduction"])
        };
        two.insert(
            name.to_string(),
            serde_json::json!({
                "normal": cell_json(&g.normal, &normal["operations"]),
                "reduction": cell_json(&g.reduction, &reduction["operations"]),
            }),
        );
    }
    let mut one = serde_json::Map::new();
    let mut aliases = serde_json::Map::new();
    for e in entries {
        let name = e["name"].as_str().unwrap();
        for alias in e["aliases"].as_array().unwrap() {
            let alias = alias.as_str().unwrap();
            assert_eq!(known_genotype(alias), known_genotype(name), "{alias}");
            aliases.insert(alias.to_string(), name.into());
        }
        if e["cell_types"] == "one" {
            let g = known_genotype(name).unwrap();
            assert_eq!(g.normal, g.reduction, "{name} has one cell type");
            assert_eq!(is_one_cell_type(name), Some(true));
            one.insert(
                name.to_string(),
                serde_json::json!({"cell": e["cells"]["cell"]}),
            );
        }
        {
            assert!(
                two.contains_key(name),
                "{name} is missing from known_names()"
            );
        }
    }
    serde_json::json!({"GENOTYPES": two, "ONE_CELL_GENOTYPES": one, "ALIASES": aliases})
}

#[test]
fn python_and_rust_see_the_same_genotypes() {
    let rust = rust_view();
    let script = "import sys, json; sys.path.insert(0, 'xtask/python'); import genotypes; \
                  [genotypes.validate(g) for g in genotypes.GENOTYPES.values()]; \
                  assert 'tensorflow' not in sys.modules; \
                  print(json.dumps({'GENOTYPES': genotypes.GENOTYPES, \
                  'ONE_CELL_GENOTYPES': genotypes.ONE_CELL_GENOTYPES, \
                  'ALIASES': genotypes.ALIASES}))";
    let out = match Command::new("python3")
        .args(["-c", script])
        .current_dir(root())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            println!("note: python3 is not available ({e}); Python's view was not compared");
            return;
        }
    };
    assert!(
        out.status.success(),
        "python3 could not load xtask/python/genotypes.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(python, rust);
}
