//! Helpers shared by the end-to-end tests of the `amoeba` binary.
// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The small AmoebaNet-A fixture module most broken-input tests start from.
pub const FIXTURE_MODULE: &str = "fixtures/modules/amoebanet_a_n3_f8";

/// A path inside the repository.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A writable copy of [`FIXTURE_MODULE`] in `dst/module`, for tests that damage it.
pub fn copy_fixture_module(dst: &Path) -> PathBuf {
    let target = dst.join("module");
    for rel in [
        "saved_model.pb",
        "tfhub_module.pb",
        "variables/variables.index",
        "variables/variables.data-00000-of-00001",
    ] {
        let to = target.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo(FIXTURE_MODULE).join(rel), &to).unwrap();
    }
    target
}

/// Runs `amoeba ARGS` and returns its exit code and standard error.
pub fn amoeba_stderr(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `amoeba ARGS` with `env` set; returns its exit code, standard output and standard error.
pub fn amoeba_run(
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> (Option<i32>, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_amoeba"));
    command.args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
