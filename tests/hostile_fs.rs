//! Hostile file-system situations through the binary (issue 14): FIFOs and devices where
//! files are expected, outputs aimed at inputs or special files, closed and full standard
//! output, signals during archive extraction and conversion. Every case must end with a
//! clear message and the documented exit code, never hang (each run is killed after 60 s
//! and the test fails), and leave nothing behind.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{copy_fixture_module, repo, FIXTURE_MODULE};

const ARCHIVE: &str = "fixtures/modules/amoebanet_a_n3_f8.tar.gz";
const TIMEOUT: Duration = Duration::from_secs(60);

struct Run {
    code: Option<i32>,
    stderr: String,
}

/// Runs `amoeba ARGS` (stdin closed), killing it and failing the test after [`TIMEOUT`].
fn amoeba(args: &[&str]) -> Run {
    amoeba_in(args, |_| {})
}

fn amoeba_in(args: &[&str], setup: impl FnOnce(&mut Command)) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_amoeba"));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    setup(&mut command);
    let mut child = command.spawn().unwrap();
    // Standard output is drained (so the child never blocks on a full pipe) and dropped.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(out) = stdout.as_mut() {
            let _ = out.read_to_string(&mut text);
        }
        text
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("amoeba {args:?} hung for {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stderr: {
            let _ = out_reader.join();
            reader.join().unwrap()
        },
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Exit code 2, no panic, and a message containing every fragment (case-insensitive).
fn assert_refused(run: &Run, fragments: &[&str]) {
    assert!(!run.stderr.contains("panicked"), "panic: {}", run.stderr);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let lower = run.stderr.to_lowercase();
    for f in fragments {
        assert!(
            lower.contains(&f.to_lowercase()),
            "message lacks {f:?}: {}",
            run.stderr
        );
    }
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// Replaces `path` (a file) with a FIFO of the same name.
fn replace_with_fifo(path: &Path) {
    std::fs::remove_file(path).unwrap();
    mkfifo(path);
}

fn converted(dir: &Path) -> PathBuf {
    let out = dir.join("m.safetensors");
    let run = amoeba(&["convert", s(&repo(FIXTURE_MODULE)), "-o", s(&out)]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    out
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---- FIFOs where a file is read ------------------------------------------------------------

#[test]
fn a_fifo_in_place_of_any_module_file_is_refused_without_hanging() {
    for (rel, fragment) in [
        (
            "variables/variables.data-00000-of-00001",
            "variables.data-00000-of-00001",
        ),
        ("variables/variables.index", "variables.index"),
        ("tfhub_module.pb", "tfhub_module.pb"),
        ("saved_model.pb", "saved_model.pb"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let module = copy_fixture_module(tmp.path());
        replace_with_fifo(&module.join(rel));
        for command in ["inspect", "convert"] {
            let out = tmp.path().join("out.safetensors");
            let args: Vec<&str> = match command {
                "inspect" => vec!["inspect", s(&module)],
                _ => vec!["convert", s(&module), "-o", s(&out)],
            };
            let run = amoeba(&args);
            assert_refused(&run, &[fragment]);
            assert!(!out.exists());
        }
    }
}

#[test]
fn fifo_models_inputs_and_archives_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("pipe.safetensors");
    mkfifo(&model);
    assert_refused(
        &amoeba(&["genotype", s(&model)]),
        &["pipe.safetensors", "FIFO"],
    );

    let archive = tmp.path().join("pipe.tar.gz");
    mkfifo(&archive);
    assert_refused(&amoeba(&["inspect", s(&archive)]), &["pipe.tar.gz"]);

    let input = tmp.path().join("images.safetensors");
    mkfifo(&input);
    let out = tmp.path().join("out.safetensors");
    let run = amoeba(&[
        "run",
        s(&repo(FIXTURE_MODULE)),
        "--input",
        s(&input),
        "-o",
        s(&out),
    ]);
    assert_refused(&run, &["images.safetensors", "FIFO"]);
}

#[test]
fn a_device_as_model_or_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let run = amoeba(&[
        "run",
        s(&repo(FIXTURE_MODULE)),
        "--input",
        "/dev/zero",
        "-o",
        s(&out),
    ]);
    assert_refused(&run, &["/dev/zero", "device"]);
}

// ---- outputs -------------------------------------------------------------------------------

#[test]
fn convert_into_the_module_itself_is_refused_and_the_module_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_fixture_module(tmp.path());
    let index = module.join("variables/variables.index");
    let before = std::fs::read(&index).unwrap();
    let run = amoeba(&["convert", s(&module), "-o", s(&index)]);
    assert_refused(&run, &["variables.index", "input"]);
    assert_eq!(std::fs::read(&index).unwrap(), before);
    let inside = module.join("new.safetensors");
    assert_refused(
        &amoeba(&["convert", s(&module), "-o", s(&inside)]),
        &["inside the input folder"],
    );
    assert!(!inside.exists());
    assert_eq!(
        entries(&module),
        ["saved_model.pb", "tfhub_module.pb", "variables"]
    );
}

#[test]
fn an_output_over_its_own_model_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let model = converted(tmp.path());
    let before = std::fs::read(&model).unwrap();
    let run = amoeba(&["genotype", s(&model), "--format", "svg", "-o", s(&model)]);
    assert_refused(&run, &["m.safetensors", "input"]);
    let run = amoeba(&["convert", s(&model), "-o", s(&model)]);
    assert_refused(&run, &["m.safetensors", "input"]);
    assert_eq!(std::fs::read(&model).unwrap(), before);
    // A hard link to the model is the same file under another name.
    let link = tmp.path().join("link.safetensors");
    std::fs::hard_link(&model, &link).unwrap();
    assert_refused(&amoeba(&["convert", s(&model), "-o", s(&link)]), &["input"]);
    assert_eq!(std::fs::read(&model).unwrap(), before);
}

#[test]
fn special_files_are_never_replaced_by_an_output() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("out.fifo");
    mkfifo(&fifo);
    let module = repo(FIXTURE_MODULE);
    for target in [s(&fifo), "/dev/null"] {
        let run = amoeba(&["convert", s(&module), "-o", target]);
        assert_refused(&run, &[target, "regular file"]);
        let run = amoeba(&["genotype", s(&module), "--format", "dot", "-o", target]);
        assert_refused(&run, &[target]);
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert_eq!(entries(tmp.path()), ["out.fifo"], "no temporary file left");
}

#[test]
fn outputs_get_the_umask_mode_not_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("m.safetensors");
    let dot = tmp.path().join("m.dot");
    let module = repo(FIXTURE_MODULE);
    // `sh -c 'umask 027; exec amoeba …'` sets the child's umask without touching ours.
    for (umask, args, file) in [
        ("022", vec!["convert", s(&module), "-o", s(&out)], &out),
        (
            "027",
            vec!["genotype", s(&module), "--format", "dot", "-o", s(&dot)],
            &dot,
        ),
    ] {
        let script = format!("umask {umask}; exec \"$0\" \"$@\"");
        let status = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(env!("CARGO_BIN_EXE_amoeba"))
            .args(&args)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        let want = 0o666 & !u32::from_str_radix(umask, 8).unwrap();
        assert_eq!(mode, want, "{file:?} with umask {umask}");
    }
}

// ---- standard output -----------------------------------------------------------------------

#[test]
fn a_closed_stdout_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let module = repo(FIXTURE_MODULE);
    let out = tmp.path().join("m.safetensors");
    let cases: Vec<Vec<&str>> = vec![
        vec!["inspect", s(&module), "--json", "--variables"],
        vec!["inspect", s(&module)],
        vec!["genotype", s(&module), "--format", "svg"],
        vec!["convert", s(&module), "-o", s(&out)],
    ];
    for args in &cases {
        // The read end is closed before the child writes anything.
        let mut child = Command::new(env!("CARGO_BIN_EXE_amoeba"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    assert!(out.exists(), "convert still wrote its output");
}

#[test]
fn a_full_stdout_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let module = repo(FIXTURE_MODULE);
    let out = tmp.path().join("m.safetensors");
    for args in [
        vec!["inspect", s(&module), "--json"],
        vec!["genotype", s(&module)],
        vec!["convert", s(&module), "-o", s(&out)],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let run = amoeba_in(&args, |c| {
            c.stdout(full);
        });
        assert_refused(&run, &["standard output", "no space"]);
    }
}

// ---- signals -------------------------------------------------------------------------------

#[test]
fn signals_during_archive_extraction_leave_no_extracted_folder() {
    let archive = repo(ARCHIVE);
    for (signal, delay_ms) in [
        ("TERM", 0u64),
        ("INT", 3),
        ("TERM", 10),
        ("HUP", 25),
        ("ABRT", 40),
        ("INT", 60),
    ] {
        let tmpdir = tempfile::tempdir().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_amoeba"))
            .args(["inspect", "--check", s(&archive)])
            .env("TMPDIR", tmpdir.path())
            .env("AMOEBA_CACHE_DIR", "")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            output.status.success()
                || output.status.code() == Some(2)
                || output.status.code().is_none(),
            "SIG{signal} after {delay_ms} ms: {:?} {stderr}",
            output.status
        );
        if output.status.code() == Some(2) {
            assert!(stderr.contains(&format!("SIG{signal}")), "{stderr}");
        }
        assert_eq!(
            entries(tmpdir.path()),
            Vec::<String>::new(),
            "SIG{signal} after {delay_ms} ms left files in TMPDIR ({:?})",
            output.status
        );
    }
}

#[test]
fn sigterm_during_convert_leaves_nothing() {
    // A conversion that is not interrupted, to compare with.
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = reference_dir.path().join("m.safetensors");
    let status = Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(["convert", s(&repo(ARCHIVE)), "-o", s(&reference), "-q"])
        .env("AMOEBA_CACHE_DIR", "")
        .status()
        .unwrap();
    assert!(status.success());
    let complete = std::fs::read(&reference).unwrap();
    for delay_ms in [0u64, 10, 30, 80] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("m.safetensors");
        let mut child = Command::new(env!("CARGO_BIN_EXE_amoeba"))
            .args(["convert", s(&repo(ARCHIVE)), "-o", s(&out)])
            .env("TMPDIR", tmp.path())
            .env("AMOEBA_CACHE_DIR", "")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        let left = entries(tmp.path());
        // A signal after the rename (the output complete, the process not yet gone) ends the
        // process with the output in place: complete, never partial.
        if status.success() || left == ["m.safetensors"] {
            assert_eq!(left, ["m.safetensors"], "after {delay_ms} ms ({status})");
            assert!(
                std::fs::read(&out).unwrap() == complete,
                "after {delay_ms} ms: complete"
            );
        } else {
            assert_eq!(left, Vec::<String>::new(), "after {delay_ms} ms ({status})");
        }
    }
}

// ---- archives and module files -------------------------------------------------------------

#[test]
fn errors_inside_an_archive_name_the_archive_entry() {
    // An archive whose data shard is missing: the message names `m.tar.gz!/variables/…`,
    // not the temporary folder it was extracted to (which no longer exists).
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_fixture_module(tmp.path());
    std::fs::remove_file(module.join("variables/variables.data-00000-of-00001")).unwrap();
    let archive = tmp.path().join("m.tar.gz");
    let status = Command::new("tar")
        .args(["-czf", s(&archive), "-C", s(&module), "."])
        .status()
        .unwrap();
    assert!(status.success());
    let run = amoeba_in(&["inspect", s(&archive)], |c| {
        c.env("TMPDIR", tmp.path()).env("AMOEBA_CACHE_DIR", "");
    });
    assert_refused(&run, &["m.tar.gz!/variables/variables.data-00000-of-00001"]);
    assert!(!run.stderr.contains("amoeba-module-"), "{}", run.stderr);
}

#[test]
fn a_corrupt_gzip_trailer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(repo(ARCHIVE)).unwrap();
    let n = bytes.len();
    bytes[n - 8] ^= 0xff; // the CRC-32 of the uncompressed data
    let archive = tmp.path().join("crc.tar.gz");
    std::fs::write(&archive, &bytes).unwrap();
    assert_refused(&amoeba(&["inspect", s(&archive)]), &["crc.tar.gz"]);
    bytes[n - 8] ^= 0xff;
    bytes[n - 1] ^= 0x01; // the length modulo 2^32
    std::fs::write(&archive, &bytes).unwrap();
    assert_refused(&amoeba(&["inspect", s(&archive)]), &["crc.tar.gz"]);
}

#[test]
fn a_safetensors_model_naming_a_tensor_twice_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let model = converted(tmp.path());
    let bytes = std::fs::read(&model).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + len]).unwrap();
    // Repeat the first tensor's entry under the same name, keeping the header's length.
    let value: serde_json::Value = serde_json::from_str(header).unwrap();
    let (name, entry) = value
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_str() != "__metadata__")
        .unwrap();
    let repeated = format!(
        "{},{:?}:{}}}",
        header.trim_end().strip_suffix('}').unwrap(),
        name,
        entry
    );
    let mut header = repeated.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut edited = (header.len() as u64).to_le_bytes().to_vec();
    edited.extend_from_slice(&header);
    edited.extend_from_slice(&bytes[8 + len..]);
    let twice = tmp.path().join("twice.safetensors");
    std::fs::write(&twice, edited).unwrap();
    assert_refused(
        &amoeba(&["genotype", s(&twice)]),
        &["twice.safetensors", "twice", name],
    );
}

#[test]
fn an_output_over_a_module_file_reached_through_a_linked_folder_is_refused() {
    // m/variables is a symbolic link to a folder elsewhere: the output path canonicalises
    // outside the module folder, but it is still one of the files the module was read from.
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_fixture_module(tmp.path());
    let elsewhere = tmp.path().join("vars");
    std::fs::rename(module.join("variables"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, module.join("variables")).unwrap();
    let index = module.join("variables/variables.index");
    let before = std::fs::read(&index).unwrap();
    let run = amoeba(&["convert", s(&module), "-o", s(&index)]);
    assert_refused(&run, &["variables.index", "input"]);
    let run = amoeba(&["genotype", s(&module), "-o", s(&index)]);
    assert_refused(&run, &["variables.index", "input"]);
    assert_eq!(std::fs::read(&index).unwrap(), before);
}
