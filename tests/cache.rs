//! The cache of extracted archives: a `.tar.gz` is extracted once into
//! `$AMOEBA_CACHE_DIR/<sha256 of the archive>/`, said once, reused after, listed and cleared by
//! `amoeba cache`; a broken archive leaves nothing there.

mod common;

use common::repo;
use std::path::Path;

const ARCHIVE: &str = "fixtures/modules/amoebanet_a_n3_f8.tar.gz";

fn amoeba(cache: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    common::amoeba_run(args, &[("AMOEBA_CACHE_DIR", cache.as_os_str())])
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn an_archive_is_extracted_once_reused_and_cleared() {
    let cache = tempfile::tempdir().unwrap();
    let archive = repo(ARCHIVE);
    let a = archive.to_str().unwrap();
    let (code, _, err) = amoeba(cache.path(), &["inspect", a]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("later runs reuse it") && err.contains("amoeba cache clear"),
        "{err}"
    );
    let entries = names(cache.path());
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        entries[0].len(),
        64,
        "named by the archive's sha256: {entries:?}"
    );
    let entry = cache.path().join(&entries[0]);
    assert!(entry.join("saved_model.pb").is_file());
    // Reused: no second note, same entry.
    let (code, _, err) = amoeba(cache.path(), &["inspect", a]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("later runs reuse it"), "{err}");
    assert_eq!(names(cache.path()), entries);
    // An output inside the cached module is refused like one inside any input folder.
    let inside = entry.join("m.safetensors");
    let (code, _, err) = amoeba(
        cache.path(),
        &["convert", a, "-o", inside.to_str().unwrap()],
    );
    assert_eq!(code, Some(2), "{err}");
    let (code, out, err) = amoeba(cache.path(), &["cache", "list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("(1 entries)") && out.contains(&entries[0]),
        "{out}"
    );
    let (code, out, err) = amoeba(cache.path(), &["cache", "clear"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("removed 1 entries"), "{out}");
    assert!(names(cache.path()).is_empty());
}

#[test]
fn an_unfinished_entry_is_extracted_again() {
    let cache = tempfile::tempdir().unwrap();
    let a = repo(ARCHIVE);
    let (code, _, err) = amoeba(cache.path(), &["inspect", a.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let entry = cache.path().join(&names(cache.path())[0]);
    std::fs::remove_file(entry.join(".amoeba-complete")).unwrap();
    std::fs::remove_file(entry.join("saved_model.pb")).unwrap();
    // Without its completion mark the entry is not used: this run extracts again and
    // replaces it.
    let (code, _, err) = amoeba(cache.path(), &["inspect", a.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("later runs reuse it"), "{err}");
    assert!(entry.join("saved_model.pb").is_file() && entry.join(".amoeba-complete").is_file());
    // Nothing half-made is left beside the entry.
    assert!(
        names(cache.path())
            .iter()
            .all(|n| !n.starts_with(".amoeba-")),
        "{:?}",
        names(cache.path())
    );
}

#[test]
fn a_broken_archive_leaves_nothing_in_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(repo(ARCHIVE)).unwrap();
    let cut = work.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, _, err) = amoeba(cache.path(), &["inspect", cut.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cut.tar.gz"), "{err}");
    assert!(names(cache.path()).is_empty(), "{:?}", names(cache.path()));
}

#[test]
fn an_empty_cache_variable_turns_the_cache_off() {
    let off = Path::new("");
    let (code, out, err) = amoeba(off, &["cache", "list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("no cache"), "{out}");
    let (code, _, err) = amoeba(off, &["inspect", repo(ARCHIVE).to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("later runs reuse it"), "{err}");
}

/// An entry whose files no longer match its mark (cut short, say) is set aside and the
/// archive extracted again; nothing stale stays.
#[test]
fn a_damaged_entry_is_extracted_again() {
    let cache = tempfile::tempdir().unwrap();
    let a = repo(ARCHIVE);
    let (code, _, err) = amoeba(cache.path(), &["inspect", a.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let entry = cache.path().join(&names(cache.path())[0]);
    let shard = entry.join("variables/variables.data-00000-of-00001");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    let (code, _, err) = amoeba(cache.path(), &["inspect", "--check", a.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("later runs reuse it"),
        "extracted again: {err}"
    );
    assert_eq!(std::fs::read(&shard).unwrap().len(), bytes.len());
    assert_eq!(names(cache.path()).len(), 1, "{:?}", names(cache.path()));
}

/// A cache folder other users can write into is refused, naming it and the way out.
#[test]
fn a_cache_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let cache = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, _, err) = amoeba(cache.path(), &["inspect", repo(ARCHIVE).to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("can be written by other users") && err.contains("AMOEBA_CACHE_DIR"),
        "{err}"
    );
    // A symbolic link as the cache folder is refused too.
    let real = tempfile::tempdir().unwrap();
    let link = real.path().join("link");
    std::os::unix::fs::symlink(cache.path(), &link).unwrap();
    let (code, _, err) = amoeba(&link, &["inspect", repo(ARCHIVE).to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a folder"), "{err}");
}

/// `cache clear` removes finished entries and the folders of runs that ended without
/// cleaning up, and nothing else.
#[test]
fn clear_removes_entries_and_leftovers_of_gone_runs_only() {
    let cache = tempfile::tempdir().unwrap();
    let (code, _, err) = amoeba(cache.path(), &["inspect", repo(ARCHIVE).to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    // A leftover of a process that no longer exists, and a file that is not the cache's.
    std::fs::create_dir(
        cache
            .path()
            .join(".amoeba-module-4000000000-00000000000000aa"),
    )
    .unwrap();
    std::fs::write(cache.path().join("notes.txt"), "mine").unwrap();
    let (code, out, err) = amoeba(cache.path(), &["cache", "clear"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("removed 1 entries"), "{out}");
    assert_eq!(names(cache.path()), ["notes.txt"]);
}
