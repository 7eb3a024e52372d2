//! End-to-end tests of `classify` and `eval` at dataset scale: stable order, bad photos mid
//! stream, shards that cover the list once, resuming an interrupted run, ground-truth files
//! with bad lines, and the merge of shard reports.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SHIPPED: [&str; 5] = [
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
];

fn amoeba(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_amoeba"))
        .args(args)
        .env("AMOEBA_CACHE_DIR", "")
        .output()
        .expect("runs")
}

fn module() -> String {
    common::repo(common::FIXTURE_MODULE).display().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// `count` photos in `dir` (the shipped ones under numbered names), returned in name order.
fn photo_folder(dir: &Path, count: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..count)
        .map(|i| {
            let name = SHIPPED[i % SHIPPED.len()];
            let ext = Path::new(name).extension().unwrap().to_str().unwrap();
            let path = dir.join(format!("p{i:03}.{ext}"));
            std::fs::copy(common::repo("fixtures/preprocess").join(name), &path).unwrap();
            path
        })
        .collect()
}

fn write_list(path: &Path, photos: &[PathBuf]) {
    let text: String = photos
        .iter()
        .map(|p| format!("{}\n", p.display()))
        .collect();
    std::fs::write(path, text).unwrap();
}

fn images_of(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["image"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn folders_are_taken_in_sorted_order_and_lists_in_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(&dir.path().join("set"), 7);
    let nested = dir.path().join("set/sub/a.png");
    std::fs::create_dir_all(nested.parent().unwrap()).unwrap();
    std::fs::copy(&photos[0], &nested).unwrap();
    std::fs::write(dir.path().join("set/readme.txt"), "not a photo").unwrap();
    let set = dir.path().join("set").display().to_string();
    let out = amoeba(&["classify", &module(), &set, "--json", "--batch", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut want: Vec<String> = photos.iter().map(|p| p.display().to_string()).collect();
    want.push(nested.display().to_string());
    assert_eq!(images_of(&lines(&out.stdout)), want);

    let list = dir.path().join("list.txt");
    let reversed: Vec<PathBuf> = photos.iter().rev().cloned().collect();
    write_list(&list, &reversed);
    let out = amoeba(&[
        "classify",
        &module(),
        "--list",
        list.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let want: Vec<String> = reversed.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(images_of(&lines(&out.stdout)), want);
}

#[test]
fn a_bad_photo_mid_stream_is_reported_and_the_rest_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut photos = photo_folder(dir.path(), 6);
    std::fs::write(&photos[2], b"not a picture").unwrap();
    photos.insert(4, dir.path().join("gone.jpg"));
    let list = dir.path().join("list.txt");
    write_list(&list, &photos);
    let out = amoeba(&[
        "classify",
        &module(),
        "--list",
        list.to_str().unwrap(),
        "--json",
        "--batch",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2), "a failed photo exits 2");
    let records = lines(&out.stdout);
    assert_eq!(records.len(), 7, "every photo has a line, in order");
    for (i, r) in records.iter().enumerate() {
        let failed = i == 2 || i == 4;
        assert_eq!(r["error"].is_string(), failed, "{r}");
        assert_eq!(
            r["top"].as_array().map(Vec::len),
            (!failed).then_some(5),
            "{r}"
        );
    }
    let err = stderr(&out);
    assert!(
        err.contains("p002.png") && err.contains("gone.jpg"),
        "{err}"
    );
}

#[test]
fn shards_cover_the_list_once_and_concatenate_to_the_whole_run() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(dir.path(), 10);
    let list = dir.path().join("list.txt");
    write_list(&list, &photos);
    let list = list.to_str().unwrap();
    let whole = amoeba(&[
        "classify",
        &module(),
        "--list",
        list,
        "--json",
        "--batch",
        "4",
    ]);
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
    let mut joined = Vec::new();
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = amoeba(&[
            "classify",
            &module(),
            "--list",
            list,
            "--json",
            "--shard",
            &shard,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        joined.extend(out.stdout);
    }
    // Byte for byte: the same photos in the same order with the same results, whatever
    // the batch each photo ran in.
    assert_eq!(
        String::from_utf8_lossy(&joined),
        String::from_utf8_lossy(&whole.stdout)
    );
    let (code, err) =
        common::amoeba_stderr(&["classify", &module(), "--list", list, "--shard", "4/3"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("shard `4/3`: K out of range"), "{err}");
}

#[test]
fn an_interrupted_run_resumes_without_repeating_a_photo() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(&dir.path().join("set"), 9);
    let set = dir.path().join("set").display().to_string();
    let full = dir.path().join("full.jsonl");
    let out = amoeba(&[
        "classify",
        &module(),
        &set,
        "-o",
        full.to_str().unwrap(),
        "--batch",
        "4",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "results go to the file");
    let text = std::fs::read_to_string(&full).unwrap();
    assert_eq!(text.lines().count(), photos.len());

    // As if killed while writing the fourth line.
    let cut: Vec<&str> = text.split_inclusive('\n').collect();
    let partial = format!("{}{}", cut[..3].concat(), &cut[3][..cut[3].len() / 2]);
    let resumed = dir.path().join("resumed.jsonl");
    std::fs::write(&resumed, partial).unwrap();
    let resumed_arg = resumed.to_str().unwrap();
    let out = amoeba(&["classify", &module(), &set, "-o", resumed_arg]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an existing file needs --resume"
    );
    assert!(
        stderr(&out).contains("exists; pass --resume"),
        "{}",
        stderr(&out)
    );

    let out = amoeba(&["classify", &module(), &set, "-o", resumed_arg, "--resume"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3 of 9 photos already done, 6 to go"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&resumed).unwrap(), text);

    // A results file of other photos is refused, naming the line.
    let other = photo_folder(&dir.path().join("other"), 2);
    let out = amoeba(&[
        "classify",
        &module(),
        other[0].to_str().unwrap(),
        "-o",
        resumed_arg,
        "--resume",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("line 1: photo"), "{}", stderr(&out));
}

/// Labels for `photos` from their predicted top-5 (1001 classes: class = index): photo 0
/// labelled with its top-1, photo 1 with its third class, photo 2 with a class outside its
/// top 5, and so on.
fn labels_from_predictions(dir: &Path, photos: &[PathBuf]) -> (PathBuf, usize, usize) {
    let paths: Vec<&str> = photos.iter().map(|p| p.to_str().unwrap()).collect();
    let mut args = vec!["classify", "--json"];
    let m = module();
    args.push(&m);
    args.extend(&paths);
    let out = amoeba(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (mut top1, mut top5) = (0, 0);
    let mut text = String::from("# filename class\n");
    for (i, r) in lines(&out.stdout).iter().enumerate() {
        let top: Vec<u64> = r["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["index"].as_u64().unwrap())
            .collect();
        let class = match i % 3 {
            0 => {
                top1 += 1;
                top5 += 1;
                top[0]
            }
            1 => {
                top5 += 1;
                top[2]
            }
            _ => (1..=1000).find(|c| !top.contains(c)).unwrap(),
        };
        let name = photos[i].file_name().unwrap().to_str().unwrap();
        // Half by index, half by WordNet id.
        if i % 2 == 0 {
            text += &format!("{name} {class}\n");
        } else {
            let synsets = std::fs::read_to_string(common::repo(
                "crates/preprocess/data/imagenet_synsets.txt",
            ))
            .unwrap();
            let wnid = synsets.lines().nth(class as usize - 1).unwrap().to_string();
            text += &format!("{name}\t{wnid}\n");
        }
    }
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, text).unwrap();
    (labels, top1, top5)
}

#[test]
fn eval_counts_against_labels_and_shard_reports_merge_to_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(&dir.path().join("set"), 8);
    let (labels, top1, top5) = labels_from_predictions(dir.path(), &photos);
    let set = dir.path().join("set").display().to_string();
    let labels = labels.to_str().unwrap();
    let whole = amoeba(&["eval", &module(), &set, "--labels", labels, "--json"]);
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
    let report: serde_json::Value =
        serde_json::from_slice(&whole.stdout).expect("one JSON document");
    assert_eq!(report["tally"]["images"], 8);
    assert_eq!(report["tally"]["top1"], top1 as u64);
    assert_eq!(report["tally"]["top5"], top5 as u64);
    assert_eq!(report["summary"]["top1_accuracy"], top1 as f64 / 8.0);

    let mut reports = Vec::new();
    for k in 1..=3 {
        let path = dir.path().join(format!("shard{k}.json"));
        let shard = format!("{k}/3");
        let out = amoeba(&[
            "eval",
            &module(),
            &set,
            "--labels",
            labels,
            "--shard",
            &shard,
            "--report",
            path.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("top-1 "),
            "text summary"
        );
        reports.push(path.display().to_string());
    }
    let mut args = vec!["eval-merge", "--json"];
    args.extend(reports.iter().map(String::as_str));
    let merged = amoeba(&args);
    assert_eq!(merged.status.code(), Some(0), "{}", stderr(&merged));
    let merged: serde_json::Value = serde_json::from_slice(&merged.stdout).unwrap();
    assert_eq!(merged["tally"], report["tally"]);
    assert_eq!(merged["shards"], serde_json::json!([1, 2, 3]));

    let (code, err) = common::amoeba_stderr(&["eval-merge", &reports[0], &reports[2]]);
    assert_eq!(code, Some(2));
    assert!(err.contains("shards missing: 2 of 3"), "{err}");
    let (code, err) = common::amoeba_stderr(&[
        "eval-merge",
        &reports[0],
        &reports[1],
        &reports[1],
        &reports[2],
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("shard 2/3 is also in"), "{err}");
}

#[test]
fn an_interrupted_eval_resumes_to_the_same_counts() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(&dir.path().join("set"), 7);
    let (labels, _, _) = labels_from_predictions(dir.path(), &photos);
    let set = dir.path().join("set").display().to_string();
    let labels = labels.to_str().unwrap();
    let records = dir.path().join("records.jsonl");
    let rec = records.to_str().unwrap();
    let whole = amoeba(&[
        "eval",
        &module(),
        &set,
        "--labels",
        labels,
        "--json",
        "-o",
        rec,
    ]);
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
    let text = std::fs::read_to_string(&records).unwrap();
    let first: Vec<&str> = text.split_inclusive('\n').take(4).collect();
    std::fs::write(&records, first.concat()).unwrap();
    let resumed = amoeba(&[
        "eval",
        &module(),
        &set,
        "--labels",
        labels,
        "--json",
        "-o",
        rec,
        "--resume",
    ]);
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    let a: serde_json::Value = serde_json::from_slice(&whole.stdout).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(a["tally"], b["tally"]);
    assert_eq!(b["timed_images"], 3, "only the photos left were run");
    assert_eq!(std::fs::read_to_string(&records).unwrap(), text);
}

#[test]
fn ground_truth_with_bad_lines_or_gaps_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(&dir.path().join("set"), 3);
    let set = dir.path().join("set").display().to_string();
    let labels = dir.path().join("labels.txt");
    let cases = [
        ("p000.png 5\np001.png\n", "line 2: `p001.png` has no class"),
        (
            "p000.png 5\np001.png 0\n",
            "line 2: class `0` is out of range",
        ),
        (
            "p000.png n12345678\n",
            "line 1: `n12345678` is not one of the 1000",
        ),
        (
            "p000.png 5\n\np000.png 6\n",
            "line 3: `p000.png` is labelled again (first on line 1)",
        ),
        (
            "p000.png 5\np001.png 6\n",
            "no label for 1 of the 3 photos (first: p002.png)",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(&labels, text).unwrap();
        let out = amoeba(&[
            "eval",
            &module(),
            &set,
            "--labels",
            labels.to_str().unwrap(),
            "-o",
            dir.path().join("r.jsonl").to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{}", labels.display())) && err.contains(want),
            "{err}"
        );
        assert!(!dir.path().join("r.jsonl").exists(), "nothing written");
    }
    assert_eq!(photos.len(), 3);
}

#[test]
fn a_feature_vector_module_streams_features_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(&dir.path().join("set"), 5);
    std::fs::write(&photos[1], b"broken").unwrap();
    let features = dir.path().join("f.safetensors");
    let fv = common::repo("fixtures/modules/amoebanet_a_n3_f8_feature_vector");
    let out = amoeba(&[
        "classify",
        fv.to_str().unwrap(),
        dir.path().join("set").to_str().unwrap(),
        "--features",
        features.to_str().unwrap(),
        "--batch",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let bytes = std::fs::read(&features).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        st.tensor("features").unwrap().shape()[0],
        4,
        "the broken photo has no row"
    );
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let images: Vec<String> =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["images"]).unwrap();
    assert_eq!(images.len(), 4);
    assert!(!images.iter().any(|i| i.ends_with("p001.png")));
}

#[test]
fn a_model_of_its_own_classes_is_scored_by_0_based_index() {
    let dir = tempfile::tempdir().unwrap();
    photo_folder(&dir.path().join("set"), 2);
    let set = dir.path().join("set").display().to_string();
    let ten = common::repo("fixtures/modules/amoebanet_c_n3_f8_224")
        .display()
        .to_string();
    let out = amoeba(&["classify", &ten, &set, "--json", "--top", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let top: Vec<u64> = lines(&out.stdout)
        .iter()
        .map(|r| r["top"][0]["index"].as_u64().unwrap())
        .collect();
    let labels = dir.path().join("labels.txt");
    std::fs::write(
        &labels,
        format!("p000.png {}\np001.png {}\n", top[0], (top[1] + 1) % 10),
    )
    .unwrap();
    let out = amoeba(&[
        "eval",
        &ten,
        &set,
        "--labels",
        labels.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["num_classes"], 10);
    assert_eq!(report["tally"]["top1"], 1);
    std::fs::write(&labels, "p000.png n01440764\np001.png 10\n").unwrap();
    let (code, err) =
        common::amoeba_stderr(&["eval", &ten, &set, "--labels", labels.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("line 1: a WordNet id, but the model has 10 classes"),
        "{err}"
    );
}

#[test]
fn outputs_that_are_one_file_or_one_of_the_photos_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(&dir.path().join("set"), 2);
    let set = dir.path().join("set").display().to_string();
    let same = dir.path().join("out").display().to_string();
    let (code, err) = common::amoeba_stderr(&[
        "classify",
        &module(),
        &set,
        "-o",
        &same,
        "--features",
        &same,
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("named as both -o and --features"), "{err}");
    let labels = dir.path().join("labels.txt");
    std::fs::write(&labels, "p000.png 1\np001.jpg 2\n").unwrap();
    let (code, err) = common::amoeba_stderr(&[
        "eval",
        &module(),
        &set,
        "--labels",
        labels.to_str().unwrap(),
        "-o",
        &same,
        "--report",
        &same,
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("named as both -o and --report"), "{err}");
    // A photo named only in a list is an input too.
    let list = dir.path().join("list.txt");
    write_list(&list, &photos);
    let before = std::fs::read(&photos[0]).unwrap();
    let (code, err) = common::amoeba_stderr(&[
        "classify",
        &module(),
        "--list",
        list.to_str().unwrap(),
        "--features",
        photos[0].to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("p000.png"), "{err}");
    assert_eq!(
        std::fs::read(&photos[0]).unwrap(),
        before,
        "the photo is untouched"
    );
    assert!(!Path::new(&same).exists());
}

#[test]
fn a_refused_run_creates_no_results_file() {
    let dir = tempfile::tempdir().unwrap();
    photo_folder(&dir.path().join("set"), 1);
    let results = dir.path().join("r.jsonl");
    let fv = common::repo("fixtures/modules/amoebanet_a_n3_f8_feature_vector");
    let (code, err) = common::amoeba_stderr(&[
        "classify",
        fv.to_str().unwrap(),
        dir.path().join("set").to_str().unwrap(),
        "-o",
        results.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("feature-vector module"), "{err}");
    assert!(!results.exists(), "nothing written");
}

#[test]
fn eval_does_not_resume_from_classify_records() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photo_folder(&dir.path().join("set"), 3);
    let set = dir.path().join("set").display().to_string();
    let records = dir.path().join("r.jsonl");
    let rec = records.to_str().unwrap();
    let out = amoeba(&["classify", &module(), &set, "--top", "1", "-o", rec]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (labels, _, _) = labels_from_predictions(dir.path(), &photos);
    let (code, err) = common::amoeba_stderr(&[
        "eval",
        &module(),
        &set,
        "--labels",
        labels.to_str().unwrap(),
        "-o",
        rec,
        "--resume",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("is not recorded as eval records are"), "{err}");
}
