//! Why a verification could not run (bad input or usage), as opposed to a FAIL verdict.

use crate::GoldenError;
use nasnet_forward::ForwardError;
use std::path::Path;

/// Every error means "bad input or usage" (the command exits 2); a verification that ran and
/// failed is a [`crate::Report`] with `pass == false`, never an error.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The golden file is unusable or does not fit the model.
    #[error(transparent)]
    Golden(#[from] GoldenError),
    /// Options outside what is allowed (e.g. a NaN tolerance).
    #[error("{0}")]
    Usage(String),
    /// The network refused to run.
    #[error(transparent)]
    Forward(#[from] ForwardError),
}

impl VerifyError {
    pub(crate) fn golden(path: &Path, problem: String) -> VerifyError {
        VerifyError::Golden(crate::golden::golden_error(path, problem))
    }
}
