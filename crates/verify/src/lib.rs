//! Verification of a forward pass against TensorFlow's golden outputs.
//!
//! Owns: reading a golden safetensors file (`images`, `logits`, `features`,
//! `cell_output/<scope>`) and refusing any that is not fully comparable, the comparison rules
//! (tolerance, top-k agreement), and the report with its PASS/FAIL verdict. Does not own:
//! running the network (`nasnet-forward`) or making goldens (TensorFlow, through
//! `cargo xtask golden`).
//!
//! The default bar, per tensor: `max |ours - golden| <= atol * max(1, max |golden|)`
//! (plus `rtol * |golden|` per element when `rtol` is set), and for logits the same top-5
//! classes in the same order for every image.
//!
//! What cannot fool the verdict (issue 14): a golden value that is NaN or ±Inf, a tolerance
//! that is NaN, infinite or negative, a golden tensor the model does not produce or of
//! another shape (all bad input, [`VerifyError`]); a NaN or ±Inf in our outputs (a FAIL naming
//! the first such cell). PASS means every golden tensor was compared and every value of each
//! was finite and within the bar.

mod compare;
mod error;
mod fit;
mod golden;
pub mod limits;
mod options;

pub use compare::{judge, top_indices, verify, Comparison, Report, TopK};
pub use error::VerifyError;
pub use fit::ModelOutputs;
pub use golden::{Golden, GoldenError, Matrix};
pub use options::{check_tolerance, parse_tolerance, Options, BF16_ATOL};

#[cfg(test)]
pub(crate) mod test_support {
    //! Golden files built in memory for the unit tests.

    use std::path::Path;

    /// One tensor of a golden file to build: name, shape, values.
    pub type Spec<'a> = (&'a str, Vec<usize>, Vec<f32>);

    /// A safetensors file of float32 tensors.
    pub fn golden_bytes(tensors: &[Spec<'_>]) -> Vec<u8> {
        let data: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, _, values)| values.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .zip(&data)
            .map(|((name, shape, _), bytes)| {
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    bytes,
                )
                .unwrap();
                (name.to_string(), view)
            })
            .collect();
        safetensors::serialize(views, None).unwrap()
    }

    /// `len` values 0.01, 0.02, ... (distinct, so top-k orders are unambiguous).
    pub fn ramp(len: usize) -> Vec<f32> {
        (1..=len).map(|i| i as f32 * 0.01).collect()
    }

    /// A small valid golden: 2 images 4x4, 5 logits, 3 features, cells `a` [2,2,2,2] and
    /// `b` [2,1,1,4].
    pub fn small_golden() -> Vec<Spec<'static>> {
        vec![
            ("images", vec![2, 4, 4, 3], ramp(96)),
            ("logits", vec![2, 5], ramp(10)),
            ("features", vec![2, 3], ramp(6)),
            ("cell_output/a", vec![2, 2, 2, 2], ramp(16)),
            ("cell_output/b", vec![2, 1, 1, 4], ramp(8)),
        ]
    }

    /// What [`small_golden`] fits.
    pub fn small_model() -> crate::ModelOutputs {
        crate::ModelOutputs {
            image_size: [4, 4],
            num_classes: Some(5),
            num_features: 3,
            cells: vec![("a".into(), [2, 2, 2]), ("b".into(), [1, 1, 4])],
        }
    }

    pub fn parse(tensors: &[Spec<'_>]) -> Result<crate::Golden, crate::GoldenError> {
        crate::Golden::from_bytes(Path::new("test.golden.safetensors"), &golden_bytes(tensors))
    }

    /// The problem of a golden that must be refused, checked to name the file.
    pub fn refused(tensors: &[Spec<'_>]) -> String {
        let err = parse(tensors).expect_err("this golden must be refused");
        let text = err.to_string();
        assert!(text.starts_with("test.golden.safetensors: "), "{text}");
        text
    }
}
