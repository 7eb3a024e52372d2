//! Opening real modules and refusing broken ones.

use hub_module::{HubModule, ModuleError, ModuleFormat};
use std::io::Write;
use std::path::{Path, PathBuf};

fn conformance() -> PathBuf {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/conformance/amoebanet_a_n6_f16");
    assert!(
        p.is_dir(),
        "conformance module missing at fixtures/conformance/amoebanet_a_n6_f16 (committed with the repository)"
    );
    p
}

/// Copies a module folder so tests can damage it.
fn copy_module(src: &Path, dst: &Path) {
    for entry in walk(src) {
        let rel = entry.strip_prefix(src).unwrap();
        let target = dst.join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &target).unwrap();
        let mut perms = std::fs::metadata(&target).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        std::fs::set_permissions(&target, perms).unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn conformance_module_variants_signatures_and_image_size() {
    let module = HubModule::open(&conformance()).unwrap();
    assert_eq!(module.format(), ModuleFormat::HubV3);
    let tags: Vec<String> = module.variants().iter().map(|v| v.tags_text()).collect();
    assert_eq!(tags.len(), 2);
    assert!(
        tags.contains(&"{}".to_string()) && tags.contains(&"{\"train\"}".to_string()),
        "{tags:?}"
    );
    assert_eq!(module.image_size(), Some([331, 331]));
    for variant in module.variants() {
        let mut names: Vec<&str> = variant.signatures.iter().map(|s| s.name.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            ["default", "image_classification", "image_feature_vector"]
        );
        for sig in &variant.signatures {
            let images = sig.input("images").expect("images input");
            assert_eq!(images.dtype, "float");
            assert_eq!(images.shape, Some(vec![-1, 331, 331, 3]));
        }
        let cls = variant.signature("image_classification").unwrap();
        assert_eq!(cls.output("default").unwrap().shape, Some(vec![-1, 1001]));
        let fv = variant.signature("image_feature_vector").unwrap();
        assert_eq!(fv.output("default").unwrap().shape, Some(vec![-1, 256]));
    }
    assert!(module.inference_variant().is_some());
}

#[test]
fn summary_counts_variables() {
    let module = HubModule::open(&conformance()).unwrap();
    let s = module.summary(true);
    assert_eq!(s.num_variables, s.variables.as_ref().unwrap().len());
    assert_eq!(s.num_bytes, s.num_parameters * 4, "all float32");
    assert_eq!(s.dtypes.get("float32"), Some(&s.num_variables));
    let text = s.to_text();
    assert!(text.contains("331x331"), "{text}");
    assert!(text.contains("signature image_classification"), "{text}");
}

#[test]
fn archive_of_the_module_reads_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("module.tar.gz");
    let file = std::fs::File::create(&archive).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    // With a "./" prefix, as the hub's own archives have.
    tar.append_dir_all(".", conformance()).unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    let from_dir = HubModule::open(&conformance()).unwrap();
    let from_tgz = HubModule::open(&archive).unwrap();
    assert_eq!(from_tgz.variants().len(), 2);
    assert_eq!(from_tgz.bundle().len(), from_dir.bundle().len());
    assert_eq!(from_tgz.image_size(), Some([331, 331]));
}

fn err_text(path: &Path) -> String {
    match HubModule::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_path_is_named() {
    let msg = err_text(Path::new("/nonexistent/module"));
    assert!(
        msg.contains("/nonexistent/module") && msg.contains("no such file"),
        "{msg}"
    );
}

#[test]
fn folder_without_saved_model_is_not_a_module() {
    let tmp = tempfile::tempdir().unwrap();
    let msg = err_text(tmp.path());
    assert!(
        msg.contains("not a TF1 Hub module") && msg.contains("saved_model.pb"),
        "{msg}"
    );
}

#[test]
fn unsupported_module_format_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    copy_module(&conformance(), tmp.path());
    std::fs::write(tmp.path().join("tfhub_module.pb"), [0x08, 0x04]).unwrap();
    let msg = err_text(tmp.path());
    assert!(
        msg.contains("tfhub_module.pb") && msg.contains("unsupported hub module format 4"),
        "{msg}"
    );
    // Required features are refused too.
    std::fs::write(
        tmp.path().join("tfhub_module.pb"),
        [0x08, 0x03, 0x12, 0x01, b'x'],
    )
    .unwrap();
    let msg = err_text(tmp.path());
    assert!(msg.contains("required features [x]"), "{msg}");
}

#[test]
fn malformed_saved_model_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    copy_module(&conformance(), tmp.path());
    // A length-delimited field whose length runs past the end.
    std::fs::write(tmp.path().join("saved_model.pb"), [0x12, 0xff, 0x01, 0x00]).unwrap();
    let msg = err_text(tmp.path());
    assert!(
        msg.contains("saved_model.pb") && msg.contains("malformed protobuf"),
        "{msg}"
    );
}

#[test]
fn plain_saved_model_is_told_apart() {
    let tmp = tempfile::tempdir().unwrap();
    copy_module(&conformance(), tmp.path());
    std::fs::remove_file(tmp.path().join("tfhub_module.pb")).unwrap();
    let module = HubModule::open(tmp.path()).unwrap();
    assert_eq!(module.format(), ModuleFormat::SavedModel);
}

/// A tar.gz with one entry whose raw name and type are set by hand (tar's builder
/// refuses unsafe names, which is what we need to test).
fn raw_archive(dir: &Path, name: &[u8], kind: tar::EntryType, body: &[u8]) -> PathBuf {
    let path = dir.join("bad.tar.gz");
    let file = std::fs::File::create(&path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_entry_type(kind);
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    gz.write_all(header.as_bytes()).unwrap();
    gz.write_all(body).unwrap();
    gz.write_all(&vec![0u8; (512 - body.len() % 512) % 512])
        .unwrap();
    gz.write_all(&[0u8; 1024]).unwrap();
    gz.finish().unwrap();
    path
}

#[test]
fn archive_entry_escaping_the_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = raw_archive(tmp.path(), b"../evil.txt", tar::EntryType::Regular, b"x");
    let msg = err_text(&archive);
    assert!(
        msg.contains("bad.tar.gz") && msg.contains("escape"),
        "{msg}"
    );
    assert!(!tmp.path().parent().unwrap().join("evil.txt").exists());
    let archive = raw_archive(
        tmp.path(),
        b"/tmp/evil-abs.txt",
        tar::EntryType::Regular,
        b"x",
    );
    assert!(err_text(&archive).contains("absolute"));
}

#[test]
fn archive_links_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = raw_archive(tmp.path(), b"saved_model.pb", tar::EntryType::Symlink, b"");
    let msg = err_text(&archive);
    assert!(msg.contains("links and special files are refused"), "{msg}");
}

#[test]
fn archive_over_the_byte_cap_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = raw_archive(
        tmp.path(),
        b"saved_model.pb",
        tar::EntryType::Regular,
        &[7u8; 4096],
    );
    let limits = hub_module::ArchiveLimits {
        max_extracted_bytes: 1000,
    };
    match HubModule::open_with_limits(&archive, limits) {
        Err(ModuleError::ArchiveTooLarge { .. }) => {}
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("opened"),
    }
}
