//! Structure-aware fuzzing of a converted file's network description. The fuzzer's bytes are
//! a script of edits (field, value) applied to the *valid* description of the converted
//! feature-vector fixture (written by `make_seeds`; `AMOEBA_FUZZ_WEIGHTS` overrides the
//! path): numbers set to 0, 1, huge or random, operations and cells replaced, lists grown or
//! cut. The edited description goes through JSON and `NetworkSpec::from_json` (the one
//! validation), then `Network::load` against the fixture's weights and, when it loads and its
//! activations are small, one forward pass. Errors are expected; a panic is a bug.
#![no_main]

use model_io::SafetensorsWeights;
use nasnet_forward::{Network, Tensor};
use nasnet_genotype::{CellKind, CellSpec, NetworkSpec, Operation, PrevAdjust};
use std::path::Path;
use std::sync::OnceLock;

/// The fixture's weights and its own (valid) description.
fn base() -> &'static (SafetensorsWeights, NetworkSpec) {
    static BASE: OnceLock<(SafetensorsWeights, NetworkSpec)> = OnceLock::new();
    BASE.get_or_init(|| {
        let default = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/corpus/safetensors_model/seed-feature_vector"
        );
        let path = std::env::var("AMOEBA_FUZZ_WEIGHTS").unwrap_or_else(|_| default.into());
        let weights = SafetensorsWeights::open(Path::new(&path))
            .unwrap_or_else(|e| panic!("no weights for network_spec ({e}): run make_seeds first"));
        let json = weights
            .metadata()
            .get(model_io::keys::NETWORK)
            .cloned()
            .unwrap_or_else(|| panic!("{path}: no network description"));
        let spec = NetworkSpec::from_json(&json).unwrap_or_else(|e| panic!("{path}: {e}"));
        (weights, spec)
    })
}

/// The fuzzer's bytes, read as small numbers (zeros once they run out).
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn index(&mut self, len: usize) -> usize {
        usize::from(self.byte()) % len.max(1)
    }

    /// A size an attacker would try: small, at a cap's edge, or huge.
    fn size(&mut self) -> usize {
        const EDGES: [usize; 10] = [0, 1, 2, 3, 7, 8, 4096, 4097, 1 << 32, usize::MAX];
        match self.byte() {
            b @ 0..=127 => usize::from(b),
            b @ 128..=191 => EDGES[usize::from(b) % EDGES.len()],
            _ => u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()]) as usize,
        }
    }

    fn float(&mut self) -> f32 {
        const EDGES: [f32; 8] = [0.0, -1.0, 2.0, 1e38, f32::INFINITY, 1e-30, 256.0, 257.0];
        match self.byte() {
            b @ 0..=127 => EDGES[usize::from(b) % EDGES.len()],
            _ => f32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()]),
        }
    }

    fn operation(&mut self) -> Operation {
        let kernel = self.size();
        match self.byte() % 7 {
            0 => Operation::Separable { kernel, repeats: self.size() },
            1 => Operation::AvgPool { kernel },
            2 => Operation::MaxPool { kernel },
            3 => Operation::Identity,
            4 => Operation::Conv1x1,
            5 => Operation::Factorized { kernel },
            _ => Operation::Conv { kernel, dilation: self.size() },
        }
    }
}

/// One edit of the description's top-level fields.
fn edit_network(spec: &mut NetworkSpec, s: &mut Script) {
    match s.byte() % 14 {
        0 => spec.image_size[s.index(2)] = s.size(),
        1 => spec.filters = s.size(),
        2 => spec.stem_filters = s.size(),
        3 => spec.num_cells = s.size(),
        4 => spec.num_stem_cells = s.size(),
        5 => spec.filter_scaling_rate = s.size(),
        6 => spec.num_classes = Some(s.size()).filter(|_| s.byte() % 4 != 0),
        7 => spec.num_features = s.size(),
        8 => spec.batch_norm_epsilon = s.float(),
        9 => spec.input_scale = s.float(),
        10 => spec.input_offset = s.float(),
        11 => match s.byte() % 3 {
            0 => drop(spec.reduction_indices.pop()),
            1 => spec.reduction_indices.push(s.size()),
            _ => spec.reduction_indices.clear(),
        },
        12 => edit_cell_list(spec, s),
        _ => {
            let kind = if s.byte() % 2 == 0 { CellKind::Normal } else { CellKind::Reduction };
            let cell = match kind {
                CellKind::Normal => &mut spec.genotype.normal,
                _ => &mut spec.genotype.reduction,
            };
            edit_genotype(cell, s);
        }
    }
}

fn edit_cell_list(spec: &mut NetworkSpec, s: &mut Script) {
    let n = spec.cells.len();
    match s.byte() % 4 {
        0 if n > 0 => drop(spec.cells.remove(s.index(n))),
        1 if n > 0 => {
            let copy = spec.cells[s.index(n)].clone();
            let at = s.index(n + 1);
            spec.cells.insert(at, copy);
        }
        2 if n > 0 => spec.cells.swap(s.index(n), s.index(n)),
        _ if n > 0 => edit_cell(&mut spec.cells[s.index(n)], s),
        _ => {}
    }
}

fn edit_cell(cell: &mut nasnet_genotype::CellLayout, s: &mut Script) {
    const KINDS: [CellKind; 3] = [CellKind::Stem, CellKind::Normal, CellKind::Reduction];
    const ADJUST: [PrevAdjust; 4] = [
        PrevAdjust::UseInput,
        PrevAdjust::Unchanged,
        PrevAdjust::FactorizedReduction,
        PrevAdjust::Prev1x1,
    ];
    match s.byte() % 10 {
        0 => cell.filters = s.size(),
        1 => cell.stride = s.size(),
        2 => cell.input = s.size(),
        3 => cell.prev = Some(s.size()).filter(|_| s.byte() % 4 != 0),
        4 => cell.input_hw[s.index(2)] = s.size(),
        5 => cell.input_channels = s.size(),
        6 => cell.output_hw[s.index(2)] = s.size(),
        7 => cell.output_channels = s.size(),
        8 => cell.kind = KINDS[s.index(3)],
        _ => cell.prev_adjust = ADJUST[s.index(4)],
    }
}

fn edit_genotype(cell: &mut CellSpec, s: &mut Script) {
    let n = cell.operations.len();
    match s.byte() % 5 {
        0 if n > 0 => cell.operations[s.index(n)] = s.operation(),
        1 if n > 0 => cell.hiddenstate_indices[s.index(n)] = s.size(),
        2 => {
            let j = s.index(cell.used_hiddenstates.len());
            if let Some(flag) = cell.used_hiddenstates.get_mut(j) {
                *flag = s.byte();
            }
        }
        3 => {
            // Grow or cut the cell, keeping the lists' lengths consistent (or not).
            let len = s.size() % 40;
            cell.operations.resize(len, Operation::Identity);
            cell.hiddenstate_indices.resize(len, 0);
            if s.byte() % 4 != 0 {
                cell.used_hiddenstates.resize(len / 2 + 2, 0);
            }
        }
        _ => cell.used_hiddenstates.push(s.byte()),
    }
}

/// Most activations (values, one image) for which a loaded description is also run.
const RUN_BUDGET: u64 = 1 << 24;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (weights, spec) = base();
    let mut spec = spec.clone();
    let mut script = Script(data);
    for _ in 0..1 + script.index(8) {
        edit_network(&mut spec, &mut script);
    }
    let Ok(spec) = NetworkSpec::from_json(&spec.to_json()) else {
        return;
    };
    let Ok(network) = Network::load(&spec, weights) else {
        return;
    };
    if spec.activation_elements_per_image().is_some_and(|n| n <= RUN_BUDGET) {
        let [h, w] = spec.image_size;
        let _ = network.forward(&Tensor::zeros([1, h, w, 3]));
    }
});
