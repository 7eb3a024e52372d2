//! Ground truth: which class each photo is.
//!
//! One photo a line, `filename class`: the class is the last whitespace-separated word, the
//! filename everything before it (so it may hold spaces). Blank lines and lines starting with
//! `#` are skipped. The class is either a WordNet id (`n01440764`) or a 1-based ImageNet index
//! in WordNet-id order, 1..=1000: the numbering of TF-slim's 1001-class models, whose class 0
//! is `background` (so class `k` is logit `k` of a 1001-class model and logit `k - 1` of a
//! 1000-class one). The ILSVRC-2012 devkit's own `ILSVRC2012_ID`s follow another order: give
//! those files as WordNet ids (the devkit's `meta.mat` maps them).
//!
//! A photo is matched by its key (see [`crate::inputs`]), else by its file name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Largest ground-truth file read.
const MAX_BYTES: u64 = 1 << 30;
/// ImageNet's classes, 1-based.
pub const CLASSES: u16 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum TruthError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line}: {problem}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("{}: no labelled photos in it", path.display())]
    Empty { path: PathBuf },
}

/// The classes of the photos a ground-truth file names.
#[derive(Debug)]
pub struct GroundTruth {
    pub path: PathBuf,
    /// File name as written → (1-based class, line).
    by_name: HashMap<String, (u16, usize)>,
}

impl GroundTruth {
    pub fn read(path: &Path) -> Result<GroundTruth, TruthError> {
        let bytes = safe_fs::read_regular(path, MAX_BYTES).map_err(|source| TruthError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        GroundTruth::parse(path, &bytes)
    }

    /// Parses a file's bytes; `path` names it in errors.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<GroundTruth, TruthError> {
        let mut by_name: HashMap<String, (u16, usize)> = HashMap::new();
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            let error = |problem: String| TruthError::Line {
                path: path.to_path_buf(),
                line,
                problem,
            };
            let text = std::str::from_utf8(raw)
                .map_err(|_| error("not UTF-8".into()))?
                .trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let (name, class) = text
                .rsplit_once(char::is_whitespace)
                .map(|(n, c)| (n.trim_end(), c))
                .ok_or_else(|| error(format!("`{text}` has no class: write `filename class`")))?;
            let class = parse_class(class).map_err(error)?;
            if let Some((_, first)) = by_name.insert(name.to_string(), (class, line)) {
                return Err(error(format!(
                    "`{name}` is labelled again (first on line {first})"
                )));
            }
        }
        if by_name.is_empty() {
            return Err(TruthError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(GroundTruth {
            path: path.to_path_buf(),
            by_name,
        })
    }

    /// The 1-based class of the photo with this key: by the key, else by its file name.
    pub fn class_of(&self, key: &str) -> Option<u16> {
        let found = self.by_name.get(key).or_else(|| {
            let name = key.rsplit('/').next().unwrap_or(key);
            self.by_name.get(name)
        });
        found.map(|&(class, _)| class)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// `n01440764` or `1`..`1000`, as a 1-based class.
fn parse_class(word: &str) -> Result<u16, String> {
    if word.bytes().all(|b| b.is_ascii_digit()) {
        return match word.parse::<u16>() {
            Ok(k @ 1..=CLASSES) => Ok(k),
            _ => Err(format!(
                "class `{word}` is out of range: a 1-based ImageNet index is 1..={CLASSES} \
                 (0 is TF-slim's background, never a photo's class)"
            )),
        };
    }
    if word.starts_with('n') {
        return preprocess::labels::synset_class(word)
            .map(|k| k as u16)
            .ok_or_else(|| format!("`{word}` is not one of the 1000 ILSVRC-2012 WordNet ids"));
    }
    Err(format!(
        "class `{word}` is neither a 1-based ImageNet index (1..={CLASSES}) nor a WordNet id (n01440764)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<GroundTruth, TruthError> {
        GroundTruth::parse(Path::new("truth.txt"), text.as_bytes())
    }

    #[test]
    fn indices_and_wordnet_ids_by_key_or_file_name() {
        let truth = parse("# comment\nILSVRC2012_val_00000001.JPEG 66\n\nsub/dir/b.png n01443537\nmy photo.jpg\t1000\n")
            .expect("parses");
        assert_eq!(truth.len(), 3);
        assert_eq!(truth.class_of("ILSVRC2012_val_00000001.JPEG"), Some(66));
        assert_eq!(truth.class_of("val/ILSVRC2012_val_00000001.JPEG"), Some(66));
        assert_eq!(truth.class_of("sub/dir/b.png"), Some(2));
        assert_eq!(
            truth.class_of("b.png"),
            None,
            "a key with folders is matched whole"
        );
        assert_eq!(truth.class_of("my photo.jpg"), Some(1000));
        assert_eq!(truth.class_of("other.jpg"), None);
    }

    #[test]
    fn bad_lines_are_named() {
        let cases = [
            ("a.jpg 1\nb.jpg\n", 2, "has no class"),
            ("a.jpg 0\n", 1, "out of range"),
            ("a.jpg 1001\n", 1, "out of range"),
            ("a.jpg n99999999\n", 1, "not one of the 1000"),
            ("a.jpg cat\n", 1, "neither"),
            (
                "a.jpg 5\n\na.jpg 6\n",
                3,
                "labelled again (first on line 1)",
            ),
        ];
        for (text, line, words) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(
                err.starts_with(&format!("truth.txt: line {line}: ")),
                "{err}"
            );
            assert!(err.contains(words), "{err}");
        }
        assert!(matches!(
            parse("# nothing\n"),
            Err(TruthError::Empty { .. })
        ));
        let err = GroundTruth::parse(Path::new("t"), b"a.jpg \xff1\n").expect_err("utf8");
        assert_eq!(err.to_string(), "t: line 1: not UTF-8");
    }

    proptest! {
        /// Any bytes: an error or a table, never a panic; every class in range.
        #[test]
        fn arbitrary_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(truth) = GroundTruth::parse(Path::new("t"), &bytes) {
                prop_assert!(truth.by_name.values().all(|&(c, _)| (1..=CLASSES).contains(&c)));
            }
        }
    }
}
