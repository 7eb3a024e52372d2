//! `amoeba verify` against hostile golden files and options (issue 14, the "false PASS"
//! class): every golden tensor is compared or the file is refused, no value or option can
//! switch the comparison off, and exit codes are those the README documents (0 PASS, 1 FAIL,
//! 2 bad input or usage), never 101 (a panic).
//!
//! The hostile goldens are edits of the committed fixture golden, written with the
//! `safetensors` crate.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

const GOLDEN: &str = "fixtures/goldens/amoebanet_a_n3_f8.golden.safetensors";

/// One tensor of a golden file: name, dtype, shape, little-endian bytes.
#[derive(Clone)]
struct Entry {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Entry {
    fn f32s(&self) -> Vec<f32> {
        self.bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn set_f32s(&mut self, values: &[f32]) {
        self.bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    }

    /// Sets element `index` (counted from the end when negative).
    fn set(&mut self, index: isize, value: f32) {
        let mut values = self.f32s();
        let i = if index < 0 {
            values.len() - index.unsigned_abs()
        } else {
            index as usize
        };
        values[i] = value;
        self.set_f32s(&values);
    }
}

/// The tensors of a safetensors file, in name order.
fn entries_of(path: &Path) -> Vec<Entry> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut entries: Vec<Entry> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| Entry {
            name,
            dtype: view.dtype(),
            shape: view.shape().to_vec(),
            bytes: view.data().to_vec(),
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    entries
}

fn fixture_golden() -> Vec<Entry> {
    entries_of(&common::repo(GOLDEN))
}

fn write_entries(
    path: &Path,
    entries: &[Entry],
    metadata: Option<std::collections::HashMap<String, String>>,
) {
    let views: Vec<(String, TensorView<'_>)> = entries
        .iter()
        .map(|e| {
            let view = TensorView::new(e.dtype, e.shape.clone(), &e.bytes).unwrap();
            (e.name.clone(), view)
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, metadata).unwrap()).unwrap();
}

fn entry<'a>(entries: &'a mut [Entry], name: &str) -> &'a mut Entry {
    entries.iter_mut().find(|e| e.name == name).unwrap()
}

/// The fixture golden after `edit`, written to `dir/golden.safetensors`.
fn hostile_golden(dir: &Path, edit: impl FnOnce(&mut Vec<Entry>)) -> PathBuf {
    let mut entries = fixture_golden();
    edit(&mut entries);
    let path = dir.join("golden.safetensors");
    write_entries(&path, &entries, None);
    path
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `amoeba verify MODEL --golden GOLDEN EXTRA...`, killed (and failed) after 120 s.
fn verify_with(model: &Path, golden: &Path, extra: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(["verify", s(model), "--golden", s(golden)])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("amoeba verify --golden {} hangs", golden.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "panic: {}", run.stderr);
    assert_ne!(run.code, Some(101), "panic: {}", run.stderr);
    run
}

fn verify(golden: &Path, extra: &[&str]) -> Run {
    verify_with(&common::repo(common::FIXTURE_MODULE), golden, extra)
}

/// Exit 2, nothing on stdout (no partial report), and a message with every fragment.
fn assert_refused(run: &Run, fragments: &[&str]) {
    assert_eq!(
        run.code,
        Some(2),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "a refused golden printed a report:\n{}",
        run.stdout
    );
    for f in fragments {
        assert!(
            run.stderr.contains(f),
            "message lacks {f:?}: {}",
            run.stderr
        );
    }
}

/// Exit 1 and a report ending in FAIL.
fn assert_fail(run: &Run) {
    assert_eq!(
        run.code,
        Some(1),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stdout.trim_end().ends_with("FAIL"), "{}", run.stdout);
}

#[test]
fn the_fixture_golden_passes_and_a_perturbation_within_the_bar_still_does() {
    // Guards the helpers: a rewrite of the golden with no real change passes.
    let tmp = tempfile::tempdir().unwrap();
    let g = hostile_golden(tmp.path(), |e| {
        let features = entry(e, "features");
        let v = features.f32s()[0];
        // Well within the default bar of 1e-4 * max(1, max |golden|).
        features.set(0, v + 1e-6);
    });
    let run = verify(&g, &[]);
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.trim_end().ends_with("PASS"), "{}", run.stdout);
}

#[test]
fn a_value_outside_the_default_bar_fails_with_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let g = hostile_golden(tmp.path(), |e| {
        let features = entry(e, "features");
        let max = features.f32s().iter().fold(1f32, |m, v| m.max(v.abs()));
        let v = features.f32s()[5];
        features.set(5, v + 3e-4 * max);
    });
    let run = verify(&g, &[]);
    assert_fail(&run);
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("features") && l.contains("FAIL")),
        "{}",
        run.stdout
    );
}

#[test]
fn one_infinity_next_to_garbage_features_is_refused_not_passed() {
    // The attack: garbage features plus one Inf made the bar infinite (PASS, exit 0).
    let tmp = tempfile::tempdir().unwrap();
    let g = hostile_golden(tmp.path(), |e| {
        let features = entry(e, "features");
        let garbage: Vec<f32> = (0..features.f32s().len())
            .map(|i| (i % 7) as f32 - 3.0)
            .collect();
        features.set_f32s(&garbage);
        features.set(-1, f32::INFINITY);
    });
    let run = verify(&g, &[]);
    assert_refused(&run, &[s(&g), "`features`", "+Inf", "must be finite"]);
    // Without the Inf, the same garbage is a plain FAIL.
    let g = hostile_golden(tmp.path(), |e| {
        let features = entry(e, "features");
        let garbage: Vec<f32> = (0..features.f32s().len())
            .map(|i| (i % 7) as f32 - 3.0)
            .collect();
        features.set_f32s(&garbage);
    });
    assert_fail(&verify(&g, &[]));
}

#[test]
fn non_finite_values_in_every_kind_of_golden_tensor_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("images", f32::NAN, "NaN"),
        ("logits", f32::NEG_INFINITY, "-Inf"),
        ("logits", f32::INFINITY, "+Inf"),
        ("features", f32::NAN, "NaN"),
        ("cell_output/cell_stem_0", f32::INFINITY, "+Inf"),
        ("cell_output/reduction_cell_1", f32::NEG_INFINITY, "-Inf"),
        ("cell_output/cell_2", f32::NAN, "NaN"),
    ];
    for (name, bad, word) in cases {
        let g = hostile_golden(tmp.path(), |e| entry(e, name).set(17, bad));
        let run = verify(&g, &[]);
        assert_refused(
            &run,
            &[s(&g), &format!("`{name}` holds {word} at element 17")],
        );
    }
}

#[test]
fn nan_infinite_and_negative_tolerances_are_usage_errors() {
    let g = common::repo(GOLDEN);
    for (option, value) in [
        ("--atol", "NaN"),
        ("--rtol", "NaN"),
        ("--atol", "inf"),
        ("--rtol", "-inf"),
        ("--atol", "-1e-4"),
        ("--rtol", "-0.5"),
    ] {
        // `--atol=-1` form: clap would take a separate "-1" for an option.
        let run = verify(&g, &[&format!("{option}={value}")]);
        assert_refused(&run, &[option, "finite number >= 0"]);
    }
    // Allowed values still work: a bar of zero cannot be met by float arithmetic in
    // another order, so it fails (exit 1), it is not refused.
    assert_fail(&verify(&g, &["--atol", "0"]));
}

#[test]
fn golden_tensors_the_model_does_not_have_are_refused_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let g = hostile_golden(tmp.path(), |e| {
        let mut extra = entry(e, "cell_output/cell_2").clone();
        extra.name = "cell_output/cell_9".into();
        e.push(extra);
    });
    assert_refused(
        &verify(&g, &[]),
        &[
            s(&g),
            "`cell_output/cell_9`",
            "the model has no cell `cell_9`",
        ],
    );
    let g = hostile_golden(tmp.path(), |e| {
        let mut extra = entry(e, "features").clone();
        extra.name = "probabilities".into();
        e.push(extra);
    });
    assert_refused(
        &verify(&g, &[]),
        &[s(&g), "\"probabilities\"", "unknown tensor"],
    );
}

#[test]
fn golden_cells_of_the_wrong_shape_or_dtype_are_bad_input_not_a_fail() {
    let tmp = tempfile::tempdir().unwrap();
    // 41x41 instead of 42x42: was exit 1 (a FAIL), the README says bad input.
    let g = hostile_golden(tmp.path(), |e| {
        let cell = entry(e, "cell_output/cell_0");
        cell.shape = vec![2, 41, 41, 32];
        cell.bytes.truncate(2 * 41 * 41 * 32 * 4);
    });
    assert_refused(
        &verify(&g, &[]),
        &[
            s(&g),
            "`cell_output/cell_0` has shape [2, 41, 41, 32]",
            "[2, 42, 42, 32]",
        ],
    );
    // Same bytes, other dtype.
    let g = hostile_golden(tmp.path(), |e| {
        let cell = entry(e, "cell_output/cell_1");
        cell.dtype = Dtype::I32;
    });
    assert_refused(&verify(&g, &[]), &[s(&g), "`cell_output/cell_1` is I32"]);
}

#[test]
fn logits_for_a_feature_vector_model_are_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let module = common::repo("fixtures/modules/amoebanet_a_n3_f8_feature_vector");
    let g = hostile_golden(tmp.path(), |_| {});
    let run = verify_with(&module, &g, &[]);
    assert_refused(&run, &[s(&g), "`logits` cannot be compared"]);
}

#[test]
fn zero_images_and_huge_batches_are_refused_naming_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let g = hostile_golden(tmp.path(), |e| {
        for t in e.iter_mut() {
            t.shape[0] = 0;
            t.bytes.clear();
        }
    });
    assert_refused(
        &verify(&g, &[]),
        &[
            s(&g),
            "`images` has shape [0, 331, 331, 3]",
            "allowed 1 to 64",
        ],
    );
    // A batch of 65 tiny images: the data is there, the batch is over the cap.
    let tensor = |name: &str, shape: Vec<usize>| Entry {
        name: name.into(),
        dtype: Dtype::F32,
        bytes: vec![0; 4 * shape.iter().product::<usize>()],
        shape,
    };
    let path = tmp.path().join("batch.safetensors");
    write_entries(
        &path,
        &[
            tensor("images", vec![65, 1, 1, 3]),
            tensor("features", vec![65, 128]),
        ],
        None,
    );
    assert_refused(
        &verify(&path, &[]),
        &[s(&path), "N (images) is 65, allowed 1 to 64"],
    );
}

#[test]
fn a_fifo_or_a_folder_as_golden_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("golden.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let started = Instant::now();
    assert_refused(&verify(&fifo, &[]), &[s(&fifo), "FIFO"]);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_refused(&verify(tmp.path(), &[]), &[s(tmp.path()), "folder"]);
}

#[test]
fn nan_in_our_outputs_fails_naming_the_first_cell_in_network_order() {
    // A NaN weight in reduction_cell_0's input 1x1 makes our output NaN from that cell on;
    // the cells before it (cell_stem_0, cell_stem_1, cell_0) are still right.
    let tmp = tempfile::tempdir().unwrap();
    let converted = tmp.path().join("model.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(["convert", common::FIXTURE_MODULE, "-o", s(&converted)])
        .current_dir(common::repo(""))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&converted).unwrap();
    let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = metadata.metadata().clone();
    let mut weights = entries_of(&converted);
    entry(&mut weights, "reduction_cell_0/1x1/weights").set(0, f32::NAN);
    let broken = tmp.path().join("nan.safetensors");
    write_entries(&broken, &weights, metadata);

    let run = verify_with(&broken, &common::repo(GOLDEN), &[]);
    assert_fail(&run);
    assert!(
        run.stdout
            .contains("first divergent cell: cell_output/reduction_cell_0\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("first cell with NaN or Inf in our output: cell_output/reduction_cell_0\n"),
        "{}",
        run.stdout
    );
    for ok in ["cell_stem_0", "cell_stem_1", "cell_0 "] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("cell_output/{ok}")))
            .unwrap();
        assert!(line.ends_with(" ok"), "{line}");
    }
}

#[test]
fn json_report_of_a_fail_is_valid_json() {
    let g = common::repo(GOLDEN);
    let run = verify(&g, &["--atol", "0", "--json"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["pass"], serde_json::Value::Bool(false));
    assert_eq!(report["first_divergent_cell"], "cell_output/cell_stem_0");
}
