//! The modules the `check-*` commands check beyond the fixtures: the official conformance
//! exports committed in `fixtures/conformance/`, and a full-size module of `synth-full`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A module to check and the golden to check it against.
pub struct Module {
    pub label: String,
    pub model: PathBuf,
    pub golden: PathBuf,
}

/// The official conformance modules (committed in `fixtures/conformance/`).
pub fn conformance(root: &Path) -> Vec<Module> {
    let dir = root.join("fixtures/conformance");
    ["amoebanet_a_n6_f16", "nasnet_a_mobile_n6_f8"]
        .iter()
        .filter(|name| dir.join(name).is_dir())
        .map(|name| Module {
            label: format!("conformance {name}"),
            model: dir.join(name),
            golden: dir.join(format!("{name}.golden.safetensors")),
        })
        .collect()
}

/// The module folder in `dir` that has a `<name>.golden.safetensors` beside it.
pub fn full_size(dir: &Path) -> Result<Module> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let golden = dir.join(format!("{name}.golden.safetensors"));
        if path.is_dir() && golden.is_file() {
            return Ok(Module {
                label: format!("full size {name}"),
                model: path.clone(),
                golden,
            });
        }
    }
    bail!(
        "{}: no module folder with its <name>.golden.safetensors beside it (made by cargo xtask synth-full)",
        dir.display()
    )
}
