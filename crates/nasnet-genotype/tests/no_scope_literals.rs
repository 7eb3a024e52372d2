//! A repository invariant: the TF scope and variable names of the NASNet family live in
//! `data/conventions.json` only. Every string literal in the product code that reads a module
//! (outside `#[cfg(test)]` code) is checked against the names and patterns of that file, so a
//! hard-coded `"beginning_bn"` or `format!("cell_{k}")` cannot creep back in. Names too
//! generic to tell from prose (`bn`, `weights`, `1x1`, `{k}x{k}`) are not looked for.
//!
//! Not scanned: `conventions.rs` (it reads the file), `opnames.rs` (genotype operation names
//! such as `separable_3x3_2` are the genotype vocabulary; TF names the scopes after them),
//! `hub-module`, the format reader, which owns the hub format's own names, and `verify`, whose
//! golden tensor names (`cell_output/<scope>`) are the golden file format's.

use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every name of the data file (values of the name sections, list items included).
fn names(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| names(v, out)),
        Value::Object(map) => {
            for (key, v) in map {
                // Prose and family metadata are not names; `conv_op` is a TF op type (`Conv2D`).
                let not_a_name = matches!(
                    key.as_str(),
                    "about" | "source" | "name" | "reduction_cells" | "conv_op"
                );
                if !not_a_name {
                    names(v, out);
                }
            }
        }
        _ => {}
    }
}

/// A name to look for: the literal parts of a pattern (`cell_stem_{k}` -> `cell_stem_`), or a
/// whole name. Generic words (`weights`, `left`, `concat`, `1x1`, ...) are too common in
/// messages to tell apart; a name counts when it has an underscore, a slash or a digit and is
/// not the bare `1x1` (also an operation name).
fn needles(all: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for name in all {
        for part in name.split('/') {
            let literal = part.split('{').next().unwrap_or("");
            let specific = literal.len() >= 3
                && literal.chars().any(|c| c == '_' || c.is_ascii_digit())
                && literal != "1x1"
                && literal != "_bn";
            if specific && !out.contains(&literal.to_string()) {
                out.push(literal.to_string());
            }
        }
        if name.contains('/') && !name.contains('{') {
            out.push(name.clone());
        }
    }
    out
}

fn word_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `needle` occurs in `literal` as a name: not inside a longer word. A needle ending
/// in `_` is a pattern's prefix (`cell_stem_` of `cell_stem_{k}`): it counts when a number or
/// a `format!` placeholder follows.
fn contains_name(literal: &str, needle: &str) -> bool {
    literal.match_indices(needle).any(|(at, _)| {
        let before = literal[..at].chars().next_back();
        let after = literal[at + needle.len()..].chars().next();
        let ends = if needle.ends_with('_') {
            after.is_some_and(|c| c.is_ascii_digit() || c == '{')
        } else {
            !word_char(after)
        };
        !word_char(before) && ends
    })
}

/// The string literals of a line of code (comments dropped; escapes kept as written).
fn literals(line: &str) -> Vec<String> {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => break,
            '\'' => {
                // A char literal or a lifetime: skip `'x'`, `'\''`.
                let mut look = chars.clone();
                if let (Some(a), Some(b)) = (look.next(), look.next()) {
                    if b == '\'' || (a == '\\' && look.next() == Some('\'')) {
                        chars = look;
                    }
                }
            }
            '"' => {
                let mut lit = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            lit.push(c);
                            lit.extend(chars.next());
                        }
                        '"' => break,
                        _ => lit.push(c),
                    }
                }
                out.push(lit);
            }
            _ => {}
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_tf_scope_literal_outside_the_conventions_data() {
    let json = std::fs::read_to_string(root().join("crates/nasnet-genotype/data/conventions.json"))
        .unwrap();
    let mut all = Vec::new();
    names(&serde_json::from_str(&json).unwrap(), &mut all);
    let needles = needles(&all);
    for expected in [
        "beginning_bn",
        "cell_stem_",
        "comb_iter_",
        "final_path_bn",
        "stem/conv0",
    ] {
        assert!(
            needles.iter().any(|n| n == expected),
            "{expected} in {needles:?}"
        );
    }
    let mut files = Vec::new();
    for dir in [
        "crates/nasnet-genotype/src",
        "crates/nasnet-forward/src",
        "crates/model-io/src",
        "crates/diagrams/src",
        "src",
    ] {
        rust_files(&root().join(dir), &mut files);
    }
    let exempt = ["conventions.rs", "opnames.rs"];
    let mut found = Vec::new();
    for file in files
        .iter()
        .filter(|f| !exempt.iter().any(|e| f.ends_with(e)))
    {
        let text = std::fs::read_to_string(file).unwrap();
        let product = text.split("#[cfg(test)]").next().unwrap_or("");
        for (i, line) in product.lines().enumerate() {
            for literal in literals(line) {
                for needle in needles.iter().filter(|n| contains_name(&literal, n)) {
                    found.push(format!(
                        "{}:{}: {literal:?} holds {needle:?}",
                        file.display(),
                        i + 1
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "TF scope names outside crates/nasnet-genotype/data/conventions.json:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_sees_what_it_must() {
    assert_eq!(
        literals(r#"let a = format!("{scope}/beginning_bn"); // "x""#),
        ["{scope}/beginning_bn"]
    );
    assert_eq!(literals(r#"// "beginning_bn""#), Vec::<String>::new());
    assert_eq!(literals(r#"f('"', "a\"b")"#), [r#"a\"b"#]);
    assert!(contains_name("{scope}/beginning_bn", "beginning_bn"));
    assert!(contains_name("cell_stem_{index}", "cell_stem_"));
    assert!(contains_name("cell_7/1x1", "cell_"));
    assert!(!contains_name("cell_types", "cell_"));
    assert!(!contains_name("my_beginning_bn2", "beginning_bn"));
    assert!(!contains_name("conv0x", "conv0"));
}
