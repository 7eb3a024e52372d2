//! NHWC tensor views whose pixels may be strided, so a channel slice of a
//! concatenation buffer can be read or written in place (no copies for concat).

use std::ops::Range;

/// Read-only NHWC view whose pixels may be strided: element (b,y,x,ch) is at
/// `((b*h + y)*w + x)*pixel_stride + ch`. A channel slice of a wider concat
/// buffer is a view with `pixel_stride > c`.
#[derive(Clone, Copy, Debug)]
pub struct Nhwc<'a> {
    pub data: &'a [f32],
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub pixel_stride: usize,
}

/// Mutable counterpart of [`Nhwc`], same layout rules.
#[derive(Debug)]
pub struct NhwcMut<'a> {
    pub data: &'a mut [f32],
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub pixel_stride: usize,
}

/// Smallest slice length that holds every element of the view: the last
/// pixel only needs its `c` channels, not a full stride.
fn required_len(shape: [usize; 4], pixel_stride: usize) -> usize {
    let pixels = shape[0] * shape[1] * shape[2];
    if pixels == 0 || shape[3] == 0 {
        0
    } else {
        (pixels - 1) * pixel_stride + shape[3]
    }
}

fn check_layout(len: usize, shape: [usize; 4], pixel_stride: usize) {
    assert!(
        shape[3] <= pixel_stride,
        "pixel_stride {pixel_stride} < channels {}",
        shape[3]
    );
    let need = required_len(shape, pixel_stride);
    assert!(
        len >= need,
        "view {shape:?} stride {pixel_stride} needs {need} elements, slice has {len}"
    );
}

fn check_channel_range(c: usize, range: &Range<usize>) {
    assert!(
        range.start <= range.end && range.end <= c,
        "channel range {range:?} outside 0..{c}"
    );
}

impl<'a> Nhwc<'a> {
    /// Dense view. Panics if `data.len()` is not `n*h*w*c`.
    pub fn new(data: &'a [f32], shape: [usize; 4]) -> Self {
        assert_eq!(
            data.len(),
            shape.iter().product::<usize>(),
            "shape {shape:?}"
        );
        Self::strided(data, shape, shape[3])
    }

    /// View with an explicit pixel stride. Panics if `pixel_stride < c` or
    /// the slice is too short.
    pub fn strided(data: &'a [f32], shape: [usize; 4], pixel_stride: usize) -> Self {
        check_layout(data.len(), shape, pixel_stride);
        let [n, h, w, c] = shape;
        Nhwc {
            data,
            n,
            h,
            w,
            c,
            pixel_stride,
        }
    }

    /// Sub-view of channels `range` (same pixels). Panics if out of range.
    pub fn channels(self, range: Range<usize>) -> Self {
        check_channel_range(self.c, &range);
        // Clamped: an empty view (no pixels or channels) may have an empty slice.
        let data = &self.data[range.start.min(self.data.len())..];
        Nhwc {
            data,
            c: range.len(),
            ..self
        }
    }

    pub fn shape(&self) -> [usize; 4] {
        [self.n, self.h, self.w, self.c]
    }

    /// Number of pixels, `n*h*w`.
    pub fn pixels(&self) -> usize {
        self.n * self.h * self.w
    }

    /// Channels of pixel `p` (flat index over n, h, w).
    #[inline]
    pub fn pixel(&self, p: usize) -> &'a [f32] {
        &self.data[p * self.pixel_stride..][..self.c]
    }

    /// Checks the layout invariants (the fields are public, so a view may
    /// have been built by hand).
    pub(crate) fn validate(&self) {
        check_layout(self.data.len(), self.shape(), self.pixel_stride);
    }
}

impl<'a> NhwcMut<'a> {
    /// Dense view. Panics if `data.len()` is not `n*h*w*c`.
    pub fn new(data: &'a mut [f32], shape: [usize; 4]) -> Self {
        assert_eq!(
            data.len(),
            shape.iter().product::<usize>(),
            "shape {shape:?}"
        );
        Self::strided(data, shape, shape[3])
    }

    /// View with an explicit pixel stride. Panics if `pixel_stride < c` or
    /// the slice is too short.
    pub fn strided(data: &'a mut [f32], shape: [usize; 4], pixel_stride: usize) -> Self {
        check_layout(data.len(), shape, pixel_stride);
        let [n, h, w, c] = shape;
        NhwcMut {
            data,
            n,
            h,
            w,
            c,
            pixel_stride,
        }
    }

    /// Sub-view of channels `range` (same pixels). Panics if out of range.
    pub fn channels_mut(self, range: Range<usize>) -> Self {
        check_channel_range(self.c, &range);
        // Clamped: an empty view (no pixels or channels) may have an empty slice.
        let start = range.start.min(self.data.len());
        NhwcMut {
            data: &mut self.data[start..],
            c: range.len(),
            ..self
        }
    }

    pub fn shape(&self) -> [usize; 4] {
        [self.n, self.h, self.w, self.c]
    }

    /// Number of pixels, `n*h*w`.
    pub fn pixels(&self) -> usize {
        self.n * self.h * self.w
    }

    pub fn as_view(&self) -> Nhwc<'_> {
        Nhwc {
            data: self.data,
            n: self.n,
            h: self.h,
            w: self.w,
            c: self.c,
            pixel_stride: self.pixel_stride,
        }
    }

    pub fn reborrow(&mut self) -> NhwcMut<'_> {
        NhwcMut {
            data: self.data,
            ..*self
        }
    }

    pub(crate) fn validate(&self) {
        check_layout(self.data.len(), self.shape(), self.pixel_stride);
    }

    /// Pixel rows (`n*h` of them, each `w` pixels) as disjoint mutable
    /// slices, in order, for rayon: the unit of parallel work of most
    /// kernels. The last row may be shorter than `w*pixel_stride` but always
    /// holds its pixels' channels.
    pub(crate) fn par_rows_mut(&mut self) -> rayon::iter::Take<rayon::slice::ChunksMut<'_, f32>> {
        use rayon::prelude::*;
        let row = (self.w * self.pixel_stride).max(1);
        let rows = if self.c == 0 { 0 } else { self.n * self.h };
        self.data.par_chunks_mut(row).take(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_slice_addresses() {
        let data: Vec<f32> = (0..2 * 3 * 8).map(|v| v as f32).collect();
        let v = Nhwc::new(&data, [1, 2, 3, 8]).channels(2..5);
        assert_eq!(v.shape(), [1, 2, 3, 3]);
        assert_eq!(v.pixel(0), &[2.0, 3.0, 4.0]);
        assert_eq!(v.pixel(5), &[42.0, 43.0, 44.0]);
        let last = Nhwc::new(&data, [1, 2, 3, 8]).channels(6..8);
        assert_eq!(last.pixel(5), &[46.0, 47.0]);
    }

    #[test]
    #[should_panic]
    fn new_rejects_wrong_length() {
        let data = vec![0.0; 10];
        Nhwc::new(&data, [1, 2, 3, 2]);
    }

    #[test]
    fn mut_rows_cover_strided_view() {
        let mut data = vec![0.0f32; 2 * 2 * 3 * 5];
        let mut v = NhwcMut::new(&mut data, [2, 2, 3, 5]).channels_mut(3..5);
        use rayon::prelude::*;
        assert_eq!(v.par_rows_mut().count(), 4);
        for row in v.par_rows_mut().collect::<Vec<_>>() {
            for x in 0..3 {
                row[x * 5..x * 5 + 2].fill(1.0);
            }
        }
        assert_eq!(data.iter().sum::<f32>(), 24.0);
        assert_eq!(data[3], 1.0);
        assert_eq!(data[2], 0.0);
    }
}
