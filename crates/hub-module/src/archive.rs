//! Safe extraction of a module archive (`.tar.gz`, `.tgz`, or a plain `.tar`).
//!
//! The rules follow what tensorflow_hub itself accepts: regular files and folders only, paths
//! relative and inside the module folder, with or without a leading `./`. On top of that a cap
//! on the bytes written guards against decompression bombs and lying size fields.

use crate::ModuleError;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

/// 16 GiB: comfortably above the 1.9 GB AmoebaNet module, far below a disk-filling bomb.
pub const DEFAULT_MAX_EXTRACTED_BYTES: u64 = 16 << 30;

/// Most entries (files and folders) an archive may have. Empty entries cost no bytes, so
/// without a count a small archive could create millions of files; a module has a handful
/// (and TensorFlow rarely writes more than a few checkpoint shards).
pub const MAX_ARCHIVE_ENTRIES: usize = 10_000;

/// Deepest path inside an archive (the signal handler's removal of an interrupted extraction
/// goes deeper than this, so it always removes everything).
const MAX_PATH_DEPTH: usize = 8;

/// Limits applied while extracting an archive.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveLimits {
    /// Total bytes of file contents that may be written.
    pub max_extracted_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits {
            max_extracted_bytes: DEFAULT_MAX_EXTRACTED_BYTES,
        }
    }
}

/// True when the path names an archive rather than a module folder.
pub(crate) fn is_archive(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    path.is_file()
        && [".tar.gz", ".tgz", ".tar"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// Extracts `archive` into `dest` (an empty folder), refusing anything unsafe.
pub(crate) fn extract(
    archive: &Path,
    dest: &Path,
    limits: ArchiveLimits,
) -> Result<(), ModuleError> {
    let file = safe_fs::open_regular(archive).map_err(|source| ModuleError::Io {
        path: archive.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    let gzipped = starts_with_gzip_magic(&mut reader, archive)?;
    let stream: Box<dyn Read> = if gzipped {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let meter = Meter::default();
    let mut tar = tar::Archive::new(Metered {
        inner: stream,
        meter: meter.clone(),
    });
    let entries = tar
        .entries()
        .map_err(|source| bad_archive(archive, source))?;
    let mut budget = limits.max_extracted_bytes;
    meter.allow_headers();
    for (count, entry) in entries.enumerate() {
        let entry = entry.map_err(|source| bad_archive(archive, source))?;
        if count >= MAX_ARCHIVE_ENTRIES {
            return Err(ModuleError::UnsafeArchiveEntry {
                archive: archive.to_path_buf(),
                entry: String::from_utf8_lossy(&entry.path_bytes()).into_owned(),
                problem: format!(
                    "more than {MAX_ARCHIVE_ENTRIES} entries; a module has a handful \
                     (a flood of files is refused)"
                ),
            });
        }
        extract_entry(
            archive,
            dest,
            entry,
            (&mut budget, &meter),
            limits.max_extracted_bytes,
        )?;
        meter.allow_headers();
    }
    meter.allow(budget.saturating_add(1));
    check_trailer(
        archive,
        Box::new(tar.into_inner()),
        budget,
        limits.max_extracted_bytes,
    )
}

/// Bytes of tar headers (long names, PAX records, padding) allowed between two entries'
/// contents: tar reads a GNU long name or a PAX header whole into memory, so without a limit
/// a header declaring gigabytes would be allocated before any cap on file bytes applies.
const MAX_HEADER_BYTES_PER_ENTRY: u64 = 1 << 20;

/// Counts the bytes read from the (decompressed) archive stream against a moving limit.
#[derive(Clone, Default)]
struct Meter {
    read: std::rc::Rc<std::cell::Cell<u64>>,
    limit: std::rc::Rc<std::cell::Cell<u64>>,
}

impl Meter {
    /// Allows the next entry's headers.
    fn allow_headers(&self) {
        self.allow(MAX_HEADER_BYTES_PER_ENTRY);
    }

    /// Allows `bytes` more to be read from here on.
    fn allow(&self, bytes: u64) {
        self.limit.set(self.read.get().saturating_add(bytes));
    }
}

struct Metered<R> {
    inner: R,
    meter: Meter,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let read = self.meter.read.get().saturating_add(n as u64);
        self.meter.read.set(read);
        if read > self.meter.limit.get() {
            return Err(std::io::Error::other(format!(
                "a tar header (long name or PAX record) of more than {MAX_HEADER_BYTES_PER_ENTRY} bytes"
            )));
        }
        Ok(n)
    }
}

/// Reads what follows the tar's end marker to the end of the stream, so that the gzip
/// decoder reaches (and checks) each member's CRC-32 and length trailer: tar stops reading
/// at its end marker, and a corrupt archive would otherwise pass unnoticed. The padding read
/// counts against the byte budget (a bomb of zeros after the marker is refused too).
fn check_trailer(
    archive: &Path,
    stream: Box<dyn Read>,
    budget: u64,
    limit: u64,
) -> Result<(), ModuleError> {
    let read = std::io::copy(
        &mut stream.take(budget.saturating_add(1)),
        &mut std::io::sink(),
    )
    .map_err(|source| bad_archive(archive, source))?;
    if read > budget {
        return Err(ModuleError::ArchiveTooLarge {
            archive: archive.to_path_buf(),
            limit,
        });
    }
    Ok(())
}

fn starts_with_gzip_magic(
    reader: &mut BufReader<File>,
    archive: &Path,
) -> Result<bool, ModuleError> {
    use std::io::BufRead;
    let head = reader.fill_buf().map_err(|source| ModuleError::Io {
        path: archive.to_path_buf(),
        source,
    })?;
    Ok(head.starts_with(&[0x1f, 0x8b]))
}

fn bad_archive(archive: &Path, source: std::io::Error) -> ModuleError {
    ModuleError::BadArchive {
        archive: archive.to_path_buf(),
        source,
    }
}

fn extract_entry<R: Read>(
    archive: &Path,
    dest: &Path,
    mut entry: tar::Entry<'_, R>,
    (budget, meter): (&mut u64, &Meter),
    limit: u64,
) -> Result<(), ModuleError> {
    let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let unsafe_entry = |problem: &str| ModuleError::UnsafeArchiveEntry {
        archive: archive.to_path_buf(),
        entry: raw_name.clone(),
        problem: problem.to_string(),
    };
    let relative = safe_relative_path(&raw_name).map_err(unsafe_entry)?;
    let kind = entry.header().entry_type();
    let target = dest.join(&relative);
    let shown = PathBuf::from(format!("{}!/{}", archive.display(), relative.display()));
    if kind.is_dir() {
        return create_dir(&target, &shown);
    }
    if !kind.is_file() {
        return Err(unsafe_entry(
            "only regular files and folders may be in a module archive (links and special files are refused)",
        ));
    }
    let declared = entry
        .header()
        .size()
        .map_err(|source| bad_archive(archive, source))?;
    if declared > *budget {
        return Err(ModuleError::ArchiveTooLarge {
            archive: archive.to_path_buf(),
            limit,
        });
    }
    if let Some(parent) = target.parent() {
        create_dir(parent, &shown)?;
    }
    // The entry's contents (checked against the budget above) and its padding.
    meter.allow(declared.saturating_add(MAX_HEADER_BYTES_PER_ENTRY));
    let written = copy_capped(&mut entry, &target, &shown, *budget, archive, limit)?;
    *budget -= written;
    Ok(())
}

/// Turns an archive path into a relative path below the module root, or says why not.
fn safe_relative_path(name: &str) -> Result<PathBuf, &'static str> {
    if name.contains('\0') {
        return Err("NUL byte in the path");
    }
    let mut out = PathBuf::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(_) if out.components().count() >= MAX_PATH_DEPTH => {
                return Err("nested deeper than 8 folders (a module has two levels)")
            }
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("'..' would escape the module folder"),
            Component::RootDir | Component::Prefix(_) => {
                return Err("absolute paths would escape the module folder")
            }
        }
    }
    Ok(out)
}

/// Creates a folder of the extraction; errors name `shown` (the entry in the archive), as the
/// temporary folder means nothing to the user.
fn create_dir(path: &Path, shown: &Path) -> Result<(), ModuleError> {
    std::fs::create_dir_all(path).map_err(|source| ModuleError::Io {
        path: shown.to_path_buf(),
        source,
    })
}

/// Copies an entry's contents, stopping as soon as the byte budget is exceeded.
fn copy_capped<R: Read>(
    entry: &mut R,
    target: &Path,
    shown: &Path,
    budget: u64,
    archive: &Path,
    limit: u64,
) -> Result<u64, ModuleError> {
    let io_err = |source| ModuleError::Io {
        path: shown.to_path_buf(),
        source,
    };
    let mut out = File::create(target).map_err(io_err)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut written: u64 = 0;
    loop {
        let n = entry
            .read(&mut buf)
            .map_err(|source| bad_archive(archive, source))?;
        if n == 0 {
            break;
        }
        written += n as u64;
        if written > budget {
            return Err(ModuleError::ArchiveTooLarge {
                archive: archive.to_path_buf(),
                limit,
            });
        }
        out.write_all(&buf[..n]).map_err(io_err)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_normalised() {
        assert_eq!(
            safe_relative_path("./variables/x").unwrap(),
            PathBuf::from("variables/x")
        );
        assert_eq!(
            safe_relative_path("saved_model.pb").unwrap(),
            PathBuf::from("saved_model.pb")
        );
    }

    #[test]
    fn escaping_paths_are_refused() {
        assert!(safe_relative_path("../evil").is_err());
        assert!(safe_relative_path("a/../../evil").is_err());
        assert!(safe_relative_path("/etc/passwd").is_err());
    }
}
