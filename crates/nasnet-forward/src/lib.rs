//! The forward pass of a NASNet-search-space network (AmoebaNet-A and relatives).
//!
//! Owns: building a runnable [`Network`] from a [`NetworkSpec`] and weights (any
//! [`WeightSource`]; the file-backed ones are `model-io`'s), folding batch norm into the
//! convolutions at load time, packing their weights at the [`Precision`] asked for (f32, or
//! bf16 where the CPU has bf16 hardware), and running images `[N,H,W,3]` in `[0,1]` to logits and feature
//! vectors, with an optional tap on every cell's output for verification.
//!
//! Does not own: the arithmetic kernels (crate `kernels`), the genotype's extraction
//! (crate `nasnet-genotype`), or any file format (weights come through [`WeightSource`]).
//!
//! Semantics follow TensorFlow exactly (see `shared/spec/amoebanet.md`): NHWC, SAME padding with
//! the extra pixel at bottom/right, average pooling that leaves padding out of the count,
//! the factorized reduction's zero pad on odd sizes, inference batch norm with the graph's
//! epsilon, stride only on operations that read h0 or h1, concat in index order.

mod cell;
mod error;
mod layers;
mod network;
mod ops;
mod tensor;
mod weights;

pub use error::ForwardError;
pub use kernels::Bf16Engine;
pub use layers::Precision;
pub use network::{Network, Outputs};
pub use tensor::{pooled_bytes, release_pooled_buffers, Tensor};
pub use weights::WeightSource;

pub use nasnet_genotype::NetworkSpec;

#[cfg(test)]
mod test_support {
    use crate::{ForwardError, WeightSource};

    /// A weight source with no variables: checks that fail before reading any use it.
    pub struct Empty;

    impl WeightSource for Empty {
        fn source_name(&self) -> String {
            "empty".into()
        }
        fn shape(&self, _: &str) -> Option<Vec<usize>> {
            None
        }
        fn values(&self, name: &str) -> Result<Vec<f32>, ForwardError> {
            Err(ForwardError::Weights {
                source_name: self.source_name(),
                problem: format!("no {name}"),
            })
        }
    }
}
