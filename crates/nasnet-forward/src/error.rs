//! Errors of building or running a network.

/// Why a network could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("{source_name}: variable {name} is missing, but the genotype needs it ({why})")]
    MissingWeight {
        source_name: String,
        name: String,
        why: String,
    },

    #[error("{source_name}: variable {name} has shape {found:?}, expected {expected:?}")]
    WeightShape {
        source_name: String,
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },

    #[error(
        "{source_name}: variable {name} has dtype {dtype}; only float32 weights are supported"
    )]
    WeightDtype {
        source_name: String,
        name: String,
        dtype: String,
    },

    #[error("{source_name}: {problem}")]
    Weights {
        source_name: String,
        problem: String,
    },

    #[error("input images have shape {found:?}; the network takes [N, {h}, {w}, 3] with N >= 1")]
    InputShape {
        found: Vec<usize>,
        h: usize,
        w: usize,
    },

    #[error("unsupported architecture: {0}")]
    Unsupported(String),
}
