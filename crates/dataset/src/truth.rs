//! Ground truth: which class each photo is.
//!
//! One photo a line, `filename class`: the class is the last whitespace-separated word, the
//! filename everything before it (so it may hold spaces). Blank lines and lines starting with
//! `#` are skipped. For an ImageNet model (1000 or 1001 classes) the class is a WordNet id
//! (`n01440764`) or a 1-based ImageNet index in WordNet-id order, 1..=1000: the numbering of
//! TF-slim's 1001-class models, whose class 0 is `background` (so class `k` is logit `k` of a
//! 1001-class model and logit `k - 1` of a 1000-class one). The ILSVRC-2012 devkit's own
//! `ILSVRC2012_ID`s follow another order: give those files as WordNet ids (the devkit's
//! `meta.mat` maps them). For a model with other classes (fine-tuned on a set of one's own),
//! the class is the model's 0-based logit index.
//!
//! A photo is matched by its key (see [`crate::inputs`]), else by its file name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Largest ground-truth file read.
const MAX_BYTES: u64 = 1 << 30;
/// ImageNet's classes, 1-based.
pub const CLASSES: u32 = 1000;

/// A class as a line writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Index(u32),
    /// A WordNet id's 1-based ImageNet class.
    Synset(u32),
}

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
    /// sha256 of the file's bytes: shard reports merge only when they used the same file.
    pub digest: String,
    /// File name as written → (class as written, line).
    by_name: HashMap<String, (Class, usize)>,
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
        let mut by_name: HashMap<String, (Class, usize)> = HashMap::new();
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
        use sha2::Digest;
        let digest = sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(GroundTruth {
            path: path.to_path_buf(),
            digest,
            by_name,
        })
    }

    /// The classes as logit indices of a model with `num_classes` outputs, every line checked
    /// (the first out of range is the error, naming its line).
    pub fn for_model(&self, num_classes: u32) -> Result<ModelTruth<'_>, TruthError> {
        let mut lines: Vec<(&String, &(Class, usize))> = self.by_name.iter().collect();
        lines.sort_by_key(|(_, (_, line))| *line);
        let mut logits = HashMap::with_capacity(lines.len());
        for (name, &(class, line)) in lines {
            let logit = logit_index(class, num_classes).map_err(|problem| TruthError::Line {
                path: self.path.clone(),
                line,
                problem,
            })?;
            logits.insert(name.as_str(), logit);
        }
        Ok(ModelTruth { logits })
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The classes of one model, by photo name.
pub struct ModelTruth<'a> {
    logits: HashMap<&'a str, u32>,
}

impl ModelTruth<'_> {
    /// The logit index of the photo with this key: by the key, else by its file name.
    pub fn class_of(&self, key: &str) -> Option<u32> {
        self.logits
            .get(key)
            .or_else(|| self.logits.get(key.rsplit('/').next().unwrap_or(key)))
            .copied()
    }
}

/// A whole number or a WordNet id.
fn parse_class(word: &str) -> Result<Class, String> {
    if word.bytes().all(|b| b.is_ascii_digit()) {
        return word
            .parse::<u32>()
            .map(Class::Index)
            .map_err(|_| format!("class `{word}` is too large"));
    }
    if word.starts_with('n') {
        return preprocess::labels::synset_class(word)
            .map(|k| Class::Synset(k as u32))
            .ok_or_else(|| format!("`{word}` is not one of the 1000 ILSVRC-2012 WordNet ids"));
    }
    Err(format!(
        "class `{word}` is neither a class index nor a WordNet id (n01440764)"
    ))
}

/// The logit index of a class as written, for a model with `num_classes` outputs.
fn logit_index(class: Class, num_classes: u32) -> Result<u32, String> {
    let imagenet = |k: u32| match num_classes {
        1001 => Some(k),
        1000 => Some(k - 1),
        _ => None,
    };
    match class {
        Class::Synset(k) => imagenet(k).ok_or_else(|| {
            format!("a WordNet id, but the model has {num_classes} classes, not ImageNet's; give its 0-based class index")
        }),
        Class::Index(k @ 1..=CLASSES) if num_classes == 1000 || num_classes == 1001 => {
            imagenet(k).ok_or_else(String::new)
        }
        Class::Index(k) if num_classes == 1000 || num_classes == 1001 => Err(format!(
            "class `{k}` is out of range: a 1-based ImageNet index is 1..={CLASSES} \
             (0 is TF-slim's background, never a photo's class)"
        )),
        Class::Index(k) if k < num_classes => Ok(k),
        Class::Index(k) => Err(format!(
            "class `{k}` is out of range: the model's {num_classes} classes are 0..{num_classes} (0-based)"
        )),
    }
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
        let file = parse("# comment\nILSVRC2012_val_00000001.JPEG 66\n\nsub/dir/b.png n01443537\nmy photo.jpg\t1000\n")
            .expect("parses");
        assert_eq!(file.len(), 3);
        let truth = file.for_model(1001).expect("ImageNet classes");
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
        // Without background, one lower.
        let truth = file.for_model(1000).expect("ImageNet classes");
        assert_eq!(truth.class_of("sub/dir/b.png"), Some(1));
        assert_eq!(truth.class_of("my photo.jpg"), Some(999));
    }

    #[test]
    fn other_models_take_0_based_indices_and_no_wordnet_ids() {
        let file = parse("a.jpg 0\nb.jpg 9\n").expect("parses");
        let truth = file.for_model(10).expect("in range");
        assert_eq!(truth.class_of("a.jpg"), Some(0));
        assert_eq!(truth.class_of("b.jpg"), Some(9));
        let err = file.for_model(9).err().expect("9 of 9").to_string();
        assert_eq!(
            err,
            "truth.txt: line 2: class `9` is out of range: the model's 9 classes are 0..9 (0-based)"
        );
        let err = file
            .for_model(1001)
            .err()
            .expect("0 is background")
            .to_string();
        assert!(
            err.starts_with("truth.txt: line 1: class `0` is out of range"),
            "{err}"
        );
        let wnid = parse("a.jpg n01440764\n").expect("parses");
        let err = wnid.for_model(10).err().expect("not ImageNet").to_string();
        assert!(
            err.contains("line 1: a WordNet id, but the model has 10 classes"),
            "{err}"
        );
    }

    #[test]
    fn bad_lines_are_named() {
        let cases = [
            ("a.jpg 1\nb.jpg\n", 2, "has no class"),
            ("a.jpg 99999999999\n", 1, "too large"),
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
        /// Any bytes: an error or a table, never a panic; every class in range for the model.
        #[test]
        fn arbitrary_bytes_parse_or_fail_cleanly(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            num_classes in prop_oneof![Just(1000u32), Just(1001), 1u32..50],
        ) {
            if let Ok(file) = GroundTruth::parse(Path::new("t"), &bytes) {
                if let Ok(truth) = file.for_model(num_classes) {
                    prop_assert!(truth.logits.values().all(|&c| c < num_classes));
                }
            }
        }
    }
}
