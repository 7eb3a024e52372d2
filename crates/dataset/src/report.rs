//! Accuracy: top-1/top-5 tallies per class, their merge across shards, the JSON report.
//!
//! Classes are the model's logit indices (for a 1001-class ImageNet model, index 0 is TF-slim's
//! `background`, which no photo is: predicting it is wrong); names come from the ImageNet
//! labels for 1000 and 1001 classes.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The report's format name, checked by [`merge`].
pub const FORMAT: &str = "amoeba-eval-report/1";
/// How many of a class's wrong top-1 predictions a summary names.
const CONFUSIONS_SHOWN: usize = 3;

/// One class's photos and how they were classified.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassTally {
    pub images: u64,
    pub top1: u64,
    pub top5: u64,
    /// Wrong top-1 predictions: class → count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub confused_with: BTreeMap<u32, u64>,
}

/// Counts over a set of photos.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tally {
    /// Photos classified (failures not included).
    pub images: u64,
    pub top1: u64,
    pub top5: u64,
    /// Photos that could not be read or decoded.
    pub failed: u64,
    pub classes: BTreeMap<u32, ClassTally>,
}

impl Tally {
    /// A photo of class `truth` whose predictions, best first, are `top` (at least five
    /// where the model has them).
    pub fn add(&mut self, truth: u32, top: &[u32]) {
        let hit1 = top.first() == Some(&truth);
        let hit5 = top.iter().take(5).any(|&c| c == truth);
        self.images += 1;
        self.top1 += u64::from(hit1);
        self.top5 += u64::from(hit5);
        let class = self.classes.entry(truth).or_default();
        class.images += 1;
        class.top1 += u64::from(hit1);
        class.top5 += u64::from(hit5);
        if let (false, Some(&first)) = (hit1, top.first()) {
            *class.confused_with.entry(first).or_default() += 1;
        }
    }

    pub fn add_failure(&mut self) {
        self.failed += 1;
    }

    /// Adds another tally's counts to this one; `None` (and this tally unspecified) if a
    /// count would overflow, which only a forged report can make happen.
    pub fn merge(&mut self, other: &Tally) -> Option<()> {
        let add = |a: &mut u64, b: u64| -> Option<()> {
            *a = a.checked_add(b)?;
            Some(())
        };
        add(&mut self.images, other.images)?;
        add(&mut self.top1, other.top1)?;
        add(&mut self.top5, other.top5)?;
        add(&mut self.failed, other.failed)?;
        for (class, theirs) in &other.classes {
            let ours = self.classes.entry(*class).or_default();
            add(&mut ours.images, theirs.images)?;
            add(&mut ours.top1, theirs.top1)?;
            add(&mut ours.top5, theirs.top5)?;
            for (c, n) in &theirs.confused_with {
                add(ours.confused_with.entry(*c).or_default(), *n)?;
            }
        }
        Some(())
    }

    /// Whether the counts are ones a tally can hold: top-1 <= top-5 <= photos, overall and
    /// per class, the classes summing to the totals, every class below `num_classes`.
    fn consistent(&self, num_classes: u32) -> bool {
        let ok = |images: u64, top1: u64, top5: u64| top1 <= top5 && top5 <= images;
        let sum = |f: fn(&ClassTally) -> u64| {
            self.classes
                .values()
                .try_fold(0u64, |acc, c| acc.checked_add(f(c)))
        };
        ok(self.images, self.top1, self.top5)
            && self.classes.iter().all(|(&k, c)| {
                k < num_classes
                    && ok(c.images, c.top1, c.top5)
                    && c.confused_with.keys().all(|&p| p < num_classes)
            })
            && sum(|c| c.images) == Some(self.images)
            && sum(|c| c.top1) == Some(self.top1)
            && sum(|c| c.top5) == Some(self.top5)
    }
}

/// The photo list a report covers: its length before sharding and its digest.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ListIdentity {
    pub photos: u64,
    pub digest: String,
}

/// An evaluation's report: what was evaluated, the counts, the speed, and a summary.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub format: String,
    /// The model as named on the command line (informative: paths differ between machines).
    pub model: String,
    /// sha256 of the network plan's JSON (the architecture, not the weights: two checkpoints
    /// of one architecture share it): reports of different networks do not merge.
    pub network: String,
    pub labels: String,
    /// sha256 of the ground-truth file: reports scored against other labels do not merge.
    pub labels_digest: String,
    /// The model's classes (the logits' width).
    pub num_classes: u32,
    pub list: ListIdentity,
    /// The shards this report covers (1-based) out of `shard_count`.
    pub shard_count: u32,
    pub shards: Vec<u32>,
    /// Photos run (not resumed from a record) and the wall seconds they took.
    pub timed_images: u64,
    pub seconds: f64,
    pub tally: Tally,
    /// Derived from the above by [`Report::summarize`]; ignored when a report is read back.
    #[serde(default)]
    pub summary: Summary,
}

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub images: u64,
    pub failed: u64,
    pub top1_accuracy: f64,
    pub top5_accuracy: f64,
    pub images_per_second: f64,
    pub worst_classes: Vec<WorstClass>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WorstClass {
    pub class: u32,
    pub label: String,
    pub synset: String,
    pub images: u64,
    pub top1_accuracy: f64,
    pub top5_accuracy: f64,
    /// Its most frequent wrong top-1 predictions, most frequent first.
    pub confused_with: Vec<Confusion>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Confusion {
    pub class: u32,
    pub label: String,
    pub count: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// A logit index's name and WordNet id (empty where the model's classes are not ImageNet's,
/// and for `background`).
fn describe(class: u32, num_classes: u32) -> (String, String) {
    let index = class as usize;
    let label = preprocess::labels::class_name(index, num_classes as usize);
    let synset_index = match num_classes {
        1001 => index.checked_sub(1),
        1000 => Some(index),
        _ => None,
    };
    let synset = synset_index
        .and_then(|i| preprocess::labels::imagenet_synsets().get(i))
        .map_or_else(String::new, |s| (*s).to_string());
    (label, synset)
}

impl Report {
    /// Fills `summary` from the counts, naming the `worst` classes of lowest top-1 accuracy
    /// (ties: more photos first, then lower class).
    pub fn summarize(&mut self, worst: usize) {
        let t = &self.tally;
        let mut classes: Vec<(&u32, &ClassTally)> = t.classes.iter().collect();
        classes.sort_by(|a, b| {
            ratio(a.1.top1, a.1.images)
                .total_cmp(&ratio(b.1.top1, b.1.images))
                .then(b.1.images.cmp(&a.1.images))
                .then(a.0.cmp(b.0))
        });
        let worst_classes = classes
            .into_iter()
            .take(worst)
            .map(|(&class, c)| worst_class(class, c, self.num_classes))
            .collect();
        self.summary = Summary {
            images: t.images,
            failed: t.failed,
            top1_accuracy: ratio(t.top1, t.images),
            top5_accuracy: ratio(t.top5, t.images),
            images_per_second: if self.seconds > 0.0 {
                self.timed_images as f64 / self.seconds
            } else {
                0.0
            },
            worst_classes,
        };
    }
}

fn worst_class(class: u32, c: &ClassTally, num_classes: u32) -> WorstClass {
    let (label, synset) = describe(class, num_classes);
    let mut confused: Vec<(&u32, &u64)> = c.confused_with.iter().collect();
    confused.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    WorstClass {
        class,
        label,
        synset,
        images: c.images,
        top1_accuracy: ratio(c.top1, c.images),
        top5_accuracy: ratio(c.top5, c.images),
        confused_with: confused
            .into_iter()
            .take(CONFUSIONS_SHOWN)
            .map(|(&class, &count)| Confusion {
                class,
                label: describe(class, num_classes).0,
                count,
            })
            .collect(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no reports to merge")]
    Nothing,
    #[error("{}: {problem}", path.display())]
    Mismatch { path: PathBuf, problem: String },
    #[error("{}: shard {shard}/{count} is also in {}", path.display(), other.display())]
    Twice {
        path: PathBuf,
        other: PathBuf,
        shard: u32,
        count: u32,
    },
    #[error("shards missing: {missing} of {count} (the reports given cover {covered}); evaluate them and merge again")]
    Missing {
        missing: String,
        count: u32,
        covered: usize,
    },
}

/// The sum of shard reports of one list and one network, which must cover every shard of
/// it exactly once.
pub fn merge(reports: &[(PathBuf, Report)]) -> Result<Report, MergeError> {
    let (first_path, first) = reports.first().ok_or(MergeError::Nothing)?;
    let mut merged = first.clone();
    let mut owner: BTreeMap<u32, &PathBuf> =
        first.shards.iter().map(|&s| (s, first_path)).collect();
    check_shape(first_path, first)?;
    for (path, report) in &reports[1..] {
        check_shape(path, report)?;
        let mismatch = |problem: String| MergeError::Mismatch {
            path: path.clone(),
            problem,
        };
        if report.network != first.network || report.num_classes != first.num_classes {
            return Err(mismatch(format!(
                "another network than {}'s (plan digest {} vs {})",
                first_path.display(),
                report.network,
                first.network
            )));
        }
        if report.labels_digest != first.labels_digest {
            return Err(mismatch(format!(
                "scored against other ground truth than {}'s (labels digest {} vs {})",
                first_path.display(),
                report.labels_digest,
                first.labels_digest
            )));
        }
        if report.list != first.list || report.shard_count != first.shard_count {
            return Err(mismatch(format!(
                "another photo list or split than {}'s ({} photos in {} shards, digest {}, vs {} in {}, {})",
                first_path.display(),
                report.list.photos,
                report.shard_count,
                report.list.digest,
                first.list.photos,
                first.shard_count,
                first.list.digest
            )));
        }
        for &shard in &report.shards {
            if let Some(other) = owner.insert(shard, path) {
                return Err(MergeError::Twice {
                    path: path.clone(),
                    other: other.clone(),
                    shard,
                    count: first.shard_count,
                });
            }
        }
        merged
            .tally
            .merge(&report.tally)
            .ok_or_else(|| mismatch("its counts overflow".into()))?;
        merged.timed_images = merged.timed_images.saturating_add(report.timed_images);
        merged.seconds += report.seconds;
    }
    let missing: Vec<String> = (1..=first.shard_count)
        .filter(|s| !owner.contains_key(s))
        .map(|s| s.to_string())
        .collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(20).cloned().collect();
        let more = if missing.len() > 20 { ", ..." } else { "" };
        return Err(MergeError::Missing {
            missing: format!("{}{more}", shown.join(", ")),
            count: first.shard_count,
            covered: owner.len(),
        });
    }
    merged.shards = owner.into_keys().collect();
    merged.model = reports
        .iter()
        .map(|(_, r)| r.model.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(", ");
    Ok(merged)
}

fn check_shape(path: &std::path::Path, report: &Report) -> Result<(), MergeError> {
    let mismatch = |problem: &str| MergeError::Mismatch {
        path: path.to_path_buf(),
        problem: problem.to_string(),
    };
    if report.format != FORMAT {
        return Err(mismatch(&format!(
            "not an eval report (format `{}`, expected `{FORMAT}`)",
            report.format
        )));
    }
    if report.shard_count == 0
        || report
            .shards
            .iter()
            .any(|&s| s == 0 || s > report.shard_count)
    {
        return Err(mismatch("its shards are not within 1..=shard_count"));
    }
    let distinct: std::collections::BTreeSet<&u32> = report.shards.iter().collect();
    if distinct.len() != report.shards.len() {
        return Err(mismatch("it names a shard twice"));
    }
    if !report.tally.consistent(report.num_classes) {
        return Err(mismatch(
            "its counts are not a tally's (top-1 <= top-5 <= photos, classes summing to the totals, each below the class count)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn report(shards: Vec<u32>, count: u32, tally: Tally) -> Report {
        Report {
            format: FORMAT.into(),
            model: "m".into(),
            network: "net".into(),
            labels: "l".into(),
            labels_digest: "ld".into(),
            num_classes: 1001,
            list: ListIdentity {
                photos: 10,
                digest: "d".into(),
            },
            shard_count: count,
            shards,
            timed_images: tally.images,
            seconds: 1.0,
            tally,
            summary: Summary::default(),
        }
    }

    #[test]
    fn counts_top1_top5_and_confusions() {
        let mut t = Tally::default();
        t.add(7, &[7, 1, 2, 3, 4]);
        t.add(7, &[1, 7, 2, 3, 4]);
        t.add(7, &[1, 2, 3, 4, 5, 7]);
        t.add(9, &[0, 9]);
        t.add_failure();
        assert_eq!((t.images, t.top1, t.top5, t.failed), (4, 1, 3, 1));
        assert_eq!(t.classes[&7].confused_with[&1], 2);
        assert_eq!(
            t.classes[&9].confused_with[&0], 1,
            "background counts as a wrong class"
        );
        let mut r = report(vec![1], 1, t);
        r.summarize(1);
        assert_eq!(r.summary.top1_accuracy, 0.25);
        assert_eq!(r.summary.top5_accuracy, 0.75);
        let worst = &r.summary.worst_classes[0];
        assert_eq!((worst.class, worst.images), (9, 1));
        assert_eq!(worst.confused_with[0].label, "background");
        assert_eq!(
            describe(1, 1001),
            ("tench".to_string(), "n01440764".to_string())
        );
        assert_eq!(
            describe(0, 1000),
            ("tench".to_string(), "n01440764".to_string())
        );
        assert_eq!(describe(0, 1001), ("background".to_string(), String::new()));
        assert_eq!(describe(3, 10), ("class 3".to_string(), String::new()));
    }

    #[test]
    fn merge_refuses_other_lists_twice_given_and_missing_shards() {
        let a = (
            PathBuf::from("a.json"),
            report(vec![1], 3, Tally::default()),
        );
        let b = (
            PathBuf::from("b.json"),
            report(vec![2], 3, Tally::default()),
        );
        let c = (
            PathBuf::from("c.json"),
            report(vec![3], 3, Tally::default()),
        );
        assert!(merge(&[a.clone(), b.clone(), c.clone()]).is_ok());
        let err = merge(&[a.clone(), c.clone()])
            .expect_err("missing")
            .to_string();
        assert!(err.starts_with("shards missing: 2 of 3"), "{err}");
        let err = merge(&[a.clone(), b.clone(), b.clone(), c.clone()]).expect_err("twice");
        assert!(
            err.to_string().contains("shard 2/3 is also in b.json"),
            "{err}"
        );
        let mut other = b.clone();
        other.1.list.digest = "e".into();
        let err = merge(&[a.clone(), other, c.clone()]).expect_err("other list");
        assert!(
            err.to_string().starts_with("b.json: another photo list"),
            "{err}"
        );
        let mut other = b.clone();
        other.1.network = "other".into();
        assert!(merge(&[a.clone(), other, c.clone()]).is_err());
        let mut bad = a.clone();
        bad.1.format = "x".into();
        assert!(merge(&[bad]).is_err());
        let mut other = b.clone();
        other.1.labels_digest = "other".into();
        let err = merge(&[a.clone(), other, c.clone()]).expect_err("other labels");
        assert!(err.to_string().contains("other ground truth"), "{err}");
        let mut forged = a.clone();
        forged.1.tally.top1 = 5;
        let err = merge(&[forged, b.clone(), c.clone()]).expect_err("forged");
        assert!(err.to_string().contains("not a tally's"), "{err}");
        let mut twice = a.clone();
        twice.1.shards = vec![1, 1];
        assert!(merge(&[twice, b.clone(), c.clone()]).is_err());
        assert!(matches!(merge(&[]), Err(MergeError::Nothing)));
    }

    proptest! {
        /// Tallying shard by shard then merging equals tallying everything at once.
        #[test]
        fn merged_shards_equal_one_run(
            photos in proptest::collection::vec((1u32..20, proptest::collection::vec(0u32..20, 0..6)), 0..200),
            count in 1u32..6,
        ) {
            let mut whole = Tally::default();
            for (truth, top) in &photos {
                whole.add(*truth, top);
            }
            prop_assert!(whole.consistent(1001));
            let mut parts = Vec::new();
            for index in 1..=count {
                let mut t = Tally::default();
                for (truth, top) in &photos[crate::Shard { index, count }.range(photos.len())] {
                    t.add(*truth, top);
                }
                parts.push((PathBuf::from(format!("{index}")), report(vec![index], count, t)));
            }
            let merged = merge(&parts).expect("covers every shard");
            prop_assert_eq!(merged.tally, whole);
        }
    }
}
