//! The minimum Rust version the project states (Cargo.toml `rust-version`, the README) is
//! not below what any locked dependency declares it needs.

use std::process::Command;

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
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&format!("stable, {stated} or newer")),
        "the README states another minimum than {stated}"
    );
}
