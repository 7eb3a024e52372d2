//! Hostile module archives opened with small limits: decompression bombs, lying size fields,
//! floods of entries, every kind of link and special file, paths that escape. Each must be
//! refused quickly with an error naming the archive, and leave nothing outside the
//! extraction folder.

use hub_module::{ArchiveLimits, HubModule, ModuleError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One tar entry: a raw header (the tar crate's builder refuses unsafe names) and a body.
fn entry(name: &[u8], kind: tar::EntryType, body: &[u8], link: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    header.set_entry_type(kind);
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// Gzips `entries` (plus the end-of-archive blocks) into `dir/name`.
fn targz(dir: &Path, name: &str, entries: &[Vec<u8>]) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    for e in entries {
        gz.write_all(e).unwrap();
    }
    gz.write_all(&[0u8; 1024]).unwrap();
    gz.finish().unwrap();
    path
}

fn open_err(path: &Path, limits: ArchiveLimits) -> ModuleError {
    match HubModule::open_with_limits(path, limits) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    }
}

const SMALL: ArchiveLimits = ArchiveLimits {
    max_extracted_bytes: 1 << 20,
};

#[test]
fn gzip_bomb_is_cut_off_at_the_cap() {
    // 64 MiB of zeros gzip to about 64 KiB: a 1000:1 bomb against a 1 MiB cap.
    let tmp = tempfile::tempdir().unwrap();
    let zeros = vec![0u8; 64 << 20];
    let bomb = targz(
        tmp.path(),
        "bomb.tar.gz",
        &[entry(
            b"saved_model.pb",
            tar::EntryType::Regular,
            &zeros,
            b"",
        )],
    );
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20);
    let started = Instant::now();
    let err = open_err(&bomb, SMALL);
    assert!(matches!(err, ModuleError::ArchiveTooLarge { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("bomb.tar.gz") && msg.contains("1048576"),
        "{msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn bomb_spread_over_many_files_is_cut_off_too() {
    // The cap is on the total, not per file.
    let tmp = tempfile::tempdir().unwrap();
    let chunk = vec![0u8; 300 << 10];
    let entries: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let name = format!("variables/part{i}");
            entry(name.as_bytes(), tar::EntryType::Regular, &chunk, b"")
        })
        .collect();
    let archive = targz(tmp.path(), "spread.tar.gz", &entries);
    let err = open_err(&archive, SMALL);
    assert!(matches!(err, ModuleError::ArchiveTooLarge { .. }), "{err}");
}

#[test]
fn declared_size_over_the_cap_is_refused_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_path("saved_model.pb").unwrap();
    header.set_size(1 << 50);
    header.set_mode(0o644);
    header.set_cksum();
    let archive = targz(tmp.path(), "huge.tar.gz", &[header.as_bytes().to_vec()]);
    let err = open_err(&archive, ArchiveLimits::default());
    assert!(matches!(err, ModuleError::ArchiveTooLarge { .. }), "{err}");
}

#[test]
fn flood_of_empty_entries_is_refused() {
    // Empty files cost no bytes but an inode each: a small archive must not create an
    // unbounded number of them.
    let tmp = tempfile::tempdir().unwrap();
    let entries: Vec<Vec<u8>> = (0..20_000)
        .map(|i| {
            entry(
                format!("f{i}").as_bytes(),
                tar::EntryType::Regular,
                b"",
                b"",
            )
        })
        .collect();
    let archive = targz(tmp.path(), "flood.tar.gz", &entries);
    let err = open_err(&archive, ArchiveLimits::default());
    let msg = err.to_string();
    assert!(
        msg.contains("flood.tar.gz") && msg.contains("entries"),
        "{msg}"
    );
}

#[test]
fn every_link_and_special_file_kind_is_refused() {
    use tar::EntryType as T;
    let tmp = tempfile::tempdir().unwrap();
    for kind in [
        T::Symlink,
        T::Link,
        T::Fifo,
        T::Char,
        T::Block,
        T::GNUSparse,
        T::Continuous,
    ] {
        let archive = targz(
            tmp.path(),
            "special.tar.gz",
            &[entry(b"saved_model.pb", kind, b"", b"/etc/passwd")],
        );
        let msg = open_err(&archive, SMALL).to_string();
        assert!(msg.contains("special.tar.gz"), "{kind:?}: {msg}");
        // The tar reader itself rejects a sparse flag on an old-style header (without
        // naming the entry); every other kind is refused by name.
        let by_tar = kind == T::GNUSparse && msg.contains("not a readable");
        let by_us = msg.contains("saved_model.pb") && msg.contains("refused");
        assert!(by_tar || by_us, "{kind:?}: {msg}");
    }
}

#[test]
fn symlinked_folder_then_file_through_it_is_refused_at_the_link() {
    // The classic two-step escape: a link to outside, then a file written "inside" it.
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let archive = targz(
        tmp.path(),
        "twostep.tar.gz",
        &[
            entry(
                b"variables",
                tar::EntryType::Symlink,
                b"",
                outside.to_str().unwrap().as_bytes(),
            ),
            entry(b"variables/evil", tar::EntryType::Regular, b"x", b""),
        ],
    );
    let msg = open_err(&archive, SMALL).to_string();
    assert!(msg.contains("links"), "{msg}");
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
}

#[test]
fn escaping_paths_in_every_spelling_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        &b"../x"[..],
        b"./../x",
        b"variables/../../x",
        b"/abs/x",
        b"//abs/x",
    ] {
        let archive = targz(
            tmp.path(),
            "escape.tar.gz",
            &[entry(name, tar::EntryType::Regular, b"x", b"")],
        );
        let msg = open_err(&archive, SMALL).to_string();
        assert!(
            msg.contains("escape.tar.gz") && msg.contains("escape"),
            "{name:?}: {msg}"
        );
    }
    assert!(!tmp.path().join("x").exists());
}

#[test]
fn file_where_a_folder_must_go_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = targz(
        tmp.path(),
        "clash.tar.gz",
        &[
            entry(b"variables", tar::EntryType::Regular, b"x", b""),
            entry(
                b"variables/variables.index",
                tar::EntryType::Regular,
                b"x",
                b"",
            ),
        ],
    );
    let msg = open_err(&archive, SMALL).to_string();
    assert!(msg.contains("variables"), "{msg}");
}

#[test]
fn corrupt_gzip_streams_are_bad_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let good = targz(
        tmp.path(),
        "good.tar.gz",
        &[entry(
            b"saved_model.pb",
            tar::EntryType::Regular,
            &[1u8; 5000],
            b"",
        )],
    );
    let bytes = std::fs::read(&good).unwrap();
    for (name, data) in [
        ("cut.tar.gz", bytes[..bytes.len() / 2].to_vec()),
        ("magic-only.tar.gz", vec![0x1f, 0x8b]),
        ("flipped.tar.gz", {
            let mut b = bytes.clone();
            b[20] ^= 0xff;
            b
        }),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, data).unwrap();
        let msg = open_err(&path, SMALL).to_string();
        assert!(msg.contains(name), "{msg}");
    }
}

#[test]
fn a_huge_gnu_long_name_header_is_refused_before_it_is_read_into_memory() {
    // tar reads a long name whole into memory; 64 MiB of zeros (64 KB gzipped) stands for
    // the gigabytes an attacker would declare.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("longname.tar.gz");
    let file = std::fs::File::create(&path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_size(64 << 20);
    header.set_mode(0o644);
    header.set_cksum();
    gz.write_all(header.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    gz.write_all(&[0u8; 1024]).unwrap();
    gz.finish().unwrap();
    let err = open_err(&path, ArchiveLimits::default()).to_string();
    assert!(
        err.contains("longname.tar.gz") && err.contains("tar header"),
        "{err}"
    );
}

#[test]
fn paths_nested_deeper_than_the_cap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let deep = entry(b"a/b/c/d/e/f/g/h/i/x", tar::EntryType::Regular, b"x", b"");
    let path = targz(dir.path(), "deep.tar.gz", &[deep]);
    let err = open_err(&path, ArchiveLimits::default()).to_string();
    assert!(
        err.contains("deep.tar.gz") && err.contains("deeper than 8"),
        "{err}"
    );
}
