//! The minimum Rust version the project states (Cargo.toml `rust-version`, the README) is
//! not below what any locked dependency declares it needs.

use std::path::Path;
use std::process::Command;

/// Whether any `.rs` file under `dir` contains `needle`.
fn any_source_contains(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            any_source_contains(&path, needle)
        } else {
            path.extension().is_some_and(|e| e == "rs")
                && std::fs::read_to_string(&path).unwrap().contains(needle)
        }
    })
}

/// `1.88` and `1.88.0` are one version: [major, minor, patch].
fn version(v: &str) -> [u32; 3] {
    let mut parts = v.split('.').map(|p| p.parse().unwrap_or(0));
    [(); 3].map(|()| parts.next().unwrap_or(0))
}

#[test]
fn the_stated_minimum_rust_covers_every_locked_dependency() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let stated = packages
        .iter()
        .find(|p| p["name"] == "amoeba")
        .and_then(|p| p["rust_version"].as_str())
        .expect("amoeba states a rust-version");
    let (needed, by) = packages
        .iter()
        .filter_map(|p| Some((version(p["rust_version"].as_str()?), p["name"].as_str()?)))
        .max()
        .unwrap();
    assert!(
        version(stated) >= needed,
        "rust-version {stated} is below what {by} needs ({needed:?})"
    );
    // Our own code's needs: `#[target_feature(enable = "avx512...")]` and the AVX-512
    // intrinsics became stable in Rust 1.89.
    if any_source_contains(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("crates"),
        "\"avx512",
    ) {
        assert!(
            version(stated) >= [1, 89, 0],
            "rust-version {stated}: the kernels enable AVX-512 target features, stable since 1.89"
        );
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&format!("stable, {stated} or newer")),
        "the README states another minimum than {stated}"
    );
}
