//! Comparing outputs and deciding PASS or FAIL.
//!
//! Every comparison is written so that NaN fails: an element is within the bar only when
//! both values are finite and `|ours - golden| <= bar` holds (in f64, so that neither the
//! difference nor the bar can overflow to infinity), and a verdict is PASS only when every
//! golden tensor was compared and every element of each was within the bar.

use crate::golden::CELL_PREFIX;
use crate::{Golden, Options, VerifyError};
use nasnet_forward::{Network, Outputs, Tensor};
use serde::Serialize;
use std::collections::BTreeSet;

/// One tensor compared.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub name: String,
    /// Largest |ours - golden| over the elements where ours is finite.
    pub max_abs_error: f32,
    /// `max_abs_error / max |golden|`.
    pub max_rel_error: f32,
    pub max_abs_golden: f32,
    /// The bar for this tensor: `atol * max(1, max |golden|)` (plus `rtol * |golden|` per
    /// element).
    pub bar: f32,
    /// Elements compared.
    pub values: usize,
    /// Elements outside the bar (non-finite ones of ours included).
    pub outside_bar: usize,
    /// Elements of ours that are NaN or ±Inf.
    pub non_finite: usize,
    pub pass: bool,
}

/// Top-k agreement of the logits.
#[derive(Debug, Clone, Serialize)]
pub struct TopK {
    pub k: usize,
    /// Images whose top-1 class agrees.
    pub top1_agree: usize,
    /// Images whose top-k classes agree in order.
    pub topk_agree: usize,
    pub images: usize,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub outputs: Vec<Comparison>,
    pub cells: Vec<Comparison>,
    /// The first cell (in network order) outside the bar or with a non-finite output.
    pub first_divergent_cell: Option<String>,
    /// The first cell (in network order) whose output (ours) holds NaN or ±Inf, whether or
    /// not the golden file has it.
    pub first_non_finite_cell: Option<String>,
    /// Cells of the network the golden file has no output for (not compared).
    pub cells_not_in_golden: Vec<String>,
    pub top_k: Option<TopK>,
    pub pass: bool,
}

/// Runs the golden images through `network` and compares every tensor the golden file has.
///
/// Errors (bad input or usage, not a failed verification): tolerances that are not finite
/// and non-negative, a golden file that does not fit the network, or a golden tensor that
/// could not be compared.
pub fn verify(network: &Network, golden: &Golden, options: Options) -> Result<Report, VerifyError> {
    options.check()?;
    golden.check_against(network.spec())?;
    let mut judge = Judge::new(golden, options);
    let outputs =
        network.forward_with_taps(golden.images(), |scope, ours| judge.cell(scope, ours))?;
    judge.finish(&outputs)
}

/// The verdict on outputs computed elsewhere: `cells` are our cell outputs by scope in
/// network order, `outputs` our logits and features. Same rules and errors as [`verify`]
/// (which runs the network and then does this), without checking that the golden fits a
/// network.
pub fn judge<'t>(
    golden: &Golden,
    options: Options,
    cells: impl IntoIterator<Item = (&'t str, &'t Tensor)>,
    outputs: &Outputs,
) -> Result<Report, VerifyError> {
    options.check()?;
    let mut judge = Judge::new(golden, options);
    for (scope, ours) in cells {
        judge.cell(scope, ours);
    }
    judge.finish(outputs)
}

/// Collects the comparisons of one verification as the network's outputs arrive.
pub(crate) struct Judge<'a> {
    golden: &'a Golden,
    options: Options,
    cells: Vec<Comparison>,
    compared: BTreeSet<String>,
    first_divergent_cell: Option<String>,
    first_non_finite_cell: Option<String>,
    cells_not_in_golden: Vec<String>,
    /// The first golden cell that could not be compared (reported by `finish`).
    error: Option<VerifyError>,
}

impl<'a> Judge<'a> {
    pub(crate) fn new(golden: &'a Golden, options: Options) -> Judge<'a> {
        Judge {
            golden,
            options,
            cells: Vec::new(),
            compared: BTreeSet::new(),
            first_divergent_cell: None,
            first_non_finite_cell: None,
            cells_not_in_golden: Vec::new(),
            error: None,
        }
    }

    /// Our output of the cell `scope`; cells must arrive in network order.
    pub(crate) fn cell(&mut self, scope: &str, ours: &Tensor) {
        let name = format!("{CELL_PREFIX}{scope}");
        let finite = ours.data.iter().all(|v| v.is_finite());
        if !finite && self.first_non_finite_cell.is_none() {
            self.first_non_finite_cell = Some(name.clone());
        }
        let pass = match self.golden.cells.get(scope) {
            Some(theirs) if theirs.shape != ours.shape => {
                self.not_compared(
                    &name,
                    &format!("ours {:?}, golden {:?}", ours.shape, theirs.shape),
                );
                false
            }
            Some(theirs) => {
                let c = compare(&name, &ours.data, &theirs.data, self.options);
                let pass = c.pass;
                self.cells.push(c);
                self.compared.insert(scope.to_string());
                pass
            }
            None => {
                self.cells_not_in_golden.push(scope.to_string());
                finite
            }
        };
        if !pass && self.first_divergent_cell.is_none() {
            self.first_divergent_cell = Some(name);
        }
    }

    fn not_compared(&mut self, name: &str, why: &str) {
        if self.error.is_none() {
            self.error = Some(VerifyError::golden(
                self.golden.path(),
                format!("`{name}` could not be compared ({why}); nothing is skipped, so the file is refused"),
            ));
        }
    }

    /// The report, once the network has run; an error if any golden tensor was not compared.
    pub(crate) fn finish(mut self, outputs: &Outputs) -> Result<Report, VerifyError> {
        if let Some(scope) = self
            .golden
            .cells
            .keys()
            .find(|s| !self.compared.contains(*s))
        {
            let name = format!("{CELL_PREFIX}{scope}");
            self.not_compared(&name, "the network produced no such cell");
        }
        let mut out = Vec::new();
        let mut top_k = None;
        if let Some((golden_logits, [_, classes])) = &self.golden.logits {
            let ours = outputs.logits.as_deref().unwrap_or_default();
            if ours.len() == golden_logits.len() {
                out.push(compare("logits", ours, golden_logits, self.options));
                top_k = Some(top_k_agreement(
                    ours,
                    golden_logits,
                    *classes,
                    self.options.top_k,
                ));
            } else {
                self.not_compared(
                    "logits",
                    &format!(
                        "ours has {} values, golden {}",
                        ours.len(),
                        golden_logits.len()
                    ),
                );
            }
        }
        if let Some((golden_features, _)) = &self.golden.features {
            if outputs.features.len() == golden_features.len() {
                out.push(compare(
                    "features",
                    &outputs.features,
                    golden_features,
                    self.options,
                ));
            } else {
                self.not_compared(
                    "features",
                    &format!(
                        "ours has {} values, golden {}",
                        outputs.features.len(),
                        golden_features.len()
                    ),
                );
            }
        }
        if let Some(error) = self.error {
            return Err(error);
        }
        Ok(self.report(out, top_k))
    }

    fn report(self, outputs: Vec<Comparison>, top_k: Option<TopK>) -> Report {
        let top1_only = self.options.top1_only;
        let top_ok = top_k.as_ref().is_none_or(|t| {
            let agree = if top1_only {
                t.top1_agree
            } else {
                t.topk_agree
            };
            t.images > 0 && agree == t.images
        });
        let pass = top_ok
            && !outputs.is_empty()
            && self.first_divergent_cell.is_none()
            && outputs.iter().chain(&self.cells).all(|c| c.pass);
        Report {
            outputs,
            cells: self.cells,
            first_divergent_cell: self.first_divergent_cell,
            first_non_finite_cell: self.first_non_finite_cell,
            cells_not_in_golden: self.cells_not_in_golden,
            top_k,
            pass,
        }
    }
}

/// Is `ours` within `bar` (plus `rtol * |golden|`) of `golden`? False for NaN or ±Inf on
/// either side, whatever the bar.
fn within_bar(ours: f32, golden: f32, bar: f64, rtol: f64) -> bool {
    if !(ours.is_finite() && golden.is_finite()) {
        return false;
    }
    let golden = f64::from(golden);
    let error = (f64::from(ours) - golden).abs();
    // Written so that a NaN anywhere fails.
    error <= bar + rtol * golden.abs()
}

/// Largest |value| over the finite values (golden files hold no others).
fn max_abs_finite(values: &[f32]) -> f32 {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f32, |m, v| if v.abs() > m { v.abs() } else { m })
}

/// Compares two tensors under the bar of `options`; tensors of different lengths, or empty
/// ones, never pass.
pub(crate) fn compare(name: &str, ours: &[f32], golden: &[f32], options: Options) -> Comparison {
    let max_abs_golden = max_abs_finite(golden);
    let bar = f64::from(options.atol) * f64::from(max_abs_golden.max(1.0));
    let rtol = f64::from(options.rtol);
    let mut max_abs_error = 0f64;
    let (mut outside_bar, mut non_finite) = (0, 0);
    for (&a, &g) in ours.iter().zip(golden) {
        if !a.is_finite() {
            non_finite += 1;
        } else if g.is_finite() {
            max_abs_error = max_abs_error.max((f64::from(a) - f64::from(g)).abs());
        }
        if !within_bar(a, g, bar, rtol) {
            outside_bar += 1;
        }
    }
    let lengths_match = ours.len() == golden.len() && !golden.is_empty();
    let max_abs_error = if non_finite > 0 {
        f32::NAN
    } else {
        max_abs_error as f32
    };
    Comparison {
        name: name.to_string(),
        max_abs_error,
        max_rel_error: max_abs_error / max_abs_golden.max(f32::MIN_POSITIVE),
        max_abs_golden,
        bar: bar as f32,
        values: golden.len(),
        outside_bar,
        non_finite,
        pass: lengths_match && outside_bar == 0 && non_finite == 0,
    }
}

/// Indices of the `k` largest values, largest first.
pub fn top_indices(row: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    idx.truncate(k);
    idx
}

fn top_k_agreement(ours: &[f32], golden: &[f32], classes: usize, k: usize) -> TopK {
    let mut t = TopK {
        k,
        top1_agree: 0,
        topk_agree: 0,
        images: 0,
    };
    if classes == 0 {
        return t;
    }
    for (a, g) in ours.chunks(classes).zip(golden.chunks(classes)) {
        let (ta, tg) = (top_indices(a, k), top_indices(g, k));
        t.images += 1;
        t.top1_agree += usize::from(ta.first() == tg.first());
        t.topk_agree += usize::from(ta == tg);
    }
    t
}

impl Report {
    /// The human-readable report, ending in a PASS or FAIL line.
    pub fn to_text(&self, options: Options) -> String {
        let mut s = format!(
            "bar: max|diff| <= {:e} * max(1, max|golden|){}\n",
            options.atol,
            if options.rtol > 0.0 {
                format!(" + {:e} * |golden|", options.rtol)
            } else {
                String::new()
            }
        );
        s += &format!(
            "{:<44} {:>12} {:>12} {:>12}  result\n",
            "tensor", "max abs err", "max rel err", "max|golden|"
        );
        for c in self.cells.iter().chain(&self.outputs) {
            s += &comparison_line(c);
        }
        if let Some(t) = &self.top_k {
            s += &format!(
                "top-1 agreement: {}/{}; top-{} agreement (same order): {}/{}{}\n",
                t.top1_agree,
                t.images,
                t.k,
                t.topk_agree,
                t.images,
                if options.top1_only {
                    " (the bf16 bar: the top-1 class must agree, the order is reported)"
                } else {
                    ""
                }
            );
        }
        if !self.cells_not_in_golden.is_empty() {
            s += &format!(
                "not in the golden file (not compared): {}\n",
                self.cells_not_in_golden.join(", ")
            );
        }
        if let Some(cell) = &self.first_non_finite_cell {
            s += &format!("first cell with NaN or Inf in our output: {cell}\n");
        }
        if let Some(cell) = &self.first_divergent_cell {
            s += &format!("first divergent cell: {cell}\n");
        }
        s += if self.pass { "PASS\n" } else { "FAIL\n" };
        s
    }
}

fn comparison_line(c: &Comparison) -> String {
    let result = if c.pass {
        "ok".to_string()
    } else if c.non_finite > 0 {
        format!("FAIL ({} of {} values NaN or Inf)", c.non_finite, c.values)
    } else {
        format!(
            "FAIL ({} of {} values outside the bar)",
            c.outside_bar, c.values
        )
    };
    format!(
        "{:<44} {:>12.3e} {:>12.3e} {:>12.4} {result}\n",
        c.name, c.max_abs_error, c.max_rel_error, c.max_abs_golden
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{parse, small_golden};
    use proptest::prelude::*;

    fn small() -> Golden {
        parse(&small_golden()).unwrap()
    }

    fn outputs_of(golden: &Golden) -> Outputs {
        Outputs {
            n: golden.batch(),
            features: golden
                .features
                .as_ref()
                .map(|m| m.0.clone())
                .unwrap_or_default(),
            logits: golden.logits.as_ref().map(|m| m.0.clone()),
        }
    }

    /// Our outputs exactly the golden's, cells in network order (`a` then `b`), after `edit`.
    fn judge_with(
        golden: &Golden,
        edit: impl FnOnce(&mut Vec<(String, Tensor)>, &mut Outputs),
    ) -> Result<Report, VerifyError> {
        let mut cells: Vec<(String, Tensor)> = golden
            .cells
            .iter()
            .map(|(s, t)| (s.clone(), t.clone()))
            .collect();
        let mut outputs = outputs_of(golden);
        edit(&mut cells, &mut outputs);
        judge(
            golden,
            Options::default(),
            cells.iter().map(|(s, t)| (s.as_str(), t)),
            &outputs,
        )
    }

    #[test]
    fn bar_scales_with_the_largest_golden_value() {
        let o = Options::default();
        assert!(compare("x", &[100.0 + 0.009], &[100.0], o).pass);
        assert!(!compare("x", &[100.0 + 0.02], &[100.0], o).pass);
        assert!(!compare("x", &[0.5 + 2e-4], &[0.5], o).pass);
        assert!(compare("x", &[0.5 + 0.5e-4], &[0.5], o).pass);
    }

    #[test]
    fn non_finite_values_never_pass_whatever_the_bar() {
        let huge = Options {
            atol: f32::MAX,
            rtol: f32::MAX,
            top_k: 5,
            top1_only: false,
        };
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for o in [Options::default(), huge] {
                let ours = compare("x", &[0.0, bad], &[0.0, 10.0], o);
                assert!(!ours.pass, "{bad} in ours passed");
                assert_eq!(ours.non_finite, 1);
                assert!(ours.max_abs_error.is_nan());
                // Golden files cannot hold these, but the comparison refuses them anyway.
                assert!(!compare("x", &[0.0, 10.0], &[0.0, bad], o).pass);
                assert!(!compare("x", &[bad], &[bad], o).pass);
            }
        }
    }

    #[test]
    fn the_bar_cannot_overflow_into_a_pass() {
        // In f32, f32::MAX * 10 is +Inf and so is |f32::MAX - (-f32::MAX)|.
        let o = Options {
            atol: f32::MAX,
            ..Options::default()
        };
        assert!(compare("x", &[f32::MAX], &[-f32::MAX], o).pass);
        let o = Options::default();
        let c = compare("x", &[f32::MAX], &[-f32::MAX], o);
        assert!(!c.pass);
        assert_eq!(c.outside_bar, 1);
    }

    #[test]
    fn tensors_of_other_lengths_or_empty_never_pass() {
        let o = Options::default();
        assert!(!compare("x", &[1.0], &[1.0, 2.0], o).pass);
        assert!(!compare("x", &[1.0, 2.0], &[1.0], o).pass);
        assert!(!compare("x", &[], &[], o).pass);
    }

    #[test]
    fn identical_outputs_pass() {
        let g = small();
        let report = judge_with(&g, |_, _| {}).unwrap();
        assert!(report.pass, "{}", report.to_text(Options::default()));
        assert_eq!(report.cells.len(), 2);
        assert_eq!(report.outputs.len(), 2);
        assert!(report.first_divergent_cell.is_none());
        let t = report.top_k.as_ref().unwrap();
        assert_eq!((t.images, t.topk_agree, t.top1_agree), (2, 2, 2));
        assert!(report.to_text(Options::default()).ends_with("PASS\n"));
    }

    #[test]
    fn nan_in_our_output_fails_naming_the_first_cell_in_network_order() {
        let g = small();
        // NaN in both cells: `a` runs first.
        let report = judge_with(&g, |cells, _| {
            cells[0].1.data[3] = f32::NAN;
            cells[1].1.data[0] = f32::INFINITY;
        })
        .unwrap();
        assert!(!report.pass);
        assert_eq!(
            report.first_divergent_cell.as_deref(),
            Some("cell_output/a")
        );
        assert_eq!(
            report.first_non_finite_cell.as_deref(),
            Some("cell_output/a")
        );
        let text = report.to_text(Options::default());
        assert!(text.contains("FAIL (1 of 16 values NaN or Inf)"), "{text}");
        assert!(text.ends_with("FAIL\n"), "{text}");
    }

    #[test]
    fn nan_in_a_cell_the_golden_lacks_still_fails_and_is_named() {
        let g = small();
        let report = judge_with(&g, |cells, _| {
            let mut hidden = cells[0].1.clone();
            hidden.data[0] = f32::NAN;
            cells.insert(0, ("hidden".into(), hidden));
        })
        .unwrap();
        assert!(!report.pass);
        assert_eq!(
            report.first_divergent_cell.as_deref(),
            Some("cell_output/hidden")
        );
        assert_eq!(report.cells_not_in_golden, ["hidden"]);
    }

    #[test]
    fn nan_in_our_logits_or_features_fails() {
        let g = small();
        let report = judge_with(&g, |_, o| o.logits.as_mut().unwrap()[7] = f32::NAN).unwrap();
        assert!(!report.pass);
        assert!(!report.outputs[0].pass && report.outputs[0].name == "logits");
        let report = judge_with(&g, |_, o| o.features[0] = f32::NEG_INFINITY).unwrap();
        assert!(!report.pass);
        assert!(report.first_divergent_cell.is_none());
    }

    #[test]
    fn a_top5_swap_fails_even_within_the_bar() {
        // Image 0's two largest golden logits are 1e-5 apart: ours swaps them, well within the
        // bar of 1e-4, yet the top-5 order differs.
        let mut tensors = small_golden();
        tensors[1].2[..5].copy_from_slice(&[0.1, 0.2, 0.3, 0.4, 0.40001]);
        let g = parse(&tensors).unwrap();
        let report = judge_with(&g, |_, o| {
            let logits = o.logits.as_mut().unwrap();
            logits[3] = 0.40001;
            logits[4] = 0.4;
        })
        .unwrap();
        assert!(report.outputs[0].pass, "{:?}", report.outputs[0]);
        let t = report.top_k.as_ref().unwrap();
        assert_eq!((t.top1_agree, t.topk_agree, t.images), (1, 1, 2));
        assert!(!report.pass);
    }

    #[test]
    fn a_golden_cell_never_produced_is_an_error_not_a_pass() {
        let g = small();
        let err = judge_with(&g, |cells, _| cells.truncate(1)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`cell_output/b` could not be compared"),
            "{text}"
        );
        assert!(text.starts_with("test.golden.safetensors"), "{text}");
    }

    #[test]
    fn golden_logits_without_ours_are_an_error() {
        let g = small();
        let err = judge_with(&g, |_, o| o.logits = None).unwrap_err();
        assert!(
            err.to_string().contains("`logits` could not be compared"),
            "{err}"
        );
        let err = judge_with(&g, |cells, _| cells[1].1.shape = [2, 4, 1, 1]).unwrap_err();
        assert!(
            err.to_string()
                .contains("`cell_output/b` could not be compared"),
            "{err}"
        );
    }

    #[test]
    fn top_indices_in_order() {
        assert_eq!(top_indices(&[0.1, 0.9, 0.5, 0.7], 3), vec![1, 3, 2]);
    }

    /// A tensor of `len` golden values in ±`scale`, and a tolerance.
    fn case() -> impl Strategy<Value = (Vec<f32>, Vec<f64>, f32)> {
        (1usize..200, 1e-3f32..1e4, 1e-5f32..1e-1).prop_flat_map(|(len, scale, atol)| {
            (
                prop::collection::vec(-scale..scale, len),
                prop::collection::vec(-0.5f64..0.5, len),
                Just(atol),
            )
        })
    }

    #[derive(Debug, Clone, Copy)]
    enum Injected {
        Nan,
        PlusInf,
        MinusInf,
        OutsideBar(f64),
    }

    fn injected() -> impl Strategy<Value = Injected> {
        prop_oneof![
            Just(Injected::Nan),
            Just(Injected::PlusInf),
            Just(Injected::MinusInf),
            (prop_oneof![-1e6f64..-2.0, 2.0f64..1e6]).prop_map(Injected::OutsideBar),
        ]
    }

    /// Ours: golden plus `noise` times the bar (within it when |noise| <= 0.5).
    fn ours_within(golden: &[f32], noise: &[f64], atol: f32) -> Vec<f32> {
        let bar = bar_of(golden, atol);
        golden
            .iter()
            .zip(noise)
            .map(|(&g, &u)| (f64::from(g) + u * bar) as f32)
            .collect()
    }

    /// The bar computed independently of `compare`.
    fn bar_of(golden: &[f32], atol: f32) -> f64 {
        let max = golden
            .iter()
            .map(|g| f64::from(g.abs()))
            .fold(1.0, f64::max);
        f64::from(atol) * max
    }

    /// Every golden that parses: identical outputs PASS, and one NaN in any compared cell FAILs.
    fn check_verdicts(g: &Golden) -> Result<(), TestCaseError> {
        let report = judge_with(g, |_, _| {}).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(report.pass, "{}", report.to_text(Options::default()));
        for k in 0..g.cells.len() {
            let report = judge_with(g, |cells, _| cells[k].1.data[0] = f32::NAN)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(!report.pass);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn within_the_bar_everywhere_passes((golden, noise, atol) in case()) {
            let ours = ours_within(&golden, &noise, atol);
            let o = Options { atol, ..Options::default() };
            prop_assert!(compare("x", &ours, &golden, o).pass);
        }

        #[test]
        fn one_injected_bad_value_anywhere_always_fails(
            (golden, noise, atol) in case(),
            at in any::<prop::sample::Index>(),
            bad in injected(),
        ) {
            let mut ours = ours_within(&golden, &noise, atol);
            let i = at.index(ours.len());
            ours[i] = match bad {
                Injected::Nan => f32::NAN,
                Injected::PlusInf => f32::INFINITY,
                Injected::MinusInf => f32::NEG_INFINITY,
                Injected::OutsideBar(k) => (f64::from(golden[i]) + k * bar_of(&golden, atol)) as f32,
            };
            let o = Options { atol, ..Options::default() };
            let c = compare("x", &ours, &golden, o);
            prop_assert!(!c.pass, "{:?} at {} passed: {:?}", bad, i, c);
            prop_assert_eq!(c.outside_bar, 1);
        }

        #[test]
        fn any_golden_that_parses_passes_against_itself_and_fails_with_a_nan(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut bytes = crate::test_support::golden_bytes(&small_golden());
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] ^= byte;
            }
            if let Ok(g) = Golden::from_bytes(std::path::Path::new("x"), &bytes) {
                check_verdicts(&g)?;
            }
        }

        #[test]
        fn a_verdict_is_pass_only_if_every_value_of_every_tensor_is_finite_and_within_the_bar(
            tensor in 0usize..4,
            at in any::<prop::sample::Index>(),
            bad in prop::option::of(injected()),
        ) {
            let g = small();
            let report = judge_with(&g, |cells, outputs| {
                let Some(bad) = bad else { return };
                let bar = 1e-4;
                let values: &mut Vec<f32> = match tensor {
                    0 => &mut cells[0].1.data,
                    1 => &mut cells[1].1.data,
                    2 => outputs.logits.as_mut().unwrap(),
                    _ => &mut outputs.features,
                };
                let i = at.index(values.len());
                values[i] = match bad {
                    Injected::Nan => f32::NAN,
                    Injected::PlusInf => f32::INFINITY,
                    Injected::MinusInf => f32::NEG_INFINITY,
                    Injected::OutsideBar(k) => (f64::from(values[i]) + k * bar) as f32,
                };
            }).unwrap();
            prop_assert_eq!(report.pass, bad.is_none(), "{}", report.to_text(Options::default()));
        }
    }
}
