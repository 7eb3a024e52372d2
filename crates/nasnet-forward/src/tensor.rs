//! A dense owned NHWC tensor, the unit the network passes between cells.

use kernels::{Nhwc, NhwcMut};

/// A dense float32 tensor in NHWC order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub data: Vec<f32>,
    pub shape: [usize; 4],
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: [usize; 4]) -> Tensor {
        Tensor {
            data: vec![0.0; shape.iter().product()],
            shape,
        }
    }

    /// Wraps data; `None` when the length does not match the shape.
    pub fn from_vec(data: Vec<f32>, shape: [usize; 4]) -> Option<Tensor> {
        (data.len() == shape.iter().product::<usize>()).then_some(Tensor { data, shape })
    }

    pub fn view(&self) -> Nhwc<'_> {
        Nhwc::new(&self.data, self.shape)
    }

    pub fn view_mut(&mut self) -> NhwcMut<'_> {
        NhwcMut::new(&mut self.data, self.shape)
    }

    pub fn channels(&self) -> usize {
        self.shape[3]
    }
}
