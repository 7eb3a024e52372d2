//! Comparing outputs and deciding PASS or FAIL.

use crate::Golden;
use nasnet_forward::{ForwardError, Network};
use serde::Serialize;

/// Tolerances.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Absolute bar, scaled by `max(1, max |golden|)` of each tensor.
    pub atol: f32,
    /// Relative bar per element (0 by default).
    pub rtol: f32,
    /// How many top classes must agree, in order.
    pub top_k: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            atol: 1e-4,
            rtol: 0.0,
            top_k: 5,
        }
    }
}

/// One tensor compared.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub name: String,
    pub max_abs_error: f32,
    /// Largest |difference| / max |golden| over the tensor.
    pub max_rel_error: f32,
    pub max_abs_golden: f32,
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
    /// The first cell (in network order) outside the bar.
    pub first_divergent_cell: Option<String>,
    pub top_k: Option<TopK>,
    pub pass: bool,
}

/// Runs the golden images through `network` and compares everything the golden file has.
pub fn verify(
    network: &Network,
    golden: &Golden,
    options: Options,
) -> Result<Report, ForwardError> {
    let mut cells = Vec::new();
    let outputs = network.forward_with_taps(&golden.images, |scope, ours| {
        if let Some(theirs) = golden.cells.get(scope) {
            let name = format!("cell_output/{scope}");
            let c = if theirs.shape == ours.shape {
                compare(&name, &ours.data, &theirs.data, options)
            } else {
                shape_mismatch(&name)
            };
            cells.push(c);
        }
    })?;
    let mut out = Vec::new();
    let mut top_k = None;
    if let Some((golden_logits, shape)) = &golden.logits {
        match &outputs.logits {
            Some(ours) if ours.len() == golden_logits.len() => {
                out.push(compare("logits", ours, golden_logits, options));
                top_k = Some(top_k_agreement(
                    ours,
                    golden_logits,
                    shape[1],
                    options.top_k,
                ));
            }
            _ => out.push(shape_mismatch("logits")),
        }
    }
    if let Some((golden_features, _)) = &golden.features {
        if outputs.features.len() == golden_features.len() {
            out.push(compare(
                "features",
                &outputs.features,
                golden_features,
                options,
            ));
        } else {
            out.push(shape_mismatch("features"));
        }
    }
    let first_divergent_cell = cells.iter().find(|c| !c.pass).map(|c| c.name.clone());
    let top_ok = top_k.as_ref().is_none_or(|t| t.topk_agree == t.images);
    let pass = top_ok && out.iter().chain(&cells).all(|c| c.pass) && !out.is_empty();
    Ok(Report {
        outputs: out,
        cells,
        first_divergent_cell,
        top_k,
        pass,
    })
}

fn shape_mismatch(name: &str) -> Comparison {
    Comparison {
        name: format!("{name} (shape differs from golden)"),
        max_abs_error: f32::INFINITY,
        max_rel_error: f32::INFINITY,
        max_abs_golden: 0.0,
        pass: false,
    }
}

/// Compares two equally long tensors under the bar of `options`.
pub(crate) fn compare(name: &str, ours: &[f32], golden: &[f32], options: Options) -> Comparison {
    let max_abs_golden = golden.iter().fold(0f32, |m, g| m.max(g.abs()));
    let bar = options.atol * max_abs_golden.max(1.0);
    let mut max_abs_error = 0f32;
    let mut pass = true;
    for (&a, &g) in ours.iter().zip(golden) {
        let d = (a - g).abs();
        // NaN never passes.
        if d.is_nan() || d > bar + options.rtol * g.abs() {
            pass = false;
        }
        if d.is_nan() {
            max_abs_error = f32::NAN;
        } else if !max_abs_error.is_nan() {
            max_abs_error = max_abs_error.max(d);
        }
    }
    Comparison {
        name: name.to_string(),
        max_abs_error,
        max_rel_error: max_abs_error / max_abs_golden.max(f32::MIN_POSITIVE),
        max_abs_golden,
        pass,
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
            s += &format!(
                "{:<44} {:>12.3e} {:>12.3e} {:>12.4} {}\n",
                c.name,
                c.max_abs_error,
                c.max_rel_error,
                c.max_abs_golden,
                if c.pass { "ok" } else { "FAIL" }
            );
        }
        if let Some(t) = &self.top_k {
            s += &format!(
                "top-1 agreement: {}/{}; top-{} agreement (same order): {}/{}\n",
                t.top1_agree, t.images, t.k, t.topk_agree, t.images
            );
        }
        if let Some(cell) = &self.first_divergent_cell {
            s += &format!("first divergent cell: {cell}\n");
        }
        s += if self.pass { "PASS\n" } else { "FAIL\n" };
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_scales_with_the_largest_golden_value() {
        let o = Options::default();
        assert!(compare("x", &[100.0 + 0.009], &[100.0], o).pass);
        assert!(!compare("x", &[100.0 + 0.02], &[100.0], o).pass);
        assert!(!compare("x", &[0.5 + 2e-4], &[0.5], o).pass);
    }

    #[test]
    fn nan_fails() {
        assert!(!compare("x", &[f32::NAN], &[0.0], Options::default()).pass);
    }

    #[test]
    fn top_indices_in_order() {
        assert_eq!(top_indices(&[0.1, 0.9, 0.5, 0.7], 3), vec![1, 3, 2]);
    }
}
