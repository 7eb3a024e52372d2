//! `amoeba classify` against hostile photos and outputs: a FIFO among good photos, a file
//! name that is not UTF-8, CMYK and YCCK JPEGs, a closed or full stdout.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn module() -> String {
    common::repo(common::FIXTURE_MODULE).display().to_string()
}

fn photo(name: &str) -> PathBuf {
    common::repo("fixtures/preprocess").join(name)
}

fn cmyk_photo(name: &str) -> PathBuf {
    common::repo("crates/preprocess/tests/data").join(name)
}

fn amoeba(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("runs")
}

/// Runs `amoeba`, killing it if it has not finished within `limit` (a hang is a failure).
fn amoeba_within(args: &[&OsStr], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let start = Instant::now();
    while child.try_wait().expect("waits").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("amoeba did not finish within {limit:?} (blocked on a FIFO?)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

/// `--json` output: JSON Lines, one object per photo.
fn json(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a line of stdout is not JSON ({e}): {line}"))
        })
        .collect()
}

#[test]
fn a_fifo_among_good_photos_is_named_and_the_others_classified() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("pipe.jpg");
    mkfifo(&fifo);
    let (good1, good2) = (photo("chelsea.png"), photo("rocket.jpg"));
    let model = module();
    let args: [&OsStr; 7] = [
        "classify".as_ref(),
        model.as_ref(),
        good1.as_os_str(),
        fifo.as_os_str(),
        good2.as_os_str(),
        "--json".as_ref(),
        "--top=2".as_ref(),
    ];
    let out = amoeba_within(&args, Duration::from_secs(300));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}: ", fifo.display())) && err.contains("FIFO"),
        "{err}"
    );
    let items = json(&out);
    assert_eq!(items.len(), 3);
    for (item, path) in items.iter().zip([&good1, &fifo, &good2]) {
        assert_eq!(item["image"], path.display().to_string());
    }
    assert_eq!(
        items[0]["top"].as_array().map(Vec::len),
        Some(2),
        "{:?}",
        items[0]
    );
    assert_eq!(
        items[2]["top"].as_array().map(Vec::len),
        Some(2),
        "{:?}",
        items[2]
    );
    assert!(items[1]["error"]
        .as_str()
        .is_some_and(|e| e.contains("FIFO")));
}

#[test]
fn a_non_utf8_file_name_gives_valid_json_and_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = OsStr::from_bytes(b"caf\xe9\xff\nfake.png");
    let path = dir.path().join(name);
    std::fs::copy(photo("coffee.png"), &path).expect("copied");
    let model = module();
    let out = amoeba(&[
        "classify".as_ref(),
        model.as_ref(),
        path.as_os_str(),
        "--json".as_ref(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let items = json(&out);
    assert_eq!(items.len(), 1);
    let image = items[0]["image"].as_str().expect("the path as a string");
    assert!(
        image.ends_with("caf\u{FFFD}\u{FFFD}\nfake.png"),
        "{image:?}"
    );
    assert_eq!(items[0]["top"].as_array().map(Vec::len), Some(5));

    let out = amoeba(&["classify".as_ref(), model.as_ref(), path.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).expect("text output is UTF-8");
    let first = text.lines().next().unwrap_or_default();
    // The newline in the name is escaped: the name stays on its own line, above 5 results.
    assert!(
        first.ends_with("caf\u{FFFD}\u{FFFD}\\u{a}fake.png"),
        "{first:?}"
    );
    assert_eq!(text.lines().count(), 6, "{text}");
}

#[test]
fn cmyk_and_ycck_jpegs_are_classified() {
    let model = module();
    let photos = [
        cmyk_photo("cmyk_adobe.jpg"),
        cmyk_photo("ycck_adobe.jpg"),
        cmyk_photo("cmyk_plain.jpg"),
    ];
    let mut args: Vec<&OsStr> = vec!["classify".as_ref(), model.as_ref(), "--json".as_ref()];
    args.extend(photos.iter().map(|p| p.as_os_str()));
    let out = amoeba(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let items = json(&out);
    assert_eq!(items.len(), 3);
    for item in &items {
        let top = item["top"].as_array().expect("labels");
        assert_eq!(top.len(), 5, "{item:?}");
        assert!(top.iter().all(|t| t["probability"]
            .as_f64()
            .is_some_and(|p| (0.0..=1.0).contains(&p))));
    }
}

#[test]
fn a_full_stdout_is_an_error_not_a_panic() {
    let model = module();
    let good = photo("chelsea.png");
    for json_flag in [false, true] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_amoeba"));
        command.args([OsStr::new("classify"), model.as_ref(), good.as_os_str()]);
        if json_flag {
            command.arg("--json");
        }
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let out = command
            .stdout(full)
            .stderr(Stdio::piped())
            .output()
            .expect("runs");
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("No space left on device"), "{err}");
    }
}

#[test]
fn a_closed_stdout_does_not_panic() {
    let model = module();
    let good = photo("chelsea.png");
    let mut child = Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args([
            OsStr::new("classify"),
            model.as_ref(),
            good.as_os_str(),
            good.as_os_str(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    // Close the reading end before anything is written: every write gets EPIPE.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("finishes");
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    // Rust ignores SIGPIPE, so the write fails with BrokenPipe, which main ends quietly
    // (exit 0) once the lead's central handling is in; until then it is a clean error.
    assert!(
        matches!(out.status.code(), Some(0) | Some(2)),
        "{:?} {err}",
        out.status
    );
}
