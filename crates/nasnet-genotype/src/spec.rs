//! The data model. Field meanings follow the official code's names (`operations`,
//! `hiddenstate_indices`, `used_hiddenstates`); see `shared/spec/amoebanet.md` §1-2.

use serde::{Deserialize, Serialize};

/// One operation of the NASNet search space, as named in genotypes (`separable_3x3_2`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// `separable_KxK_N`: N times ReLU -> depthwise KxK (stride on the first only) -> pointwise -> BN.
    Separable { kernel: usize, repeats: usize },
    /// `avg_pool_KxK`: SAME padding, padding left out of the count; 1x1+BN after if channels differ.
    AvgPool { kernel: usize },
    /// `max_pool_KxK`: SAME padding; 1x1+BN after if channels differ.
    MaxPool { kernel: usize },
    /// `none`: identity, or ReLU -> 1x1 (strided) -> BN when stride > 1 or channels differ.
    Identity,
    /// `1x1`: always ReLU -> 1x1 (strided) -> BN.
    Conv1x1,
    /// `1xK_Kx1`: bottleneck ReLU -> pre_1x1 -> BN -> ReLU -> 1xK -> BN -> ReLU -> Kx1 -> BN -> ReLU -> post_1x1 -> BN.
    Factorized { kernel: usize },
    /// `KxK` (e.g. `3x3`, AmoebaNet-B/-D) or `dilated_KxK_rate_R`: bottleneck ReLU -> pre_1x1 -> BN
    /// -> ReLU -> KxK conv (scope `KxK` or `dilated_KxK`, with the cell stride and `dilation`) -> BN
    /// (`bn`) -> ReLU -> post_1x1 -> BN. `dilation` is the graph's `dilations` attr, 1 for `3x3`.
    Conv { kernel: usize, dilation: usize },
}

/// One cell kind (normal or reduction): five combinations of two operations each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellSpec {
    /// Ten operations: combination `i` applies `operations[2i]` (left) and `operations[2i+1]` (right).
    pub operations: Vec<Operation>,
    /// Ten hidden-state indices, the input of each operation (0 = h0 = previous cell, 1 = h1 = the one before).
    pub hiddenstate_indices: Vec<usize>,
    /// Seven flags, one per state h0..h6: the states with flag 0 are concatenated, in index order, into the output.
    pub used_hiddenstates: Vec<u8>,
}

/// A genotype: the two cell kinds, plus its name when it is a known one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genotype {
    /// `amoeba_net_a`, ... when recognised; `None` for an unknown genotype.
    pub name: Option<String>,
    pub normal: CellSpec,
    pub reduction: CellSpec,
}

/// The kind of one cell of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    /// `cell_stem_K`: a reduction cell at stride 2 in the stem.
    Stem,
    /// `cell_K`.
    Normal,
    /// `reduction_cell_K`.
    Reduction,
}

/// How a cell adjusts its `prev_layer` input into h1 (`_reduce_prev_layer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrevAdjust {
    /// No previous layer (first stem cell): h1 is the cell input itself, unchanged and without ReLU.
    UseInput,
    /// Sizes and channels already match: h1 = prev unchanged.
    Unchanged,
    /// Spatial size differs: ReLU -> factorized reduction (`path1_conv`, `path2_conv`, `final_path_bn`).
    FactorizedReduction,
    /// Channels differ: ReLU -> `prev_1x1` -> `prev_bn`.
    Prev1x1,
}

/// One cell instance in network order, with everything needed to run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellLayout {
    /// Variable scope, e.g. `cell_stem_0`, `reduction_cell_1`, `cell_7`.
    pub scope: String,
    pub kind: CellKind,
    /// Width of each hidden state (`int(F * filter_scaling)`).
    pub filters: usize,
    /// 2 for stem and reduction cells, 1 for normal cells.
    pub stride: usize,
    /// Index into the network's output list of this cell's `net` input
    /// (0 = stem conv output, k = output of cell k-1 in this list).
    pub input: usize,
    /// Index of the `prev_layer` input in the same numbering, `None` for the first stem cell.
    pub prev: Option<usize>,
    pub prev_adjust: PrevAdjust,
    /// Input spatial size [h, w] of `net`, and its channels.
    pub input_hw: [usize; 2],
    pub input_channels: usize,
    /// Output spatial size [h, w] and channels (`filters` times the number of concatenated states).
    pub output_hw: [usize; 2],
    pub output_channels: usize,
}

/// Files written before `stem_scope` existed are AmoebaNet's: the first family's stem scope.
fn default_stem_scope() -> String {
    crate::conventions::conventions()
        .families
        .first()
        .map(|f| f.stem_scope.clone())
        .unwrap_or_default()
}

/// The whole network: genotype plus everything around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub genotype: Genotype,
    /// F, `reduction_size`: the width of the first normal stack.
    pub filters: usize,
    /// The official hparam `num_cells`: the `cell_K` cells. With separate reduction cells
    /// (AmoebaNet, NASNet-A) the normal cells (N per stack times stacks); with one cell
    /// type (PNASNet) every cell after the stem, the stride-2 ones included.
    pub num_cells: usize,
    /// Where the network reduces, as the official `calc_reduction_layers` gives it: the K of
    /// the `cell_K` a `reduction_cell_k` sits before (e.g. [6, 12] for 18 cells), or of the
    /// stride-2 `cell_K` itself (PNASNet: [4, 8] for 12 cells).
    pub reduction_indices: Vec<usize>,
    /// Output channels of the stem convolution (3x3, stride 2, VALID).
    pub stem_filters: usize,
    /// The stem convolution's variable scope, one of the families' in `data/conventions.json`
    /// (AmoebaNet's tensorflow/tpu code, TF-slim's NASNet-A and PNASNet); its batch norm is the
    /// scope plus the conventions' `stem.bn_suffix`. Files written before this field existed
    /// are AmoebaNet's.
    #[serde(default = "default_stem_scope")]
    pub stem_scope: String,
    pub num_stem_cells: usize,
    /// Multiplier of the width at each reduction (2 in the official code).
    pub filter_scaling_rate: usize,
    /// Input image [height, width].
    pub image_size: [usize; 2],
    /// Logits classes, or `None` for a feature-vector-only module.
    pub num_classes: Option<usize>,
    /// Length of the feature vector (channels of the last cell).
    pub num_features: usize,
    /// Batch-norm epsilon exactly as the graph's FusedBatchNorm ops hold it.
    pub batch_norm_epsilon: f32,
    /// The module's input scaling: `images * scale + offset` (2 and -1 for [0,1] -> [-1,1]).
    pub input_scale: f32,
    pub input_offset: f32,
    /// Every cell in network order.
    pub cells: Vec<CellLayout>,
}
