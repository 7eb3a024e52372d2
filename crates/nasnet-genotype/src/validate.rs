//! The one check every network description passes before anything uses it
//! ([`NetworkSpec::validate`]): extraction, [`NetworkSpec::from_json`] and
//! [`NetworkSpec::from_layout`] call it, and the forward pass calls it again at load because
//! the type's fields are public. A description it accepts is one the forward pass supports,
//! whose sizes are within [`limits`], and whose activations fit the per-image budget; the
//! forward pass relies on that and nothing after it can panic on the description.
//!
//! Every refusal names the field as a JSON path (`genotype.normal.operations[7].kernel`,
//! `cells[3].stride`), what is wrong, and the cap when a cap is at fault.

use crate::error::GenotypeError;
use crate::layout::{same_out, stem_out};
use crate::spec::{CellKind, CellLayout, CellSpec, NetworkSpec, Operation, PrevAdjust};
use crate::variables::parse_cell_scope;
use std::collections::HashSet;

/// The caps a description must stay within, each well above the published networks.
pub mod limits {
    /// Largest image side (the NASNet-family modules use 224 and 331).
    pub const MAX_IMAGE_SIDE: usize = 4096;
    /// Most operations per cell (published cells have 10: five combinations of two).
    pub const MAX_OPERATIONS_PER_CELL: usize = 32;
    /// Largest kernel of a convolution or pool (published: 2, 3, 5, 7).
    pub const MAX_KERNEL: usize = 7;
    /// Most layers of a `separable_KxK_N` (published: 2).
    pub const MAX_SEPARABLE_REPEATS: usize = 4;
    /// Widest hidden state or stem conv (AmoebaNet-A F=448 reaches 1792).
    pub const MAX_WIDTH: usize = 8192;
    /// Most channels of a cell output (AmoebaNet-A F=448 reaches 10752).
    pub const MAX_CHANNELS: usize = 65536;
    /// Most cells (AmoebaNet-A N18 has 22).
    pub const MAX_CELLS: usize = 256;
    /// Most logits classes (ImageNet modules have 1001).
    pub const MAX_CLASSES: usize = 100_000;
    /// Largest width multiplier at a reduction (official: 2).
    pub const MAX_FILTER_SCALING_RATE: usize = 8;
    /// Most bytes of float32 activations live at once for one image (AmoebaNet-A N18/F448
    /// at 331x331 needs under 0.1 GiB).
    pub const MAX_ACTIVATION_BYTES_PER_IMAGE: u64 = 2 << 30;
    /// Input scaling `images * scale + offset`: `scale` in `MIN..=MAX` (hub modules: 2).
    pub const MIN_INPUT_SCALE: f32 = 1.0 / 256.0;
    pub const MAX_INPUT_SCALE: f32 = 256.0;
    /// Largest `|offset|` of the input scaling (hub modules: -1).
    pub const MAX_INPUT_OFFSET: f32 = 256.0;
    /// Batch-norm epsilon in `(0, MAX]` (the modules use 1.001e-5).
    pub const MAX_BATCH_NORM_EPSILON: f32 = 1.0;
    /// Longest genotype name or cell scope, in bytes.
    pub const MAX_NAME_LEN: usize = 64;
}

use limits::*;

/// A refusal of field `field`.
fn invalid(field: impl Into<String>, problem: impl Into<String>) -> GenotypeError {
    GenotypeError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

impl NetworkSpec {
    /// Checks the whole description against what the forward pass supports (see the module
    /// documentation); the first problem found is returned, naming its field.
    pub fn validate(&self) -> Result<(), GenotypeError> {
        self.check_scalars()?;
        check_genotype_name(self.genotype.name.as_deref())?;
        self.genotype.normal.validate_at("genotype.normal")?;
        self.genotype.reduction.validate_at("genotype.reduction")?;
        self.check_cell_list()?;
        self.check_image_is_large_enough()?;
        let bytes = self.walk_cells()?.saturating_mul(4);
        if bytes > MAX_ACTIVATION_BYTES_PER_IMAGE {
            return Err(invalid(
                "image_size",
                format!(
                    "at {}x{} the network needs {} MiB of activations per image, more than the cap of {} MiB",
                    self.image_size[0],
                    self.image_size[1],
                    bytes >> 20,
                    MAX_ACTIVATION_BYTES_PER_IMAGE >> 20
                ),
            ));
        }
        Ok(())
    }

    /// An upper bound of the float32 values live at once while one image runs, or `None`
    /// for a description that [`NetworkSpec::validate`] refuses.
    pub fn activation_elements_per_image(&self) -> Option<u64> {
        self.validate().ok()?;
        self.walk_cells().ok()
    }

    fn check_scalars(&self) -> Result<(), GenotypeError> {
        for (i, &side) in self.image_size.iter().enumerate() {
            check_range(
                &format!("image_size[{i}]"),
                side,
                1,
                MAX_IMAGE_SIDE,
                "pixels",
            )?;
        }
        check_range("filters", self.filters, 1, MAX_WIDTH, "channels")?;
        check_range("stem_filters", self.stem_filters, 1, MAX_WIDTH, "channels")?;
        let stem_scopes = crate::conventions::conventions().stem_scopes();
        if !stem_scopes.contains(&self.stem_scope.as_str()) {
            return Err(invalid(
                "stem_scope",
                format!(
                    "{:?} is not a known stem scope (one of {stem_scopes:?})",
                    self.stem_scope,
                ),
            ));
        }
        check_range(
            "filter_scaling_rate",
            self.filter_scaling_rate,
            1,
            MAX_FILTER_SCALING_RATE,
            "",
        )?;
        if let Some(classes) = self.num_classes {
            check_range("num_classes", classes, 1, MAX_CLASSES, "classes")?;
        }
        self.check_floats()
    }

    fn check_floats(&self) -> Result<(), GenotypeError> {
        let eps = self.batch_norm_epsilon;
        if !(eps.is_finite() && eps > 0.0 && eps <= MAX_BATCH_NORM_EPSILON) {
            return Err(invalid(
                "batch_norm_epsilon",
                format!("{eps:e} is not in (0, {MAX_BATCH_NORM_EPSILON}]"),
            ));
        }
        let scale = self.input_scale;
        if !(scale.is_finite() && (MIN_INPUT_SCALE..=MAX_INPUT_SCALE).contains(&scale)) {
            return Err(invalid(
                "input_scale",
                format!(
                    "{scale:e} is not in [{MIN_INPUT_SCALE}, {MAX_INPUT_SCALE}] (images are scaled by `images * input_scale + input_offset`; hub modules use 2 and -1)"
                ),
            ));
        }
        let offset = self.input_offset;
        if !(offset.is_finite() && offset.abs() <= MAX_INPUT_OFFSET) {
            return Err(invalid(
                "input_offset",
                format!("{offset:e} is not in [-{MAX_INPUT_OFFSET}, {MAX_INPUT_OFFSET}] (hub modules use -1)"),
            ));
        }
        Ok(())
    }

    /// Cell count, kinds, scopes and the summary fields derived from them.
    fn check_cell_list(&self) -> Result<(), GenotypeError> {
        let cells = &self.cells;
        if cells.is_empty() || cells.len() > MAX_CELLS {
            return Err(invalid(
                "cells",
                format!(
                    "{} cells; a network has 1 to {MAX_CELLS} (the cap)",
                    cells.len()
                ),
            ));
        }
        check_scopes(cells)?;
        let count = |kind| cells.iter().filter(|c| c.kind == kind).count();
        let stems = count(CellKind::Stem);
        if let Some(k) = cells
            .iter()
            .skip(stems)
            .position(|c| c.kind == CellKind::Stem)
        {
            return Err(invalid(
                format!("cells[{}].kind", k + stems),
                "a stem cell after a normal or reduction cell; stem cells come first",
            ));
        }
        check_derived("num_stem_cells", self.num_stem_cells, stems)?;
        let (numbered, reductions) = cell_numbering(cells);
        check_derived("num_cells", self.num_cells, numbered)?;
        if self.reduction_indices != reductions {
            return Err(invalid(
                "reduction_indices",
                format!(
                    "{:?}, but the cells reduce at cells {reductions:?}",
                    self.reduction_indices
                ),
            ));
        }
        let first_normal = cells.iter().find(|c| c.kind == CellKind::Normal);
        match first_normal {
            None => Err(invalid(
                "cells",
                format!("no normal cell (`{}`)", {
                    let c = crate::conventions::conventions();
                    c.display(&c.cell_scopes.normal)
                }),
            )),
            Some(c) => check_derived("filters", self.filters, c.filters),
        }
    }

    /// The stem's 3x3 VALID window needs 3 pixels, and each stride-2 cell at least 2 (one
    /// to keep, one to reduce); below that the reductions would read only padding.
    fn check_image_is_large_enough(&self) -> Result<(), GenotypeError> {
        let strided = self.cells.iter().filter(|c| c.stride == 2).count();
        let need = minimum_image_side(strided);
        let [h, w] = self.image_size;
        if h < need || w < need {
            return Err(invalid(
                "image_size",
                format!(
                    "{h}x{w} is too small for this network: its stem (3x3, stride 2, VALID) and {strided} stride-2 cells need at least {need}x{need}"
                ),
            ));
        }
        Ok(())
    }

    /// Walks every cell as the forward pass will build it, checking each layout field
    /// against the shapes it implies; returns the activation bound per image (in values).
    fn walk_cells(&self) -> Result<u64, GenotypeError> {
        let [h, w] = self.image_size;
        let stem = stem_out(self.image_size);
        let mut outputs: Vec<([usize; 2], usize)> = vec![(stem, self.stem_filters)];
        let image = elements(&[h, w, 3]);
        let mut peak = image.saturating_mul(2).saturating_add(elements(&[
            stem[0],
            stem[1],
            self.stem_filters,
        ]));
        for (k, layout) in self.cells.iter().enumerate() {
            let walk = CellWalk {
                at: format!("cells[{k}]"),
                layout,
                cell: self.genotype.cell(layout.kind),
                genotype: genotype_path(layout.kind),
            };
            let (output, live) = walk.run(k, &outputs)?;
            outputs.push(output);
            peak = peak.max(live);
        }
        let features = outputs.last().map_or(0, |o| o.1);
        check_derived("num_features", self.num_features, features)?;
        Ok(peak)
    }
}

/// The smallest image side for a network with `strided` stride-2 cells (see
/// [`NetworkSpec::validate`]): each stride-2 cell needs twice its successor's input less one.
fn minimum_image_side(strided: usize) -> usize {
    let mut need = if strided == 0 { 1 } else { 2 };
    for _ in 1..strided {
        need = (2 * need - 1).min(MAX_IMAGE_SIDE + 1);
    }
    // The stem conv maps `2 * need + 1` pixels to `need`.
    2 * need + 1
}

fn genotype_path(kind: CellKind) -> &'static str {
    match kind {
        CellKind::Normal => "genotype.normal",
        CellKind::Stem | CellKind::Reduction => "genotype.reduction",
    }
}

fn elements(shape: &[usize]) -> u64 {
    shape
        .iter()
        .fold(1u64, |acc, &d| acc.saturating_mul(d as u64))
}

fn check_range(
    field: &str,
    value: usize,
    min: usize,
    max: usize,
    unit: &str,
) -> Result<(), GenotypeError> {
    if (min..=max).contains(&value) {
        return Ok(());
    }
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    Err(invalid(
        field,
        format!("{value} is not in {min}..={max}{unit} (the cap is {max})"),
    ))
}

fn check_derived(field: &str, stated: usize, actual: usize) -> Result<(), GenotypeError> {
    if stated == actual {
        return Ok(());
    }
    Err(invalid(
        field,
        format!("{stated}, but the cells give {actual}"),
    ))
}

fn check_genotype_name(name: Option<&str>) -> Result<(), GenotypeError> {
    let Some(name) = name else { return Ok(()) };
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(fine) {
        return Err(invalid(
            "genotype.name",
            format!(
                "{:?} is not a genotype name (1 to {MAX_NAME_LEN} letters, digits, `_`, `-` or `.`)",
                name.chars().take(MAX_NAME_LEN).collect::<String>()
            ),
        ));
    }
    Ok(())
}

/// Every scope is `cell_stem_K`, `cell_K` or `reduction_cell_K` of its kind, and unique. A
/// reduction cell may also be a `cell_K` (PNASNet numbers its stride-2 cells with the rest).
fn check_scopes(cells: &[CellLayout]) -> Result<(), GenotypeError> {
    let mut seen = HashSet::new();
    for (k, cell) in cells.iter().enumerate() {
        let scope = &cell.scope;
        let kind = (scope.len() <= MAX_NAME_LEN)
            .then(|| parse_cell_scope(scope))
            .flatten()
            .map(|(kind, _)| kind);
        let fits = kind == Some(cell.kind)
            || (kind == Some(CellKind::Normal) && cell.kind == CellKind::Reduction);
        if !fits {
            let conv = crate::conventions::conventions();
            let c = &conv.cell_scopes;
            return Err(invalid(
                format!("cells[{k}].scope"),
                format!(
                    "{:?} is not the scope of a {:?} cell (`{}`, `{}` or `{}`, at most {MAX_NAME_LEN} bytes)",
                    scope.chars().take(MAX_NAME_LEN).collect::<String>(),
                    cell.kind,
                    conv.display(&c.stem),
                    conv.display(&c.normal),
                    conv.display(&c.reduction)
                ),
            ));
        }
        if !seen.insert(scope.as_str()) {
            return Err(invalid(
                format!("cells[{k}].scope"),
                format!("{scope:?} appears twice"),
            ));
        }
    }
    Ok(())
}

/// The official hparams the cells imply (`NetworkSpec::num_cells`, `reduction_indices`):
/// the number of `cell_K` cells, and for each reduction the K of the `cell_K` it sits before
/// (a `reduction_cell_K`, NASNet and AmoebaNet) or is (a stride-2 `cell_K`, PNASNet). Both
/// equal `num_cells` and `calc_reduction_layers` of the official code in either numbering.
pub(crate) fn cell_numbering(cells: &[CellLayout]) -> (usize, Vec<usize>) {
    let mut numbered = 0;
    let mut reductions = Vec::new();
    for c in cells {
        let is_cell_k = parse_cell_scope(&c.scope).map(|s| s.0) == Some(CellKind::Normal);
        if c.kind == CellKind::Reduction {
            reductions.push(numbered);
        }
        if is_cell_k {
            numbered += 1;
        }
    }
    (numbered, reductions)
}

/// One cell checked against the outputs before it.
struct CellWalk<'a> {
    /// `cells[k]`, for messages.
    at: String,
    layout: &'a CellLayout,
    cell: &'a CellSpec,
    /// `genotype.normal` or `genotype.reduction`, for messages.
    genotype: &'static str,
}

type Shape = [usize; 3];

impl CellWalk<'_> {
    fn err(&self, field: &str, problem: impl Into<String>) -> GenotypeError {
        invalid(format!("{}.{field}", self.at), problem)
    }

    /// The cell's output and its live activations (values, one image); `k` is its index,
    /// `outputs` the outputs so far (0 = stem, j = cell j-1).
    fn run(
        &self,
        k: usize,
        outputs: &[([usize; 2], usize)],
    ) -> Result<(([usize; 2], usize), u64), GenotypeError> {
        let l = self.layout;
        self.check_wiring(k)?;
        check_range(
            &format!("{}.filters", self.at),
            l.filters,
            1,
            MAX_WIDTH,
            "channels",
        )?;
        let (net_hw, net_c) = outputs[k];
        if l.input_hw != net_hw || l.input_channels != net_c {
            return Err(self.err(
                "input_hw",
                format!(
                    "{:?} with {} channels, but its input (output {k}) is {net_hw:?} with {net_c}",
                    l.input_hw, l.input_channels
                ),
            ));
        }
        let net = [net_hw[0], net_hw[1], net_c];
        let prev = l.prev.map_or(net, |p| {
            let (hw, c) = outputs[p];
            [hw[0], hw[1], c]
        });
        let mut states = vec![[net[0], net[1], l.filters], self.h1(net, prev)?];
        for i in 0..self.cell.num_combinations() {
            states.push(self.combination(i, &states)?);
        }
        let output = self.concat(&states)?;
        let live = [net, prev, [output.0[0], output.0[1], output.1]]
            .iter()
            .chain(&states)
            .map(|s| elements(s))
            .fold(0u64, u64::saturating_add);
        // Operations hold at most two temporaries the size of their input or output.
        let temp = states.iter().map(|s| elements(s)).max().unwrap_or(0);
        let temp = temp.max(elements(&net)).max(elements(&prev));
        Ok((output, live.saturating_add(temp.saturating_mul(2))))
    }

    /// `input` is the output just before the cell; `prev` any earlier output (the one before
    /// `input` in AmoebaNet and NASNet-A mobile; three back after a reduction cell with
    /// `skip_reduction_layer_input`, as in NASNet-A large), none only for the first cell;
    /// `stride` follows the kind.
    fn check_wiring(&self, k: usize) -> Result<(), GenotypeError> {
        let l = self.layout;
        if l.input != k {
            return Err(self.err(
                "input",
                format!(
                    "{}, but a cell reads the output just before it ({k})",
                    l.input
                ),
            ));
        }
        let prev_ok = match l.prev {
            None => k == 0,
            Some(p) => p < k,
        };
        if !prev_ok {
            let rule = if k == 0 {
                "the first cell has no prev_layer (none)".to_string()
            } else {
                format!("the prev_layer of cell {k} must be an output computed before its input (0..{k})")
            };
            return Err(self.err("prev", format!("{:?}, but {rule}", l.prev)));
        }
        let stride = if l.kind == CellKind::Normal { 1 } else { 2 };
        if l.stride != stride {
            return Err(self.err(
                "stride",
                format!("{}, but a {:?} cell has stride {stride}", l.stride, l.kind),
            ));
        }
        Ok(())
    }

    /// The shape of h1, from `prev` as the cell's `prev_adjust` makes it.
    fn h1(&self, net: Shape, prev: Shape) -> Result<Shape, GenotypeError> {
        let br = self.layout.filters;
        Ok(match self.layout.prev_adjust {
            PrevAdjust::UseInput => net,
            PrevAdjust::Unchanged => prev,
            PrevAdjust::Prev1x1 => [prev[0], prev[1], br],
            PrevAdjust::FactorizedReduction => {
                self.check_even_width("a factorized reduction of its prev_layer")?;
                [same_out(prev[0], 2), same_out(prev[1], 2), br]
            }
        })
    }

    fn check_even_width(&self, what: &str) -> Result<(), GenotypeError> {
        let br = self.layout.filters;
        if br % 2 == 1 {
            return Err(self.err(
                "filters",
                format!("{br} is odd, but {what} splits the width into two equal halves"),
            ));
        }
        Ok(())
    }

    /// The state combination `i` makes: both operations must give the same shape.
    fn combination(&self, i: usize, states: &[Shape]) -> Result<Shape, GenotypeError> {
        let out = |j: usize| -> Shape {
            let h = self.cell.hiddenstate_indices[j];
            let [ih, iw, _] = states[h];
            let s = if h < 2 { self.layout.stride } else { 1 };
            [same_out(ih, s), same_out(iw, s), self.layout.filters]
        };
        let (left, right) = (out(2 * i), out(2 * i + 1));
        if left != right {
            let idx = &self.cell.hiddenstate_indices;
            return Err(invalid(
                format!("{}.hiddenstate_indices[{}]", self.genotype, 2 * i + 1),
                format!(
                    "in {} ({}), combination {i} adds h{} ({left:?}) and h{} ({right:?}), whose shapes differ",
                    self.at,
                    self.layout.scope,
                    idx[2 * i],
                    idx[2 * i + 1]
                ),
            ));
        }
        Ok(left)
    }

    /// The output: the concatenated states, each brought to the last state's shape.
    fn concat(&self, states: &[Shape]) -> Result<([usize; 2], usize), GenotypeError> {
        let Some(&[lh, lw, lc]) = states.last() else {
            return Err(self.err("kind", "a cell without states"));
        };
        let concat = self.cell.concat_states();
        for &j in &concat {
            let [h, w, _] = states[j];
            if [h, w] == [lh, lw] {
                continue;
            }
            if [same_out(h, 2), same_out(w, 2)] != [lh, lw] {
                return Err(invalid(
                    format!("{}.used_hiddenstates[{j}]", self.genotype),
                    format!(
                        "in {} ({}), h{j} is {h}x{w} and cannot be reduced to the output's {lh}x{lw}",
                        self.at, self.layout.scope
                    ),
                ));
            }
            self.check_even_width(&format!("the factorized reduction of h{j} in the output"))?;
        }
        let channels = lc.saturating_mul(concat.len());
        check_range(
            &format!("{}.output_channels", self.at),
            channels,
            1,
            MAX_CHANNELS,
            "channels",
        )?;
        let l = self.layout;
        if l.output_hw != [lh, lw] || l.output_channels != channels {
            return Err(self.err(
                "output_hw",
                format!(
                    "{:?} with {} channels, but the cell computes [{lh}, {lw}] with {channels}",
                    l.output_hw, l.output_channels
                ),
            ));
        }
        Ok(([lh, lw], channels))
    }
}

impl CellSpec {
    /// Checks the cell alone: list lengths (at most
    /// [`MAX_OPERATIONS_PER_CELL`](limits::MAX_OPERATIONS_PER_CELL) operations), flags,
    /// that every operation reads an earlier state, and that every operation is one the
    /// forward pass runs. Messages name the field under `path` (`genotype.normal`).
    pub fn validate_at(&self, path: &str) -> Result<(), GenotypeError> {
        let n = self.operations.len();
        if !(2..=MAX_OPERATIONS_PER_CELL).contains(&n) || n % 2 == 1 {
            return Err(invalid(
                format!("{path}.operations"),
                format!(
                    "{n} operations; a cell has an even number from 2 to {MAX_OPERATIONS_PER_CELL} (the cap; published cells have 10)"
                ),
            ));
        }
        if self.hiddenstate_indices.len() != n {
            return Err(invalid(
                format!("{path}.hiddenstate_indices"),
                format!(
                    "{} indices for {n} operations; need one per operation",
                    self.hiddenstate_indices.len()
                ),
            ));
        }
        for (i, op) in self.operations.iter().enumerate() {
            check_operation(&format!("{path}.operations[{i}]"), op)?;
        }
        for (i, &h) in self.hiddenstate_indices.iter().enumerate() {
            if h >= 2 + i / 2 {
                return Err(invalid(
                    format!("{path}.hiddenstate_indices[{i}]"),
                    format!("h{h}, which is not computed before combination {}", i / 2),
                ));
            }
        }
        self.check_used_flags(path)
    }

    fn check_used_flags(&self, path: &str) -> Result<(), GenotypeError> {
        let states = self.operations.len() / 2 + 2;
        let flags = &self.used_hiddenstates;
        if flags.len() != states {
            return Err(invalid(
                format!("{path}.used_hiddenstates"),
                format!(
                    "{} flags for {states} states; need one per state",
                    flags.len()
                ),
            ));
        }
        if let Some(j) = flags.iter().position(|&u| u > 1) {
            return Err(invalid(
                format!("{path}.used_hiddenstates[{j}]"),
                format!("{}; a flag is 0 (concatenated) or 1 (used)", flags[j]),
            ));
        }
        if flags.iter().all(|&u| u != 0) {
            return Err(invalid(
                format!("{path}.used_hiddenstates"),
                "no state is concatenated into the output (no flag is 0)",
            ));
        }
        Ok(())
    }
}

/// The operation's own fields: kernels in `1..=MAX_KERNEL`, separable layers in
/// `1..=MAX_SEPARABLE_REPEATS`, no dilation (the forward pass has none).
fn check_operation(at: &str, op: &Operation) -> Result<(), GenotypeError> {
    let kernel = |k: usize, min: usize| {
        if (min..=MAX_KERNEL).contains(&k) {
            return Ok(());
        }
        Err(invalid(
            format!("{at}.kernel"),
            format!("{k} is not a supported kernel size ({min}..={MAX_KERNEL})"),
        ))
    };
    match *op {
        Operation::Identity | Operation::Conv1x1 => Ok(()),
        Operation::AvgPool { kernel: k }
        | Operation::MaxPool { kernel: k }
        | Operation::Factorized { kernel: k } => kernel(k, 1),
        Operation::Separable { kernel: k, repeats } => {
            kernel(k, 1)?;
            check_range(
                &format!("{at}.repeats"),
                repeats,
                1,
                MAX_SEPARABLE_REPEATS,
                "layers",
            )
        }
        // A 1x1 `Conv` would be named `1x1`, which is `Conv1x1`.
        Operation::Conv {
            kernel: k,
            dilation,
        } => {
            kernel(k, 2)?;
            if dilation != 1 {
                return Err(invalid(
                    format!("{at}.dilation"),
                    format!("{dilation} is not supported: the forward pass runs dilation 1 only"),
                ));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::known::{known_genotype, known_names};
    use crate::layout::{build_layout, CellPlan};
    use crate::spec::Genotype;

    /// Cells as the official code orders them: two stem cells, normal cells with
    /// reduction cells before normal cells `reductions` (widths F/4, F/2, F, 2F, ...).
    fn plan(f: usize, normal: usize, reductions: &[usize]) -> Vec<CellPlan> {
        let cell = |scope: String, kind, filters| CellPlan {
            scope,
            kind,
            filters,
            prev: None,
        };
        let mut plan = vec![
            cell("cell_stem_0".into(), CellKind::Stem, f / 4),
            cell("cell_stem_1".into(), CellKind::Stem, f / 2),
        ];
        let mut width = f;
        for i in 0..normal {
            if let Some(r) = reductions.iter().position(|&r| r == i) {
                width *= 2;
                plan.push(cell(
                    format!("reduction_cell_{r}"),
                    CellKind::Reduction,
                    width,
                ));
            }
            plan.push(cell(format!("cell_{i}"), CellKind::Normal, width));
        }
        plan
    }

    /// A description as extraction assembles it, from a plan.
    fn spec_from(genotype: Genotype, plan: &[CellPlan], image: usize) -> NetworkSpec {
        let cells = build_layout(&genotype, plan, 8, [image, image]).unwrap();
        NetworkSpec {
            genotype,
            filters: plan[2].filters,
            num_cells: cell_numbering(&cells).0,
            reduction_indices: cell_numbering(&cells).1,
            stem_filters: 8,
            stem_scope: "stem/conv0".to_string(),
            num_stem_cells: 2,
            filter_scaling_rate: 2,
            image_size: [image, image],
            num_classes: Some(10),
            num_features: cells.last().unwrap().output_channels,
            batch_norm_epsilon: 1e-3,
            input_scale: 2.0,
            input_offset: -1.0,
            cells,
        }
    }

    /// AmoebaNet-A, F=8, three normal cells with a reduction before the second, 64 px.
    fn tiny() -> NetworkSpec {
        let genotype = known_genotype("amoeba_net_a").unwrap();
        spec_from(genotype, &plan(8, 3, &[1]), 64)
    }

    /// The message of the refusal of `tiny()` changed by `edit`.
    fn refusal(edit: impl FnOnce(&mut NetworkSpec)) -> String {
        let mut spec = tiny();
        edit(&mut spec);
        match spec.validate() {
            Ok(()) => panic!("accepted: {}", spec.to_json()),
            Err(e) => e.to_string(),
        }
    }

    fn assert_names(message: &str, parts: &[&str]) {
        for part in parts {
            assert!(
                message.contains(part),
                "{message:?} does not contain {part:?}"
            );
        }
    }

    #[test]
    fn every_known_genotype_in_the_official_layout_is_accepted() {
        for name in known_names() {
            let genotype = known_genotype(name).unwrap();
            let spec = spec_from(genotype, &plan(8, 6, &[2, 4]), 64);
            spec.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
            let json = spec.to_json();
            assert_eq!(NetworkSpec::from_json(&json).unwrap(), spec);
        }
        let full = spec_from(
            known_genotype("amoeba_net_a").unwrap(),
            &plan(448, 18, &[6, 12]),
            331,
        );
        let values = full.activation_elements_per_image().unwrap();
        assert!(
            values * 4 < 1 << 30,
            "the real network needs {values} values"
        );
    }

    #[test]
    fn pool_kernels_out_of_range_are_refused_naming_the_field() {
        for kernel in [0, 8, usize::MAX] {
            let msg = refusal(|s| s.genotype.normal.operations[0] = Operation::AvgPool { kernel });
            assert_names(
                &msg,
                &[
                    "genotype.normal.operations[0].kernel",
                    &format!("{kernel} is not a supported kernel size (1..=7)"),
                ],
            );
        }
        let msg =
            refusal(|s| s.genotype.reduction.operations[2] = Operation::MaxPool { kernel: 0 });
        assert_names(&msg, &["genotype.reduction.operations[2].kernel"]);
    }

    #[test]
    fn separable_factorized_and_conv_fields_are_checked() {
        let sep = |kernel, repeats| Operation::Separable { kernel, repeats };
        let msg = refusal(|s| s.genotype.normal.operations[2] = sep(3, 0));
        assert_names(
            &msg,
            &["genotype.normal.operations[2].repeats", "0 is not in 1..=4"],
        );
        let msg = refusal(|s| s.genotype.normal.operations[2] = sep(3, 5));
        assert_names(&msg, &["operations[2].repeats", "the cap is 4"]);
        let msg = refusal(|s| s.genotype.normal.operations[2] = sep(9, 2));
        assert_names(&msg, &["operations[2].kernel", "9 is not"]);
        let msg =
            refusal(|s| s.genotype.reduction.operations[7] = Operation::Factorized { kernel: 0 });
        assert_names(&msg, &["genotype.reduction.operations[7].kernel"]);
        let conv = |kernel, dilation| Operation::Conv { kernel, dilation };
        let msg = refusal(|s| s.genotype.reduction.operations[7] = conv(3, 2));
        assert_names(
            &msg,
            &[
                "genotype.reduction.operations[7].dilation",
                "dilation 1 only",
            ],
        );
        let msg = refusal(|s| s.genotype.reduction.operations[7] = conv(1, 1));
        assert_names(
            &msg,
            &["genotype.reduction.operations[7].kernel", "(2..=7)"],
        );
    }

    #[test]
    fn operation_counts_are_even_and_capped() {
        let resize = |cell: &mut CellSpec, n: usize| {
            cell.operations.resize(n, Operation::Identity);
            cell.hiddenstate_indices.resize(n, 0);
            cell.used_hiddenstates.resize(n / 2 + 2, 0);
        };
        for n in [0, 9, 34, 20_000] {
            let msg = refusal(|s| resize(&mut s.genotype.normal, n));
            assert_names(
                &msg,
                &[
                    "genotype.normal.operations",
                    &format!("{n} operations"),
                    "32 (the cap",
                ],
            );
        }
        // Within the cap, any even count is a cell the forward pass runs.
        let mut genotype = known_genotype("amoeba_net_a").unwrap();
        resize(&mut genotype.normal, 8);
        genotype.name = None;
        spec_from(genotype, &plan(8, 3, &[1]), 64)
            .validate()
            .unwrap();
    }

    #[test]
    fn hidden_state_indices_and_flags_are_checked() {
        let msg = refusal(|s| s.genotype.normal.hiddenstate_indices[9] = 6);
        assert_names(
            &msg,
            &[
                "genotype.normal.hiddenstate_indices[9]",
                "h6, which is not computed before combination 4",
            ],
        );
        let msg = refusal(|s| {
            s.genotype.normal.hiddenstate_indices.pop();
        });
        assert_names(
            &msg,
            &["genotype.normal.hiddenstate_indices", "9 indices for 10"],
        );
        let msg = refusal(|s| s.genotype.reduction.used_hiddenstates[3] = 2);
        assert_names(
            &msg,
            &[
                "genotype.reduction.used_hiddenstates[3]",
                "0 (concatenated) or 1",
            ],
        );
        let msg = refusal(|s| s.genotype.reduction.used_hiddenstates = vec![1; 7]);
        assert_names(
            &msg,
            &[
                "genotype.reduction.used_hiddenstates",
                "no state is concatenated",
            ],
        );
        let msg = refusal(|s| s.genotype.reduction.used_hiddenstates.push(0));
        assert_names(
            &msg,
            &[
                "genotype.reduction.used_hiddenstates",
                "8 flags for 7 states",
            ],
        );
    }

    #[test]
    fn image_sizes_are_capped_and_large_enough_for_the_reductions() {
        let msg = refusal(|s| s.image_size = [5000, 64]);
        assert_names(
            &msg,
            &[
                "image_size[0]",
                "5000 is not in 1..=4096",
                "the cap is 4096",
            ],
        );
        let msg = refusal(|s| s.image_size = [64, 0]);
        assert_names(&msg, &["image_size[1]", "0 is not in"]);
        // Two stem cells and one reduction cell: 2 -> 3 -> 5 pixels before them, 11 for the stem.
        assert_eq!(minimum_image_side(3), 11);
        assert_eq!(minimum_image_side(4), 19);
        assert_eq!(minimum_image_side(0), 3);
        let msg = refusal(|s| s.image_size = [1, 1]);
        assert_names(
            &msg,
            &[
                "image_size",
                "1x1 is too small",
                "3 stride-2 cells",
                "at least 11x11",
            ],
        );
        let msg = refusal(|s| s.image_size = [10, 64]);
        assert_names(&msg, &["10x64 is too small"]);
    }

    #[test]
    fn activations_beyond_the_per_image_cap_are_refused_before_anything_runs() {
        let genotype = known_genotype("amoeba_net_a").unwrap();
        let huge = spec_from(genotype, &plan(2048, 3, &[1]), 4096);
        let msg = huge.validate().unwrap_err().to_string();
        assert_names(
            &msg,
            &[
                "image_size",
                "at 4096x4096",
                "MiB of activations per image",
                "cap of 2048 MiB",
            ],
        );
        assert_eq!(huge.activation_elements_per_image(), None);
    }

    #[test]
    fn input_scaling_and_epsilon_must_be_finite_and_sane() {
        for scale in [1e38, f32::INFINITY, f32::NAN, 0.0, -2.0, 1e-9] {
            let msg = refusal(|s| s.input_scale = scale);
            assert_names(
                &msg,
                &["input_scale", "is not in [0.00390625, 256]", "2 and -1"],
            );
        }
        for offset in [1e38, f32::NEG_INFINITY, f32::NAN, -300.0] {
            let msg = refusal(|s| s.input_offset = offset);
            assert_names(&msg, &["input_offset", "is not in [-256, 256]"]);
        }
        for eps in [0.0, -1e-3, f32::NAN, 2.0] {
            let msg = refusal(|s| s.batch_norm_epsilon = eps);
            assert_names(&msg, &["batch_norm_epsilon", "is not in (0, 1]"]);
        }
    }

    #[test]
    fn widths_and_classes_are_capped() {
        let msg = refusal(|s| s.num_classes = Some(0));
        assert_names(&msg, &["num_classes", "0 is not in 1..=100000"]);
        let msg = refusal(|s| s.num_classes = Some(1 << 40));
        assert_names(&msg, &["num_classes", "the cap is 100000"]);
        let msg = refusal(|s| s.stem_filters = 1 << 20);
        assert_names(&msg, &["stem_filters", "the cap is 8192"]);
        let msg = refusal(|s| s.filters = 0);
        assert_names(&msg, &["filters", "0 is not in 1..=8192"]);
        let msg = refusal(|s| s.filter_scaling_rate = 0);
        assert_names(&msg, &["filter_scaling_rate", "0 is not in 1..=8"]);
        let msg = refusal(|s| s.cells[4].filters = 1 << 40);
        assert_names(&msg, &["cells[4].filters", "the cap is 8192"]);
    }

    #[test]
    fn cell_counts_kinds_and_scopes_are_checked() {
        let msg = refusal(|s| s.cells.clear());
        assert_names(&msg, &["cells", "0 cells; a network has 1 to 256"]);
        let msg = refusal(|s| {
            let last = s.cells[5].clone();
            s.cells.resize(300, last);
        });
        assert_names(&msg, &["cells", "300 cells", "256 (the cap)"]);
        let msg = refusal(|s| s.cells[3].scope = "cell_stem_9".into());
        assert_names(
            &msg,
            &[
                "cells[3].scope",
                "\"cell_stem_9\" is not the scope of a Reduction cell",
            ],
        );
        let msg = refusal(|s| s.cells[2].scope = "reduction_cell_9".into());
        assert_names(
            &msg,
            &["cells[2].scope", "is not the scope of a Normal cell"],
        );
        // PNASNet numbers its stride-2 cells with the rest: a reduction cell may be `cell_K`.
        let mut pnas_style = tiny();
        pnas_style.cells[3].scope = "cell_9".into();
        pnas_style.num_cells = 4;
        pnas_style.validate().unwrap();
        let msg = refusal(|s| s.cells[4].scope = "cell_0".into());
        assert_names(&msg, &["cells[4].scope", "appears twice"]);
        let msg = refusal(|s| s.cells[5].scope = format!("cell_{}", "9".repeat(100)));
        assert_names(&msg, &["cells[5].scope", "at most 64 bytes"]);
        let msg = refusal(|s| s.genotype.name = Some("\u{1b}[31mred".into()));
        assert_names(&msg, &["genotype.name", "is not a genotype name"]);
    }

    #[test]
    fn summary_fields_must_agree_with_the_cells() {
        let msg = refusal(|s| s.num_cells = 7);
        assert_names(&msg, &["num_cells", "7, but the cells give 3"]);
        let msg = refusal(|s| s.num_stem_cells = 0);
        assert_names(&msg, &["num_stem_cells", "0, but the cells give 2"]);
        let msg = refusal(|s| s.reduction_indices = vec![2]);
        assert_names(
            &msg,
            &[
                "reduction_indices",
                "[2], but the cells reduce at cells [1]",
            ],
        );
        let msg = refusal(|s| s.num_features = 5);
        assert_names(&msg, &["num_features", "5, but the cells give"]);
        let msg = refusal(|s| s.filters = 16);
        assert_names(&msg, &["filters", "16, but the cells give 8"]);
    }

    #[test]
    fn cell_wiring_strides_and_shapes_are_checked() {
        let msg = refusal(|s| s.cells[2].stride = 0);
        assert_names(
            &msg,
            &["cells[2].stride", "0, but a Normal cell has stride 1"],
        );
        let msg = refusal(|s| s.cells[3].stride = 1 << 40);
        assert_names(&msg, &["cells[3].stride", "a Reduction cell has stride 2"]);
        let msg = refusal(|s| s.cells[4].input = 2);
        assert_names(
            &msg,
            &[
                "cells[4].input",
                "2, but a cell reads the output just before it (4)",
            ],
        );
        let msg = refusal(|s| s.cells[4].prev = Some(4));
        assert_names(&msg, &["cells[4].prev", "Some(4)", "0..4"]);
        let msg = refusal(|s| s.cells[4].prev = None);
        assert_names(&msg, &["cells[4].prev", "None"]);
        let msg = refusal(|s| s.cells[0].prev = Some(0));
        assert_names(&msg, &["cells[0].prev"]);
        let msg = refusal(|s| s.cells[2].input_hw = [9, 9]);
        assert_names(&msg, &["cells[2].input_hw", "[9, 9]"]);
        let msg = refusal(|s| s.cells[2].input_channels += 1);
        assert_names(&msg, &["cells[2].input_hw", "channels"]);
        let msg = refusal(|s| s.cells[5].output_hw = [1 << 30, 1]);
        assert_names(&msg, &["cells[5].output_hw"]);
        let msg = refusal(|s| s.cells[5].output_channels = 3);
        assert_names(&msg, &["cells[5].output_hw", "with 3 channels"]);
        let msg = refusal(|s| {
            let stem = s.cells.remove(0);
            s.cells.insert(3, stem);
        });
        assert_names(&msg, &["cells[3].kind", "stem cells come first"]);
    }

    #[test]
    fn states_whose_shapes_cannot_meet_are_refused() {
        // h1 left at the previous cell's 16x16 while h0 is 8x8: combination 2 adds them.
        let msg = refusal(|s| s.cells[2].prev_adjust = PrevAdjust::Unchanged);
        assert_names(
            &msg,
            &[
                "genotype.normal.hiddenstate_indices[5]",
                "cells[2] (cell_0)",
                "combination 2 adds h0",
            ],
        );
        // A factorized reduction of an odd width.
        let msg = refusal(|s| {
            let odd = plan(8, 3, &[1])
                .into_iter()
                .map(|mut c| {
                    c.filters = if c.kind == CellKind::Stem {
                        3
                    } else {
                        c.filters
                    };
                    c
                })
                .collect::<Vec<_>>();
            *s = spec_from(s.genotype.clone(), &odd, 64);
        });
        assert_names(
            &msg,
            &["cells[1].filters", "3 is odd", "factorized reduction"],
        );
    }

    #[test]
    fn a_concatenated_state_that_cannot_be_reduced_to_the_output_is_refused() {
        // One combination of h0 with itself; the output concatenates h1 and h2.
        let reduction = CellSpec {
            operations: vec![Operation::Identity; 2],
            hiddenstate_indices: vec![0, 0],
            used_hiddenstates: vec![1, 0, 0],
        };
        let mut genotype = known_genotype("amoeba_net_a").unwrap();
        genotype.reduction = reduction;
        genotype.name = None;
        let mut spec = spec_from(genotype, &plan(8, 3, &[1]), 64);
        spec.validate().unwrap();
        // cell_stem_1 keeps the 31x31 stem output as h1, which cannot become 8x8.
        spec.cells[1].prev_adjust = PrevAdjust::Unchanged;
        let msg = spec.validate().unwrap_err().to_string();
        assert_names(
            &msg,
            &[
                "genotype.reduction.used_hiddenstates[1]",
                "cells[1] (cell_stem_1)",
                "h1 is 31x31",
                "8x8",
            ],
        );
    }

    #[test]
    fn from_json_validates() {
        let mut spec = tiny();
        spec.genotype.normal.operations[0] = Operation::AvgPool { kernel: 0 };
        let err = NetworkSpec::from_json(&spec.to_json())
            .unwrap_err()
            .to_string();
        assert_names(&err, &["genotype.normal.operations[0].kernel"]);
        let json = tiny()
            .to_json()
            .replace("\"input_scale\": 2.0", "\"input_scale\": 1e39");
        let err = NetworkSpec::from_json(&json).unwrap_err().to_string();
        assert_names(&err, &["input_scale", "inf"]);
    }
}
