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

    /// Images of another shape than the network's; `model` names the network's file (the
    /// caller knows the images' file and should name it too).
    #[error("input images have shape {found:?}; the network of {model} takes [N, {h}, {w}, 3] with N >= 1")]
    InputShape {
        model: String,
        found: Vec<usize>,
        h: usize,
        w: usize,
    },

    /// The network description (from `source_name`) fails [`nasnet_genotype::NetworkSpec::validate`].
    #[error("{source_name}: invalid network description: {source}")]
    InvalidSpec {
        source_name: String,
        source: nasnet_genotype::GenotypeError,
    },

    /// A description and weights (from `source_name`) that the forward pass cannot run.
    #[error("{source_name}: unsupported architecture: {problem}")]
    Unsupported {
        source_name: String,
        problem: String,
    },
}
