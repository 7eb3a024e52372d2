//! Writing outputs: temporary file beside the target, then rename; never over an input or a
//! special file.

use crate::cleanup;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Why an output could not be created or put in place. Every variant names the target.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{target}: cannot write: {source} (check that the folder exists and is writable)")]
    Create { target: PathBuf, source: io::Error },
    #[error("{target}: cannot write: {source}")]
    Write { target: PathBuf, source: io::Error },
    #[error("{target}: is one of this command's inputs ({input}); writing there would destroy it (choose another output path)")]
    IsInput { target: PathBuf, input: PathBuf },
    #[error("{target}: lies inside the input folder {input}; writing there could destroy the input (choose an output path outside it)")]
    InsideInput { target: PathBuf, input: PathBuf },
    #[error("{target}: is {what}; outputs are only written as regular files (choose a file path)")]
    NotRegular { target: PathBuf, what: &'static str },
}

/// An output being written: a temporary file beside the target, registered for removal if a
/// fatal signal arrives, renamed onto the target by [`AtomicOutput::persist`] and removed if
/// dropped before that.
pub struct AtomicOutput {
    target: PathBuf,
    tmp: tempfile::NamedTempFile,
    _registration: cleanup::Registration,
}

impl AtomicOutput {
    /// Checks `target` against the command's `inputs` (files or folders) and creates the
    /// temporary file. The file gets the mode a plain `File::create` would (0666 less the
    /// umask), not the 0600 of a temporary file.
    pub fn create(target: &Path, inputs: &[&Path]) -> Result<AtomicOutput, OutputError> {
        check_target(target, inputs)?;
        let create_err = |source| OutputError::Create {
            target: target.to_path_buf(),
            source,
        };
        let dir = parent_folder(target);
        let mut last_error = None;
        for attempt in 0u64..16 {
            let path = dir.join(temp_name(attempt));
            // Registered before it exists, so no signal can come between its creation and
            // its registration and leave it behind.
            let registration = cleanup::register_file(&path);
            match create_new(&path) {
                Ok(file) => {
                    let temp_path = tempfile::TempPath::try_from_path(&path).map_err(|e| {
                        let _ = std::fs::remove_file(&path);
                        create_err(e)
                    })?;
                    let tmp = tempfile::NamedTempFile::from_parts(file, temp_path);
                    return Ok(AtomicOutput {
                        target: target.to_path_buf(),
                        tmp,
                        _registration: registration,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
                Err(e) => return Err(create_err(e)),
            }
        }
        Err(create_err(last_error.unwrap_or_else(|| {
            io::Error::other("no free temporary name")
        })))
    }

    /// The target path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The temporary file, to write the output into.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// The temporary file's path (for writers that need one).
    pub fn temp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// Flushes the file to disk and renames it onto the target.
    pub fn persist(self) -> Result<(), OutputError> {
        let target = self.target;
        let write_err = |source| OutputError::Write {
            target: target.clone(),
            source,
        };
        self.tmp.as_file().sync_all().map_err(write_err)?;
        // The target may have been replaced by a special file since `create`.
        check_not_special(&target)?;
        self.tmp.persist(&target).map_err(|e| write_err(e.error))?;
        Ok(())
    }
}

/// `.amoeba-<pid>-<random>.tmp`: hidden, unlikely to collide, recognisable if ever left.
fn temp_name(attempt: u64) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(attempt);
    format!(
        ".amoeba-{}-{:016x}.tmp",
        std::process::id(),
        hasher.finish()
    )
}

/// A new file, mode 0666 less the umask (as `File::create` would), never an existing one.
fn create_new(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(path)
}

/// Writes `bytes` to `target` atomically (see [`AtomicOutput`]).
pub fn write_atomically(target: &Path, inputs: &[&Path], bytes: &[u8]) -> Result<(), OutputError> {
    let mut out = AtomicOutput::create(target, inputs)?;
    io::Write::write_all(out.file(), bytes).map_err(|source| OutputError::Write {
        target: target.to_path_buf(),
        source,
    })?;
    out.persist()
}

fn parent_folder(target: &Path) -> &Path {
    target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Checks, without creating anything, that `target` may be written as an output of a command
/// reading `inputs` (the rules of [`AtomicOutput::create`]), so that a command can refuse a
/// bad output path before its work instead of after it.
pub fn check_output(target: &Path, inputs: &[&Path]) -> Result<(), OutputError> {
    check_target(target, inputs)
}

fn check_target(target: &Path, inputs: &[&Path]) -> Result<(), OutputError> {
    check_not_special(target)?;
    let target_meta = std::fs::metadata(target).ok();
    let target_abs = absolute_target(target);
    for input in inputs {
        let Ok(input_meta) = std::fs::metadata(input) else {
            continue;
        };
        let same_file = target_meta
            .as_ref()
            .is_some_and(|t| t.dev() == input_meta.dev() && t.ino() == input_meta.ino());
        if same_file {
            return Err(OutputError::IsInput {
                target: target.to_path_buf(),
                input: input.to_path_buf(),
            });
        }
        if input_meta.is_dir() {
            let inside = match (&target_abs, std::fs::canonicalize(input)) {
                (Some(t), Ok(i)) => t.starts_with(&i),
                _ => false,
            };
            if inside {
                return Err(OutputError::InsideInput {
                    target: target.to_path_buf(),
                    input: input.to_path_buf(),
                });
            }
        }
    }
    Ok(())
}

/// Whether two output paths name one file: the same folder (canonicalised, so `d/../t` and
/// links to the folder count) and file name, or one existing file under both names. Two
/// outputs of one command must not be one file: the second rename would replace the first.
pub fn same_target(a: &Path, b: &Path) -> bool {
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        if ma.dev() == mb.dev() && ma.ino() == mb.ino() {
            return true;
        }
    }
    match (absolute_target(a), absolute_target(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The target with its folder canonicalised (the file itself may not exist yet).
fn absolute_target(target: &Path) -> Option<PathBuf> {
    let folder = std::fs::canonicalize(parent_folder(target)).ok()?;
    Some(folder.join(target.file_name()?))
}

fn check_not_special(target: &Path) -> Result<(), OutputError> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::metadata(target) else {
        return Ok(());
    };
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(OutputError::NotRegular {
        target: target.to_path_buf(),
        what,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_atomically_with_the_umask_mode() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        write_atomically(&target, &[], b"hello").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"hello");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        // SAFETY: umask only reads and sets the process's file-mode mask.
        let umask = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        } as u32;
        assert_eq!(mode, 0o666 & !umask);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "only the output is left");
    }

    #[test]
    fn refuses_an_input_file_and_a_path_inside_an_input_folder() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("m");
        std::fs::create_dir_all(module.join("variables")).unwrap();
        let index = module.join("variables/variables.index");
        std::fs::write(&index, b"index").unwrap();
        let err = AtomicOutput::create(&index, &[&module]).err().unwrap();
        assert!(matches!(err, OutputError::InsideInput { .. }), "{err}");
        let new_file = module.join("new.safetensors");
        assert!(matches!(
            AtomicOutput::create(&new_file, &[&module]).err().unwrap(),
            OutputError::InsideInput { .. }
        ));
        let err = AtomicOutput::create(&index, &[&index]).err().unwrap();
        assert!(matches!(err, OutputError::IsInput { .. }), "{err}");
        assert_eq!(std::fs::read(&index).unwrap(), b"index");
        // A hard link to the input is the same file.
        let link = dir.path().join("link");
        std::fs::hard_link(&index, &link).unwrap();
        assert!(matches!(
            AtomicOutput::create(&link, &[&index]).err().unwrap(),
            OutputError::IsInput { .. }
        ));
    }

    #[test]
    fn refuses_special_files_and_folders() {
        let err = AtomicOutput::create(Path::new("/dev/null"), &[])
            .err()
            .unwrap();
        assert!(err.to_string().contains("a device"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = AtomicOutput::create(dir.path(), &[]).err().unwrap();
        assert!(err.to_string().contains("a folder"), "{err}");
    }

    #[test]
    fn a_dropped_output_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.bin");
        let mut out = AtomicOutput::create(&target, &[]).unwrap();
        io::Write::write_all(out.file(), b"partial").unwrap();
        drop(out);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_folder_is_named() {
        let err = AtomicOutput::create(Path::new("/nonexistent/x.bin"), &[])
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(
            text.starts_with("/nonexistent/x.bin: cannot write"),
            "{text}"
        );
    }
}
