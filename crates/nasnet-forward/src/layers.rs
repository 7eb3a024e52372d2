//! Layers with their weights loaded and batch norm folded in, ready to run.
//!
//! Every TF convolution here is followed by an inference batch norm, so each is loaded as a
//! [`ConvBn`]: the weights scaled per output channel and a bias (see `kernels::fold_batch_norm`).

use crate::{ForwardError, Tensor, WeightSource};
use kernels::{Nhwc, NhwcMut, PackedWeights, Padding};
use nasnet_genotype::conventions::conventions;
use std::ops::Range;

/// A convolution (HWIO weights) with the batch norm after it folded into weights and bias,
/// packed for [`kernels::gemm_packed`] as a `kh*kw*cin x cout` matrix.
///
/// A 1x1 convolution that reads a cell's output (the states it concatenates, kept apart, see
/// `cell::CellOutput`) has its weights cut along `cin` into one matrix per state: the
/// product is then the sum over the states, and the concatenation is never copied.
pub(crate) struct ConvBn {
    /// One matrix per input part (usually one), each `kh*kw*part_cin x cout`.
    pub w: Vec<PackedWeights>,
    /// Zeros, the bias of every part after the first.
    zero: Vec<f32>,
    pub bias: Vec<f32>,
    pub kh: usize,
    pub kw: usize,
    pub cout: usize,
}

/// Reads weights by TF variable name, checking shapes, and folds batch norms.
pub(crate) struct Loader<'a> {
    pub src: &'a dyn WeightSource,
    /// The graph's FusedBatchNorm epsilon.
    pub eps: f32,
    /// How the convolutions' weights are packed: f32, or rounded to bf16.
    pub precision: Precision,
}

/// The arithmetic of the network's GEMMs (pointwise, stem and other KxK convolutions):
/// float32, or bfloat16 inputs with float32 sums where the CPU has bf16 hardware (AMX or
/// AVX512-BF16; see `kernels::Bf16Engine`). Depthwise convolutions, pooling, the
/// classifier and every activation stay float32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    F32,
    Bf16,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// Weights packed for the precision asked for.
pub(crate) fn pack(precision: Precision, k: usize, n: usize, w: &[f32]) -> PackedWeights {
    match precision {
        Precision::F32 => PackedWeights::new(k, n, w),
        Precision::Bf16 => PackedWeights::new_bf16(k, n, w),
    }
}

impl Loader<'_> {
    /// An [`ForwardError::Unsupported`] naming the weights' file.
    pub fn unsupported(&self, problem: impl Into<String>) -> ForwardError {
        ForwardError::Unsupported {
            source_name: self.src.source_name(),
            problem: problem.into(),
        }
    }

    /// The values of `name`, whose shape must match `expected` where it is `Some`.
    pub fn tensor(
        &self,
        name: &str,
        expected: &[Option<usize>],
        why: &str,
    ) -> Result<(Vec<usize>, Vec<f32>), ForwardError> {
        let shape = self
            .src
            .shape(name)
            .ok_or_else(|| ForwardError::MissingWeight {
                source_name: self.src.source_name(),
                name: name.to_string(),
                why: why.to_string(),
            })?;
        let fits = shape.len() == expected.len()
            && shape
                .iter()
                .zip(expected)
                .all(|(s, e)| e.is_none_or(|e| e == *s));
        if !fits {
            return Err(ForwardError::WeightShape {
                source_name: self.src.source_name(),
                name: name.to_string(),
                found: shape,
                expected: expected.iter().map(|e| e.unwrap_or(0)).collect(),
            });
        }
        Ok((shape, self.src.values(name)?))
    }

    /// Batch-norm scope `bn`'s four vectors restricted to `range`: gamma, beta, mean, variance.
    fn batch_norm(
        &self,
        bn: &str,
        channels: usize,
        range: Range<usize>,
    ) -> Result<[Vec<f32>; 4], ForwardError> {
        let why = "every convolution is followed by a batch norm";
        let read = |name: &str| -> Result<Vec<f32>, ForwardError> {
            let (_, values) = self.tensor(name, &[Some(channels)], why)?;
            Ok(values[range.clone()].to_vec())
        };
        let [gamma, beta, mean, variance] = conventions().bn_variables(bn);
        Ok([read(&gamma)?, read(&beta)?, read(&mean)?, read(&variance)?])
    }

    /// Convolution `weights` [kh, kw, cin, cout?] followed by batch norm `bn`.
    pub fn conv_bn(
        &self,
        weights: &str,
        bn: &str,
        kh: usize,
        kw: usize,
        cin: usize,
        cout: Option<usize>,
    ) -> Result<ConvBn, ForwardError> {
        // Without an expected width, take the file's; a missing variable is reported below.
        let cout = cout
            .or_else(|| self.src.shape(weights).and_then(|s| s.get(3).copied()))
            .unwrap_or(0);
        self.conv_bn_part(weights, bn, kh, kw, cin, cout, cout, 0..cout)
    }

    /// A 1x1 [`Self::conv_bn`] whose input comes in `parts` equal parts of `cin / parts`.
    pub fn conv_bn_parts(
        &self,
        weights: &str,
        bn: &str,
        cin: usize,
        cout: Option<usize>,
        parts: usize,
    ) -> Result<ConvBn, ForwardError> {
        let conv = self.conv_bn(weights, bn, 1, 1, cin, cout)?;
        conv.split_input(parts)
            .map_err(|problem| self.unsupported(problem))
    }

    /// Like [`Self::conv_bn`], for a conv whose outputs are channels `range` of a batch norm
    /// over `bn_channels` (the factorized reduction's two paths share one `final_path_bn`).
    #[allow(clippy::too_many_arguments)]
    pub fn conv_bn_part(
        &self,
        weights: &str,
        bn: &str,
        kh: usize,
        kw: usize,
        cin: usize,
        cout: usize,
        bn_channels: usize,
        range: Range<usize>,
    ) -> Result<ConvBn, ForwardError> {
        let why = "the genotype and the module's shapes call for this convolution";
        let (_, mut w) = self.tensor(weights, &[Some(kh), Some(kw), Some(cin), Some(cout)], why)?;
        let [gamma, beta, mean, var] = self.batch_norm(bn, bn_channels, range)?;
        let bias = kernels::fold_batch_norm(&mut w, cout, &gamma, &beta, &mean, &var, self.eps);
        Ok(ConvBn {
            w: vec![pack(self.precision, kh * kw * cin, cout, &w)],
            zero: vec![0.0; cout],
            bias,
            kh,
            kw,
            cout,
        })
    }

    /// Depthwise weights [k, k, c, 1] as [k][k][c].
    pub fn depthwise(&self, name: &str, k: usize, c: usize) -> Result<Vec<f32>, ForwardError> {
        let why = "separable convolutions start with a depthwise convolution";
        Ok(self
            .tensor(name, &[Some(k), Some(k), Some(c), Some(1)], why)?
            .1)
    }
}

/// Whether a layer overwrites its output or adds onto it (the second branch of a sum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Overwrite,
    Accumulate,
}

impl ConvBn {
    /// The same 1x1 convolution reading its input in `parts` equal channel parts; `Err`
    /// says why it cannot.
    pub fn split_input(self, parts: usize) -> Result<ConvBn, String> {
        let whole = &self.w[0];
        let (cin, cout) = (whole.k(), whole.n());
        if parts <= 1 {
            return Ok(self);
        }
        if self.kh != 1 || self.kw != 1 || self.w.len() != 1 || cin % parts != 0 {
            return Err(format!(
                "a {}x{} convolution over {cin} channels cannot read {parts} equal parts",
                self.kh, self.kw
            ));
        }
        let rows = whole.to_row_major();
        let part = cin / parts;
        // bf16 weights come back rounded; rounding them again changes nothing.
        let precision = if whole.is_bf16() {
            Precision::Bf16
        } else {
            Precision::F32
        };
        let w = rows
            .chunks_exact(part * cout)
            .map(|r| pack(precision, part, cout, r))
            .collect();
        Ok(ConvBn { w, ..self })
    }

    /// 1x1 convolution (stride 1) of an input given in parts (`xs`, as many as the weights'
    /// parts, each a channel range of the whole), with an optional ReLU on the input.
    pub fn run_parts(&self, xs: &[Nhwc], relu_input: bool, write: Write, mut out: NhwcMut) {
        assert_eq!(xs.len(), self.w.len(), "one input part per weight part");
        for (j, (x, w)) in xs.iter().zip(&self.w).enumerate() {
            let (bias, write) = if j == 0 {
                (&self.bias, write)
            } else {
                (&self.zero, Write::Accumulate)
            };
            let f = match write {
                Write::Overwrite => kernels::pointwise_with,
                Write::Accumulate => kernels::pointwise_accumulate,
            };
            f(*x, w, bias, 1, relu_input, out.reborrow());
        }
    }

    /// [`Self::run_parts`] into a new tensor.
    pub fn apply_parts(&self, xs: &[Nhwc], relu_input: bool) -> Tensor {
        let [n, h, w, _] = xs[0].shape();
        let mut out = Tensor::for_overwrite([n, h, w, self.cout]);
        self.run_parts(xs, relu_input, Write::Overwrite, out.view_mut());
        out
    }

    /// Runs the convolution (SAME padding, any kernel size) on `input`, with an optional ReLU
    /// applied as the input is read, writing or adding into `out`.
    pub fn run(
        &self,
        x: Nhwc,
        stride: [usize; 2],
        relu_input: bool,
        write: Write,
        scratch: &mut Vec<f32>,
        out: NhwcMut,
    ) {
        if self.kh == 1 && self.kw == 1 && stride[0] == stride[1] {
            let f = match write {
                Write::Overwrite => kernels::pointwise_with,
                Write::Accumulate => kernels::pointwise_accumulate,
            };
            return f(x, &self.w[0], &self.bias, stride[0], relu_input, out);
        }
        let geom = kernels::ConvGeom {
            kh: self.kh,
            kw: self.kw,
            stride,
            padding: Padding::Same,
        };
        match write {
            Write::Overwrite => {
                kernels::conv2d_with(x, &self.w[0], geom, &self.bias, relu_input, scratch, out)
            }
            Write::Accumulate => {
                let mut t = Tensor::for_overwrite(out.shape());
                kernels::conv2d_with(
                    x,
                    &self.w[0],
                    geom,
                    &self.bias,
                    relu_input,
                    scratch,
                    t.view_mut(),
                );
                kernels::add_assign(out, t.view());
            }
        }
    }

    /// The output shape for `input` at `stride` (SAME padding).
    pub fn output_shape(&self, input: [usize; 4], stride: [usize; 2]) -> [usize; 4] {
        let [n, h, w, _] = input;
        [n, h.div_ceil(stride[0]), w.div_ceil(stride[1]), self.cout]
    }

    /// Runs the convolution into a new tensor.
    pub fn apply(
        &self,
        x: Nhwc,
        stride: [usize; 2],
        relu_input: bool,
        scratch: &mut Vec<f32>,
    ) -> Tensor {
        let mut out = Tensor::for_overwrite(self.output_shape(x.shape(), stride));
        self.run(
            x,
            stride,
            relu_input,
            Write::Overwrite,
            scratch,
            out.view_mut(),
        );
        out
    }
}
