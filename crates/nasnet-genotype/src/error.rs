//! The one error type of the crate. Messages name the scope or node at fault and what is wrong.

/// Why a network description could not be extracted or parsed.
#[derive(Debug, thiserror::Error)]
pub enum GenotypeError {
    /// A genotype operation name outside the NASNet-space vocabulary.
    #[error("unknown operation name {0:?}")]
    UnknownOperation(String),
    /// A field of a network description (or genotype) that the forward pass does not
    /// support, or out of its cap; `field` is its JSON path (`cells[3].stride`).
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    /// The variable names/shapes do not describe a NASNet-space network.
    #[error("variables: {scope}: {message}")]
    Variables { scope: String, message: String },
    /// A graph node is missing, malformed or wired in a way the cell code cannot produce.
    #[error("graph: {node}: {message}")]
    Graph { node: String, message: String },
    /// Two cells of one kind (normal, or reduction/stem) differ: the first inconsistency.
    #[error("{scope}: {message}")]
    Inconsistent { scope: String, message: String },
    /// The sources disagree in a way that leaves no runnable network (e.g. a layout the
    /// variables cannot fill).
    #[error("{scope}: {message}")]
    Layout { scope: String, message: String },
    /// No image size from the caller, the attachment, the signature or the input placeholder.
    #[error("image size unknown: no attachment, signature input shape or input placeholder shape, and none given")]
    NoImageSize,
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl GenotypeError {
    pub(crate) fn vars(scope: impl Into<String>, message: impl Into<String>) -> Self {
        GenotypeError::Variables {
            scope: scope.into(),
            message: message.into(),
        }
    }

    pub(crate) fn graph(node: impl Into<String>, message: impl Into<String>) -> Self {
        GenotypeError::Graph {
            node: node.into(),
            message: message.into(),
        }
    }

    pub(crate) fn layout(scope: impl Into<String>, message: impl Into<String>) -> Self {
        GenotypeError::Layout {
            scope: scope.into(),
            message: message.into(),
        }
    }
}
