//! What the forward pass needs of a weight store: the [`WeightSource`] trait. The stores
//! themselves (a converted safetensors file, a hub module's checkpoint) live in `model-io`,
//! so this crate reads no file format.

use crate::ForwardError;

/// A named float32 tensor store in TensorFlow layout (HWIO convolutions, `[in, out]` dense).
pub trait WeightSource {
    /// A name for messages (the file the weights come from).
    fn source_name(&self) -> String;
    /// The shape of the variable, or `None` when it does not exist.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// The values of a float32 variable, in C order.
    fn values(&self, name: &str) -> Result<Vec<f32>, ForwardError>;
}

/// A borrowed store is a store (so callers can pass `&weights` or a boxed one alike).
impl<T: WeightSource + ?Sized> WeightSource for &T {
    fn source_name(&self) -> String {
        (**self).source_name()
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        (**self).shape(name)
    }
    fn values(&self, name: &str) -> Result<Vec<f32>, ForwardError> {
        (**self).values(name)
    }
}
