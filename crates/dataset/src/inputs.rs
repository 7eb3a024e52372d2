//! The photos of a run, in one stable order.
//!
//! Inputs are photo files, folders and list files. A folder is walked recursively; its
//! photos (`.jpg`, `.jpeg`, `.png`, any case; names starting with `.` skipped; symbolic links
//! to folders not followed, so a link loop cannot make the walk endless) are taken in sorted
//! path order. A list file names one photo per line (blank lines and lines starting with `#`
//! skipped), relative paths being relative to the list file's folder. The order of a run is
//! the order of its inputs, each folder's photos sorted: the same files give the same order
//! on every machine, which is what [`crate::Shard`] and resuming rely on.
//!
//! Each photo has a key, the name its ground truth is looked up by: the path as given for a
//! file argument, the path below the folder (`/`-separated) for a walked folder, the line's
//! text for a list entry.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Most photos one run takes (each costs ~100 bytes of memory before anything runs).
pub const MAX_PHOTOS: usize = 20_000_000;
/// Largest list file read.
const MAX_LIST_BYTES: u64 = 4 << 30;
/// Deepest folder nesting walked.
const MAX_DEPTH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a photo file, folder or list (photos end in .jpg, .jpeg or .png)", path.display())]
    NotPhoto { path: PathBuf },
    #[error("{}: line {line}: {problem}", path.display())]
    ListLine {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("{}: folders nested more than {MAX_DEPTH} deep", path.display())]
    TooDeep { path: PathBuf },
    #[error("photo {} is given twice ({first} and {second}); each photo may be named once", path.display())]
    Duplicate {
        path: PathBuf,
        first: String,
        second: String,
    },
    #[error("more than {MAX_PHOTOS} photos in one run; split the list (see --shard)")]
    TooMany,
    #[error("no photos found in {0}")]
    Empty(String),
}

/// One photo of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Photo {
    /// Where it is read from.
    pub path: PathBuf,
    /// The name ground truth is matched by (see the module docs).
    pub key: String,
}

/// The photos of a run, in run order.
#[derive(Clone, Debug, Default)]
pub struct PhotoList {
    pub photos: Vec<Photo>,
}

impl PhotoList {
    /// Collects `inputs` (photo files and folders) then the entries of `lists`, in that order.
    pub fn collect(inputs: &[PathBuf], lists: &[PathBuf]) -> Result<PhotoList, InputError> {
        let mut builder = Builder::default();
        for input in inputs {
            builder.add_argument(input)?;
        }
        for list in lists {
            builder.add_list(list)?;
        }
        if builder.photos.is_empty() {
            let named: Vec<String> = inputs
                .iter()
                .chain(lists)
                .map(|p| p.display().to_string())
                .collect();
            return Err(InputError::Empty(named.join(", ")));
        }
        Ok(PhotoList {
            photos: builder.photos,
        })
    }

    /// The list's identity: sha256 of the keys in order, one a line. Shards of one list (and
    /// only those) share it, which is how their reports are checked before a merge.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for photo in &self.photos {
            hasher.update(photo.key.as_bytes());
            hasher.update(b"\n");
        }
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.photos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.photos.is_empty()
    }
}

/// Whether a file name is a photo's, by its extension.
pub fn is_photo_name(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["jpg", "jpeg", "png"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    })
}

#[derive(Default)]
struct Builder {
    photos: Vec<Photo>,
    /// Where each photo was first named, to refuse a second naming: by device and inode of
    /// the name itself (a link is its own photo, `./a.jpg` and `a.jpg` are one), by path for
    /// a name that does not exist.
    seen: HashMap<Identity, String>,
}

#[derive(Hash, PartialEq, Eq)]
enum Identity {
    File(u64, u64),
    Missing(PathBuf),
}

fn identity(path: &Path) -> Identity {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) => Identity::File(m.dev(), m.ino()),
        Err(_) => Identity::Missing(path.to_path_buf()),
    }
}

impl Builder {
    fn add_argument(&mut self, input: &Path) -> Result<(), InputError> {
        if std::fs::metadata(input).is_ok_and(|m| m.is_dir()) {
            let mut found = Vec::new();
            walk(input, input, 0, &mut found)?;
            found.sort();
            for path in found {
                let key = relative_key(input, &path);
                let origin = format!("in folder {}", input.display());
                self.push(path, key, origin)?;
            }
            Ok(())
        } else {
            // Anything else named explicitly is a photo whatever its extension, even when it
            // cannot be read: reading it is the photo's own error, reported with the others.
            let key = input.to_string_lossy().into_owned();
            self.push(input.to_path_buf(), key, "as an argument".to_string())
        }
    }

    fn add_list(&mut self, list: &Path) -> Result<(), InputError> {
        let io = |source| InputError::Io {
            path: list.to_path_buf(),
            source,
        };
        let bytes = safe_fs::read_regular(list, MAX_LIST_BYTES).map_err(io)?;
        let base = list.parent().unwrap_or(Path::new(""));
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let line_error = |problem: &str| InputError::ListLine {
                path: list.to_path_buf(),
                line: i + 1,
                problem: problem.to_string(),
            };
            let text = std::str::from_utf8(line)
                .map_err(|_| line_error("not UTF-8"))?
                .trim_end_matches('\r');
            if text.trim().is_empty() || text.starts_with('#') {
                continue;
            }
            if text.contains('\0') {
                return Err(line_error("a path with a NUL byte"));
            }
            let path = base.join(text);
            let origin = format!("{} line {}", list.display(), i + 1);
            self.push(path, text.to_string(), origin)?;
        }
        Ok(())
    }

    fn push(&mut self, path: PathBuf, key: String, origin: String) -> Result<(), InputError> {
        if self.photos.len() >= MAX_PHOTOS {
            return Err(InputError::TooMany);
        }
        let id = identity(&path);
        if let Some(first) = self.seen.get(&id) {
            return Err(InputError::Duplicate {
                path,
                first: first.clone(),
                second: origin,
            });
        }
        self.seen.insert(id, origin);
        self.photos.push(Photo { path, key });
        Ok(())
    }
}

/// Adds the photos under `dir` to `found`, unsorted.
fn walk(root: &Path, dir: &Path, depth: usize, found: &mut Vec<PathBuf>) -> Result<(), InputError> {
    if depth > MAX_DEPTH {
        return Err(InputError::TooDeep {
            path: root.to_path_buf(),
        });
    }
    let io = |source| InputError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().map_err(io)?;
        if kind.is_dir() {
            walk(root, &path, depth + 1, found)?;
        } else if is_photo_name(&path) && !kind.is_dir() {
            if found.len() >= MAX_PHOTOS {
                return Err(InputError::TooMany);
            }
            found.push(path);
        }
    }
    Ok(())
}

/// `path` below `root`, `/`-separated (lossy where not UTF-8).
fn relative_key(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        fs::write(path, b"x").expect("write");
    }

    #[test]
    fn folders_are_walked_sorted_with_relative_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for name in [
            "b/2.JPEG",
            "a.png",
            "b/1.jpg",
            ".hidden.jpg",
            "notes.txt",
            "c/.d/x.png",
        ] {
            touch(&root.join(name));
        }
        let list = PhotoList::collect(&[root.to_path_buf()], &[]).expect("collects");
        let keys: Vec<&str> = list.photos.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["a.png", "b/1.jpg", "b/2.JPEG"]);
        assert_eq!(list.photos[1].path, root.join("b/1.jpg"));
    }

    #[test]
    fn list_entries_are_relative_to_the_list_and_keep_their_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let list_path = dir.path().join("sub/list.txt");
        touch(&list_path);
        fs::write(&list_path, "# photos\nx/one.jpg\r\n\n/abs/two.png\n").expect("write");
        let list = PhotoList::collect(&[], &[list_path]).expect("collects");
        assert_eq!(list.photos[0].path, dir.path().join("sub/x/one.jpg"));
        assert_eq!(list.photos[0].key, "x/one.jpg");
        assert_eq!(list.photos[1].path, PathBuf::from("/abs/two.png"));
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn a_photo_named_twice_is_refused_naming_both_places() {
        let dir = tempfile::tempdir().expect("tempdir");
        let list_path = dir.path().join("list.txt");
        fs::write(&list_path, "a.jpg\nb.jpg\na.jpg\n").expect("write");
        let err = PhotoList::collect(&[], std::slice::from_ref(&list_path)).expect_err("duplicate");
        let text = err.to_string();
        assert!(text.contains("line 1") && text.contains("line 3"), "{text}");
        // One existing file under two spellings is one photo; a link to it is another.
        touch(&dir.path().join("a.jpg"));
        std::os::unix::fs::symlink(dir.path().join("a.jpg"), dir.path().join("link.jpg"))
            .expect("link");
        fs::write(&list_path, "a.jpg\nlink.jpg\n./a.jpg\n").expect("write");
        let err = PhotoList::collect(&[], &[list_path]).expect_err("duplicate");
        assert!(err.to_string().contains("line 1 and"), "{err}");
    }

    #[test]
    fn bad_list_lines_name_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let list_path = dir.path().join("list.txt");
        fs::write(&list_path, b"a.jpg\n\xff\xfe.jpg\n").expect("write");
        let err = PhotoList::collect(&[], std::slice::from_ref(&list_path)).expect_err("not UTF-8");
        assert_eq!(
            err.to_string(),
            format!("{}: line 2: not UTF-8", list_path.display())
        );
    }

    #[test]
    fn nothing_to_classify_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = PhotoList::collect(&[dir.path().to_path_buf()], &[]).expect_err("empty");
        assert!(err.to_string().starts_with("no photos found in "), "{err}");
        // A missing photo is the photo's own error, found when it is read.
        let missing = dir.path().join("missing.jpg");
        let list = PhotoList::collect(std::slice::from_ref(&missing), &[]).expect("a photo");
        assert_eq!(list.photos[0].path, missing);
        let err = PhotoList::collect(&[], &[dir.path().join("no-list")]).expect_err("no list");
        assert!(err.to_string().contains("cannot read"), "{err}");
    }

    #[test]
    fn the_digest_depends_on_keys_and_order() {
        let photo = |k: &str| Photo {
            path: PathBuf::from(k),
            key: k.to_string(),
        };
        let ab = PhotoList {
            photos: vec![photo("a"), photo("b")],
        };
        let ba = PhotoList {
            photos: vec![photo("b"), photo("a")],
        };
        assert_ne!(ab.digest(), ba.digest());
        assert_eq!(ab.digest(), ab.clone().digest());
        assert_eq!(ab.digest().len(), 64);
    }
}
