//! End-to-end tests of `amoeba classify`: real photos against TensorFlow's golden logits
//! and features, and every per-photo error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PHOTOS: [&str; 4] = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"];

fn amoeba(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(args)
        .output()
        .expect("runs")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn photo(name: &str) -> String {
    repo()
        .join("fixtures/preprocess")
        .join(name)
        .display()
        .to_string()
}

fn conformance() -> PathBuf {
    let p = repo().join("fixtures/conformance");
    assert!(
        p.is_dir(),
        "conformance data missing at fixtures/conformance (committed with the repository)"
    );
    p
}

fn conformance_module() -> String {
    conformance()
        .join("amoebanet_a_n6_f16")
        .display()
        .to_string()
}

fn small_module(name: &str) -> String {
    repo()
        .join("fixtures/modules")
        .join(name)
        .display()
        .to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A float32 tensor from a safetensors file, with its shape.
fn read_f32(path: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(path).expect("readable");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid safetensors");
    let view = st.tensor(name).expect("tensor present");
    let data = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (data, view.shape().to_vec())
}

fn metadata(path: &Path) -> std::collections::HashMap<String, String> {
    let bytes = std::fs::read(path).expect("readable");
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("valid header");
    meta.metadata().clone().unwrap_or_default()
}

/// The class indices of `--json` output's `top`, for each photo.
/// `--json` output: one JSON object per line.
fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line one JSON object"))
        .collect()
}

fn top_indices(json: &[serde_json::Value]) -> Vec<Vec<usize>> {
    json.iter()
        .map(|item| {
            item["top"]
                .as_array()
                .expect("top list")
                .iter()
                .map(|t| t["index"].as_u64().expect("index") as usize)
                .collect()
        })
        .collect()
}

/// Indices of the 5 largest logits, largest first.
fn golden_top5(logits: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    idx.truncate(5);
    idx
}

#[test]
fn conformance_photos_get_the_golden_top5_and_features() {
    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("features.safetensors");
    let photos: Vec<String> = PHOTOS.iter().map(|p| photo(p)).collect();
    let mut args = vec!["classify", "--json", "--batch", "3"];
    let module = conformance_module();
    args.push(&module);
    args.extend(photos.iter().map(String::as_str));
    args.extend(["--features", features.to_str().unwrap()]);
    let out = amoeba(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json = json_lines(&out.stdout);

    let golden = conformance().join("amoebanet_a_n6_f16.golden.safetensors");
    assert_eq!(
        metadata(&golden)["photos"],
        "astronaut.png,chelsea.png,coffee.png,rocket.jpg,uniform-noise"
    );
    let (logits, shape) = read_f32(&golden, "logits");
    let classes = shape[1];
    for (i, ours) in top_indices(&json).iter().enumerate() {
        let theirs = &logits[i * classes..(i + 1) * classes];
        let want = golden_top5(theirs);
        // Same classes, same ranks; a swap is only tolerated between classes whose golden
        // logits tie to within float noise.
        for (rank, (&o, &w)) in ours.iter().zip(&want).enumerate() {
            assert!(
                o == w || (theirs[o] - theirs[w]).abs() < 1e-4,
                "{}: rank {rank}: ours {ours:?}, TF {want:?}",
                PHOTOS[i]
            );
        }
        let mut sorted = (ours.clone(), want.clone());
        sorted.0.sort_unstable();
        sorted.1.sort_unstable();
        assert_eq!(sorted.0, sorted.1, "{}", PHOTOS[i]);
        assert_eq!(json[i]["image"], photos[i]);
    }

    let (ours, shape) = read_f32(&features, "features");
    let (theirs, golden_shape) = read_f32(&golden, "features");
    assert_eq!(shape, vec![4, golden_shape[1]]);
    let diff = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-3, "features differ from TF by {diff}");
    let names: Vec<String> = serde_json::from_str(&metadata(&features)["images"]).unwrap();
    assert_eq!(names, photos);
}

#[test]
fn text_output_lists_top_k_labels_per_photo() {
    let out = amoeba(&[
        "classify",
        &small_module("amoebanet_a_n3_f8"),
        &photo("camera.png"),
        &photo("chelsea.png"),
        "--top",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 8, "{stdout}");
    assert!(lines[0].ends_with("camera.png"), "{stdout}");
    assert!(lines[4].ends_with("chelsea.png"), "{stdout}");
    // "  0.1234  label (index)"
    assert!(
        lines[1].starts_with("  0.") && lines[1].ends_with(')'),
        "{stdout}"
    );
}

/// A PNG whose header claims `width`×`height` pixels, with a valid CRC and no pixel data.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn bad_photos_are_named_and_skipped_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let garbage = dir.path().join("notes.png");
    std::fs::write(&garbage, b"these are notes, not a picture").unwrap();
    let huge = dir.path().join("huge.png");
    std::fs::write(&huge, png_header(100_000, 100_000)).unwrap();
    let truncated = dir.path().join("truncated.jpg");
    let rocket = std::fs::read(photo("rocket.jpg")).unwrap();
    std::fs::write(&truncated, &rocket[..rocket.len() / 2]).unwrap();
    let broken_png = dir.path().join("broken.png");
    let mut header_only = png_header(64, 64);
    header_only.extend(b"\0\0\0\0IEND\xaeB`\x82");
    std::fs::write(&broken_png, header_only).unwrap();
    let missing = dir.path().join("missing.jpg");

    let paths = [&empty, &garbage, &huge, &truncated, &broken_png, &missing];
    let mut args = vec![
        "classify".to_string(),
        small_module("amoebanet_a_n3_f8"),
        photo("chelsea.png"),
    ];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    args.push(photo("coffee.png"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = amoeba(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");

    let expect = [
        (&empty, "empty file"),
        (&garbage, "not a JPEG or PNG"),
        (&huge, "over the limit"),
        (&truncated, "truncated"),
        (&broken_png, "cannot decode"),
        (&missing, "cannot read"),
    ];
    for (path, what) in expect {
        let line = err
            .lines()
            .find(|l| l.contains(&path.display().to_string()))
            .unwrap_or_else(|| panic!("no error naming {}: {err}", path.display()));
        assert!(line.contains(what), "{line}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("chelsea.png\n") && stdout.contains("coffee.png\n"),
        "{stdout}"
    );
}

#[test]
fn pixel_limit_is_configurable() {
    let out = amoeba(&[
        "classify",
        &small_module("amoebanet_a_n3_f8"),
        &photo("chelsea.png"),
        "--max-pixels",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("chelsea.png") && err.contains("451x300"),
        "{err}"
    );
}

#[test]
fn feature_vector_module_needs_features_flag() {
    let module = small_module("amoebanet_a_n3_f8_feature_vector");
    let out = amoeba(&["classify", &module, &photo("coffee.png")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--features"), "{}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("f.safetensors");
    let out = amoeba(&[
        "classify",
        &module,
        &photo("coffee.png"),
        "--features",
        features.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (ours, shape) = read_f32(&features, "features");
    assert_eq!(shape[0], 1);
    // The fixture's golden was computed by TF on coffee.png preprocessed by TF.
    let golden =
        repo().join("fixtures/goldens/amoebanet_a_n3_f8_feature_vector.golden.safetensors");
    let (theirs, golden_shape) = read_f32(&golden, "features");
    assert_eq!(shape[1], golden_shape[1]);
    let diff = ours
        .iter()
        .zip(&theirs[..shape[1]])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-3, "features differ from TF by {diff}");
}
