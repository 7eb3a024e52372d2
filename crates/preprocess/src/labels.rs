//! The ImageNet class names, and softmax and top-k over logits.
//!
//! `data/imagenet_labels.txt` holds 1001 lines: `background` (TF-slim's class 0), then the
//! 1000 ILSVRC-2012 classes in synset order, the order of TensorFlow's ImageNet models.
//! It is written by `xtask/python/make_labels.py` from the torchvision 0.20.1 wheel, with
//! TensorFlow's names where torchvision made two pairs unique: as TF's `ImageNetLabels.txt`,
//! classes 135 and 518 are both `crane` (the bird, the machine) and 639 and 640 both `maillot`.
//! The result is byte for byte TensorFlow's `ImageNetLabels.txt` (as LF text): checked against
//! a public copy of it, see `labels_are_tensorflows_imagenet_labels_txt` below.
//!
//! `data/imagenet_synsets.txt` holds the 1000 WordNet ids of those classes in the same
//! order (sorted), one a line: class `k` (1-based, as in a 1001-class model) is line `k`. It
//! is TF-slim's `research/slim/datasets/imagenet_lsvrc_2015_synsets.txt` (tensorflow/models),
//! the list TF-slim builds its ImageNet labels from.

use std::sync::OnceLock;

const IMAGENET_LABELS: &str = include_str!("../data/imagenet_labels.txt");
const IMAGENET_SYNSETS: &str = include_str!("../data/imagenet_synsets.txt");

/// The 1000 ILSVRC-2012 WordNet ids, sorted; index `k - 1` is class `k` of a 1001-class model.
pub fn imagenet_synsets() -> &'static [&'static str] {
    static SYNSETS: OnceLock<Vec<&'static str>> = OnceLock::new();
    SYNSETS.get_or_init(|| IMAGENET_SYNSETS.lines().collect())
}

/// The 1-based class (1..=1000, as a 1001-class model numbers it) of a WordNet id such as
/// `n01440764` (tench: 1); `None` if it is not one of the 1000.
pub fn synset_class(wnid: &str) -> Option<usize> {
    imagenet_synsets().binary_search(&wnid).ok().map(|i| i + 1)
}

/// The 1001 labels, index 0 `background`.
pub fn imagenet() -> &'static [&'static str] {
    static LABELS: OnceLock<Vec<&'static str>> = OnceLock::new();
    LABELS.get_or_init(|| IMAGENET_LABELS.lines().collect())
}

/// The name of class `index` of a model with `num_classes` outputs: the ImageNet label for
/// 1001 classes (with background) or 1000 (without), else `class <index>`.
pub fn class_name(index: usize, num_classes: usize) -> String {
    let labels = imagenet();
    let name = match num_classes {
        1001 => labels.get(index),
        1000 => labels.get(index + 1),
        _ => None,
    };
    name.map_or_else(|| format!("class {index}"), |n| (*n).to_string())
}

/// Softmax of one image's logits, computed in float64 after subtracting the maximum so
/// large logits cannot overflow.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|&e| (e / sum) as f32).collect()
}

/// The `k` largest values' indices and values, largest first; ties keep the lower index first.
pub fn top_k(values: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut indexed: Vec<(usize, f32)> = values.iter().copied().enumerate().collect();
    indexed.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    indexed.truncate(k);
    indexed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_have_background_then_the_ilsvrc_classes() {
        let labels = imagenet();
        assert_eq!(labels.len(), 1001);
        assert_eq!(labels[0], "background");
        assert_eq!(labels[1], "tench");
        assert_eq!(labels[1000], "toilet tissue");
        assert_eq!(class_name(0, 1000), "tench");
        assert_eq!(class_name(3, 10), "class 3");
        // TensorFlow's names, twice each (torchvision writes `crane bird`, `maillot tank suit`).
        assert_eq!((labels[135], labels[518]), ("crane", "crane"));
        assert_eq!((labels[639], labels[640]), ("maillot", "maillot"));
        assert_eq!(synset_class("n02012849"), Some(135), "crane, the bird");
        assert_eq!(synset_class("n03126707"), Some(518), "crane, the machine");
    }

    /// TensorFlow's `ImageNetLabels.txt`
    /// (`https://storage.googleapis.com/download.tensorflow.org/data/ImageNetLabels.txt`)
    /// is not reachable offline. A public copy of it (GitHub
    /// `abhiruppeeyalsinha/Transfer-Learning-`, `ImageNetLabels.txt` at commit 187ba73) has
    /// CRLF line ends and one line `Footer` appended; its first 1001 lines with the CRs removed
    /// have this sha256, and so must our file: a change to it is a change from TF's names.
    #[test]
    fn labels_are_tensorflows_imagenet_labels_txt() {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(IMAGENET_LABELS.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "536feacc519de3d418de26b2effb4d75694a8c4c0063e36499a46fa8061e2da9"
        );
    }

    #[test]
    fn synsets_are_the_sorted_thousand_in_label_order() {
        let synsets = imagenet_synsets();
        assert_eq!(synsets.len(), 1000);
        assert!(synsets.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
        assert!(synsets.iter().all(|s| s.len() == 9 && s.starts_with('n')));
        // Anchors from WordNet: tench, goldfish, toilet tissue.
        assert_eq!(synset_class("n01440764"), Some(1));
        assert_eq!(imagenet()[1], "tench");
        assert_eq!(synset_class("n01443537"), Some(2));
        assert_eq!(imagenet()[2], "goldfish");
        assert_eq!(synset_class("n15075141"), Some(1000));
        assert_eq!(synset_class("n00000000"), None);
    }

    #[test]
    fn softmax_sums_to_one_and_top_k_orders() {
        let p = softmax(&[1000.0, 1000.0, 0.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(top_k(&p, 2), vec![(0, 0.5), (1, 0.5)]);
    }
}
