//! Opening inputs: regular files only, without blocking.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// What a path names when it is not a regular file, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRegular {
    Folder,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Other,
}

impl NotRegular {
    fn of(file_type: std::fs::FileType) -> Option<NotRegular> {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_file() {
            None
        } else if file_type.is_dir() {
            Some(NotRegular::Folder)
        } else if file_type.is_fifo() {
            Some(NotRegular::Fifo)
        } else if file_type.is_socket() {
            Some(NotRegular::Socket)
        } else if file_type.is_char_device() {
            Some(NotRegular::CharDevice)
        } else if file_type.is_block_device() {
            Some(NotRegular::BlockDevice)
        } else {
            Some(NotRegular::Other)
        }
    }

    /// "a FIFO", "a folder", …
    pub fn describe(self) -> &'static str {
        match self {
            NotRegular::Folder => "a folder",
            NotRegular::Fifo => "a FIFO (named pipe)",
            NotRegular::Socket => "a socket",
            NotRegular::CharDevice => "a character device",
            NotRegular::BlockDevice => "a block device",
            NotRegular::Other => "not a regular file",
        }
    }

    /// The `io::Error` the readers return for it (kind `InvalidInput`).
    pub fn into_error(self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "is {}, not a regular file (only regular files are read)",
                self.describe()
            ),
        )
    }
}

/// Opens `path` for reading when it is a regular file (symbolic links followed).
///
/// The open itself uses `O_NONBLOCK`, so a FIFO with no writer cannot block it; the file's
/// type is then checked on the open descriptor (no race between a check and the open).
/// Non-blocking mode has no effect on reads from a regular file.
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // Refused before opening too: opening some devices has effects of its own (a tape
    // rewinds, a watchdog arms). The check on the open descriptor below closes the race.
    if let Some(kind) = NotRegular::of(std::fs::metadata(path)?.file_type()) {
        return Err(kind.into_error());
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    match NotRegular::of(file.metadata()?.file_type()) {
        None => Ok(file),
        Some(kind) => Err(kind.into_error()),
    }
}

/// Reads a whole regular file of at most `max_bytes` bytes.
///
/// Refuses a larger file before reading it, and stops at the cap if the file grows while it
/// is read, so the allocation is bounded by `max_bytes` whatever the file claims.
pub fn read_regular(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > max_bytes {
        return Err(too_large(len, max_bytes));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64, max_bytes));
    }
    Ok(bytes)
}

fn too_large(len: u64, max_bytes: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("is {len} bytes, more than the {max_bytes}-byte limit for this kind of file"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        mkfifo(&fifo);
        let err = open_regular(&fifo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("FIFO"), "{err}");
        assert!(read_regular(&fifo, 10).is_err());
    }

    #[test]
    fn folders_and_devices_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(open_regular(dir.path())
            .unwrap_err()
            .to_string()
            .contains("folder"));
        let err = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
    }

    #[test]
    fn reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [7u8; 100]).unwrap();
        assert_eq!(read_regular(&path, 100).unwrap().len(), 100);
        let err = read_regular(&path, 99).unwrap_err();
        assert!(err.to_string().contains("99-byte limit"), "{err}");
    }

    #[test]
    fn a_missing_file_keeps_not_found() {
        let err = open_regular(Path::new("/nonexistent/x")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
