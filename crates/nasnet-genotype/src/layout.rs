//! Cell order, widths and spatial sizes: the `CellLayout` of every cell, computed with TF's
//! SAME/VALID arithmetic and the official `_reduce_prev_layer` rules.

use crate::error::GenotypeError;
use crate::spec::{CellKind, CellLayout, Genotype, PrevAdjust};

/// Output size of a TF SAME conv/pool: `ceil(in / stride)`.
pub fn same_out(input: usize, stride: usize) -> usize {
    input.div_ceil(stride.max(1))
}

/// Output size of a TF VALID conv/pool: `(in - k) / stride + 1` (0 if the window does not fit).
pub fn valid_out(input: usize, kernel: usize, stride: usize) -> usize {
    if input < kernel {
        0
    } else {
        (input - kernel) / stride.max(1) + 1
    }
}

/// TF SAME padding of one dimension: (before, after); the extra pixel goes after.
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = same_out(input, stride);
    let total = ((out.saturating_sub(1)) * stride + kernel).saturating_sub(input);
    (total / 2, total - total / 2)
}

/// Spatial size after the stem conv (3x3, stride 2, VALID).
pub fn stem_out(image: [usize; 2]) -> [usize; 2] {
    [valid_out(image[0], 3, 2), valid_out(image[1], 3, 2)]
}

/// One cell in network order, before sizes are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellPlan {
    pub scope: String,
    pub kind: CellKind,
    /// Width of each hidden state.
    pub filters: usize,
    /// Index of the `prev_layer` output (0 = stem, k = cell k-1); `None` = the default,
    /// the output before this cell's input (AmoebaNet's `cell_outputs[-2]`).
    pub prev: Option<usize>,
}

/// Computes every cell's layout. Outputs are numbered 0 = stem, k = output of cell k-1.
pub fn build_layout(
    genotype: &Genotype,
    plan: &[CellPlan],
    stem_filters: usize,
    image: [usize; 2],
) -> Result<Vec<CellLayout>, GenotypeError> {
    let mut outputs: Vec<([usize; 2], usize)> = vec![(stem_out(image), stem_filters)];
    let mut cells = Vec::with_capacity(plan.len());
    for (i, cell) in plan.iter().enumerate() {
        let input = i;
        let prev = match (i, cell.prev) {
            (0, _) => None,
            (_, Some(p)) if p < i => Some(p),
            (_, Some(p)) => {
                return Err(GenotypeError::layout(
                    &cell.scope,
                    format!("prev_layer is output {p}, which is not computed before it"),
                ))
            }
            (_, None) => Some(i - 1),
        };
        let (input_hw, input_channels) = outputs[input];
        let prev_adjust = prev_adjust(prev.map(|p| outputs[p]), input_hw, cell.filters);
        let stride = if cell.kind == CellKind::Normal { 1 } else { 2 };
        let output_hw = [same_out(input_hw[0], stride), same_out(input_hw[1], stride)];
        let output_channels = cell.filters * genotype.cell(cell.kind).concat_states().len();
        if output_hw.contains(&0) || cell.filters == 0 {
            return Err(GenotypeError::layout(
                &cell.scope,
                "empty output: image too small or zero width",
            ));
        }
        outputs.push((output_hw, output_channels));
        cells.push(CellLayout {
            scope: cell.scope.clone(),
            kind: cell.kind,
            filters: cell.filters,
            stride,
            input,
            prev,
            prev_adjust,
            input_hw,
            input_channels,
            output_hw,
            output_channels,
        });
    }
    Ok(cells)
}

/// `_reduce_prev_layer`: the spatial size is compared on the width (NHWC `shape[2]`).
fn prev_adjust(
    prev: Option<([usize; 2], usize)>,
    net_hw: [usize; 2],
    filters: usize,
) -> PrevAdjust {
    match prev {
        None => PrevAdjust::UseInput,
        Some((hw, _)) if hw[1] != net_hw[1] => PrevAdjust::FactorizedReduction,
        Some((_, c)) if c != filters => PrevAdjust::Prev1x1,
        Some(_) => PrevAdjust::Unchanged,
    }
}

/// The official reduction positions: `int(k / (R + 1) * num_cells)` for k = 1..R.
pub fn default_reduction_indices(num_cells: usize, num_reductions: usize) -> Vec<usize> {
    (1..=num_reductions)
        .map(|k| (k as f64 / (num_reductions + 1) as f64 * num_cells as f64) as usize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_arithmetic_matches_the_spec() {
        assert_eq!(same_padding(42, 3, 2), (0, 1));
        assert_eq!(same_padding(42, 7, 2), (2, 3));
        assert_eq!(same_padding(165, 3, 2), (1, 1));
        assert_eq!(same_padding(83, 7, 2), (3, 3));
        assert_eq!(same_padding(21, 3, 2), (1, 1));
        assert_eq!(stem_out([331, 331]), [165, 165]);
        assert_eq!(same_out(83, 2), 42);
    }

    #[test]
    fn reduction_positions() {
        assert_eq!(default_reduction_indices(18, 2), vec![6, 12]);
        assert_eq!(default_reduction_indices(6, 2), vec![2, 4]);
        assert_eq!(default_reduction_indices(3, 2), vec![1, 2]);
    }
}
