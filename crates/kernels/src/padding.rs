//! TensorFlow's SAME/VALID output-size and padding arithmetic.

/// TF padding mode of a convolution or pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Output `ceil(in/s)`; zeros added as evenly as possible, the odd one at
    /// the bottom/right.
    Same,
    /// No padding: output `ceil((in-k+1)/s)`.
    Valid,
}

/// TF SAME/VALID arithmetic: returns `(out_len, pad_before, pad_after)`.
///
/// SAME: `out = ceil(in/s)`, `pad_total = max((out-1)*s + k - in, 0)`,
/// `before = total/2`, the extra pixel at the bottom/right.
/// VALID: `out = ceil((in-k+1)/s)` (0 if `k > in`), no padding.
///
/// Callers pass sizes that a validated network description implies (kernels 1..=7,
/// strides 1 or 2; `nasnet_genotype::NetworkSpec::validate`); the arithmetic saturates
/// rather than overflowing for any other size, so a huge kernel gives a huge padding, not
/// a wrapped one.
///
/// Panics if `kernel` or `stride` is 0 (no TF op has either).
pub fn output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: Padding,
) -> (usize, usize, usize) {
    assert!(
        kernel > 0 && stride > 0,
        "kernel {kernel} and stride {stride} must be > 0"
    );
    match padding {
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out.max(1) - 1).saturating_mul(stride))
                .saturating_add(kernel)
                .saturating_sub(input);
            (out, total / 2, total - total / 2)
        }
        Padding::Valid => {
            let out = if kernel > input {
                0
            } else {
                (input - kernel + 1).div_ceil(stride)
            };
            (out, 0, 0)
        }
    }
}

/// Range of kernel taps `lo..hi` that land inside `0..input` for an output at
/// position `origin` (= out*stride - pad_before, possibly negative).
#[inline]
pub(crate) fn valid_taps(origin: isize, kernel: usize, input: usize) -> (usize, usize) {
    let lo = (-origin).clamp(0, kernel as isize) as usize;
    let hi = (input as isize - origin).clamp(0, kernel as isize) as usize;
    (lo, hi.max(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf_same_cases_of_the_network() {
        assert_eq!(output_size(42, 3, 2, Padding::Same), (21, 0, 1));
        assert_eq!(output_size(42, 7, 2, Padding::Same), (21, 2, 3));
        assert_eq!(output_size(42, 5, 2, Padding::Same), (21, 1, 2));
        assert_eq!(output_size(165, 3, 2, Padding::Same), (83, 1, 1));
        assert_eq!(output_size(165, 7, 2, Padding::Same), (83, 3, 3));
        assert_eq!(output_size(83, 3, 2, Padding::Same), (42, 1, 1));
        assert_eq!(output_size(83, 7, 2, Padding::Same), (42, 3, 3));
        assert_eq!(output_size(21, 3, 2, Padding::Same), (11, 1, 1));
        assert_eq!(output_size(42, 3, 1, Padding::Same), (42, 1, 1));
        assert_eq!(output_size(42, 1, 2, Padding::Same), (21, 0, 0));
    }

    #[test]
    fn tf_valid_stem() {
        assert_eq!(output_size(331, 3, 2, Padding::Valid), (165, 0, 0));
        assert_eq!(output_size(21, 5, 3, Padding::Valid), (6, 0, 0));
        assert_eq!(output_size(2, 3, 1, Padding::Valid), (0, 0, 0));
    }

    #[test]
    fn huge_kernels_saturate_instead_of_overflowing() {
        // (5 - 1) * 1 + usize::MAX overflows; saturated, the padding is (nearly) everything.
        let (out, before, after) = output_size(5, usize::MAX, 1, Padding::Same);
        assert_eq!(out, 5);
        assert_eq!(
            (before, after),
            ((usize::MAX - 5) / 2, (usize::MAX - 5) / 2)
        );
        assert_eq!(output_size(5, usize::MAX, 1, Padding::Valid), (0, 0, 0));
    }

    #[test]
    fn taps_clip_at_borders() {
        assert_eq!(valid_taps(-1, 3, 42), (1, 3));
        assert_eq!(valid_taps(40, 3, 42), (0, 2));
        assert_eq!(valid_taps(5, 3, 42), (0, 3));
        assert_eq!(valid_taps(-3, 7, 2), (3, 5));
    }
}
