//! One JSON object per photo, one per line (JSON Lines), and reading such a file back to
//! resume an interrupted run.
//!
//! A results file is a log, not a document written at the end: each batch's lines are
//! appended and synced as the batch ends, so an interrupted run leaves every finished batch
//! on disk. Only its last line can be unfinished; [`read_resumable`] drops such a line (and
//! the caller truncates it away before appending). A photo whose record says `error` counts
//! as done: delete its line to try it again.

use std::collections::HashSet;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

/// Longest line read back (a record with a long path and the top classes is well under).
const MAX_LINE_BYTES: u64 = 1 << 20;

/// One ranked class.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ranked {
    /// The model's logit index.
    pub index: usize,
    pub label: String,
    pub probability: f32,
}

/// One photo's outcome.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The photo's path as given (lossy where not UTF-8).
    pub image: String,
    /// Best first (absent for a feature-vector module or a failed photo).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<Ranked>,
    /// Ground truth, as the model's logit index (the numbering of `top`; eval only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truth: Option<u32>,
    /// Why the photo could not be classified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Record {
    /// The record as one line of JSON, newline included.
    pub fn to_line(&self) -> String {
        // A struct of strings and numbers always serialises; the fallback is unreachable.
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string());
        line.push('\n');
        line
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line}: not a record of amoeba's ({problem}); name another output or remove the file", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("{}: line {line}: photo `{image}` is not among this run's photos (another list or shard?)", path.display())]
    Foreign {
        path: PathBuf,
        line: usize,
        image: String,
    },
    #[error("{}: line {line}: photo `{image}` is recorded twice", path.display())]
    Twice {
        path: PathBuf,
        line: usize,
        image: String,
    },
}

/// What an earlier, interrupted run left.
#[derive(Debug, Default)]
pub struct Resumed {
    pub records: Vec<Record>,
    /// Bytes of complete lines: the file is to be cut to this length before appending.
    pub complete_bytes: u64,
}

impl Resumed {
    /// The photos already done.
    pub fn done(&self) -> HashSet<&str> {
        self.records.iter().map(|r| r.image.as_str()).collect()
    }
}

/// Reads the records of `path` (missing: none), each of which must name one of `images`,
/// line by line (memory holds the records, not the file).
pub fn read_resumable(path: &Path, images: &HashSet<&str>) -> Result<Resumed, RecordsError> {
    let io = |source| RecordsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match safe_fs::open_regular(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Resumed::default()),
        Err(e) => return Err(io(e)),
    };
    parse_resumable(path, std::io::BufReader::new(file), images)
}

/// [`read_resumable`] on any reader.
pub fn parse_resumable(
    path: &Path,
    mut reader: impl BufRead,
    images: &HashSet<&str>,
) -> Result<Resumed, RecordsError> {
    let mut resumed = Resumed::default();
    let mut seen = HashSet::new();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = reader
            .by_ref()
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|source| RecordsError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        // The end, or an unfinished last line: resumed from the last complete one.
        if read == 0 || line.last() != Some(&b'\n') {
            if line.len() as u64 > MAX_LINE_BYTES {
                return Err(line_error(
                    path,
                    number,
                    format!("longer than {MAX_LINE_BYTES} bytes"),
                ));
            }
            break;
        }
        resumed.complete_bytes += read as u64;
        if line.len() == 1 {
            continue;
        }
        let record: Record =
            serde_json::from_slice(&line).map_err(|e| line_error(path, number, e.to_string()))?;
        if !images.contains(record.image.as_str()) {
            return Err(RecordsError::Foreign {
                path: path.to_path_buf(),
                line: number,
                image: record.image,
            });
        }
        if !seen.insert(record.image.clone()) {
            return Err(RecordsError::Twice {
                path: path.to_path_buf(),
                line: number,
                image: record.image,
            });
        }
        resumed.records.push(record);
    }
    Ok(resumed)
}

fn line_error(path: &Path, line: usize, problem: String) -> RecordsError {
    RecordsError::Line {
        path: path.to_path_buf(),
        line,
        problem,
    }
}

/// Appends lines to a results file, each batch synced before the next.
pub struct RecordsFile {
    path: PathBuf,
    file: std::fs::File,
}

impl RecordsFile {
    /// Opens `path` to append after its first `keep` bytes (`keep` 0: a new file; the caller
    /// has checked that it may write there).
    pub fn open(path: &Path, keep: u64) -> std::io::Result<RecordsFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        if file.metadata()?.len() != keep {
            // Drops an unfinished last line (or an old file's content when `keep` is 0).
            file.set_len(keep)?;
        }
        Ok(RecordsFile {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one batch's lines and syncs them to disk.
    pub fn append(&mut self, records: &[Record]) -> std::io::Result<()> {
        let text: String = records.iter().map(Record::to_line).collect();
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(image: &str) -> Record {
        Record {
            image: image.into(),
            top: vec![Ranked {
                index: 3,
                label: "x".into(),
                probability: 0.5,
            }],
            truth: Some(3),
            error: None,
        }
    }

    #[test]
    fn an_unfinished_last_line_is_dropped_and_cut_before_appending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.jsonl");
        let mut file = RecordsFile::open(&path, 0).expect("opens");
        file.append(&[record("a.jpg"), record("b.jpg")])
            .expect("writes");
        drop(file);
        let mut bytes = std::fs::read(&path).expect("reads");
        bytes.extend_from_slice(b"{\"image\":\"c.j");
        std::fs::write(&path, &bytes).expect("writes");
        let images: HashSet<&str> = ["a.jpg", "b.jpg", "c.jpg"].into();
        let resumed = read_resumable(&path, &images).expect("reads");
        assert_eq!(resumed.records, vec![record("a.jpg"), record("b.jpg")]);
        assert_eq!(resumed.done(), ["a.jpg", "b.jpg"].into());
        let mut file = RecordsFile::open(&path, resumed.complete_bytes).expect("opens");
        file.append(&[record("c.jpg")]).expect("writes");
        let again = read_resumable(&path, &images).expect("reads");
        assert_eq!(again.records.len(), 3);
        assert_eq!(
            again.complete_bytes,
            std::fs::metadata(&path).expect("meta").len()
        );
    }

    #[test]
    fn foreign_twice_and_broken_lines_are_named() {
        let images: HashSet<&str> = ["a.jpg"].into();
        let p = Path::new("r.jsonl");
        let a = record("a.jpg").to_line();
        let err = parse_resumable(p, format!("{a}{a}").as_bytes(), &images).expect_err("twice");
        assert_eq!(
            err.to_string(),
            "r.jsonl: line 2: photo `a.jpg` is recorded twice"
        );
        let z = record("z.jpg").to_line();
        let err = parse_resumable(p, z.as_bytes(), &images).expect_err("foreign");
        assert!(
            err.to_string()
                .contains("line 1: photo `z.jpg` is not among"),
            "{err}"
        );
        let err = parse_resumable(p, &b"[1,2]\n"[..], &images).expect_err("broken");
        assert!(
            err.to_string().starts_with("r.jsonl: line 1: not a record"),
            "{err}"
        );
        let long = format!("{}\n", " ".repeat(2 << 20));
        let err = parse_resumable(p, long.as_bytes(), &images).expect_err("long");
        assert!(
            err.to_string()
                .contains("line 1: not a record of amoeba's (longer than"),
            "{err}"
        );
        let missing = read_resumable(Path::new("/nonexistent/r.jsonl"), &images).expect("none");
        assert!(missing.records.is_empty());
    }
}
