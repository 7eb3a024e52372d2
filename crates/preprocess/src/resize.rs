//! `convert_image_dtype`, `central_crop` and TF1's `resize_bilinear`, each with TensorFlow's
//! arithmetic in TensorFlow's order, so the float results match TF's bit for bit or nearly.

use crate::RgbImage;

/// A float32 RGB image, HWC.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

/// The region `central_crop` keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

/// TF's `central_crop` box: the start is `int((d - d * fraction) / 2)` computed in float64
/// (truncated), and the size `d - 2 * start`, so the crop stays centred even when rounding.
pub fn central_crop_box(height: usize, width: usize, fraction: f64) -> CropBox {
    if fraction >= 1.0 {
        return CropBox {
            top: 0,
            left: 0,
            height,
            width,
        };
    }
    let start = |d: usize| {
        let d = d as f64;
        ((d - d * fraction) / 2.0) as usize
    };
    let (top, left) = (start(height), start(width));
    CropBox {
        top,
        left,
        height: height - 2 * top,
        width: width - 2 * left,
    }
}

/// Crops the central `fraction` of each side. Cropping before the (per-pixel) conversion to
/// float gives the same values as TF's convert-then-crop, on fewer pixels.
pub fn central_crop(image: &RgbImage, fraction: f64) -> RgbImage {
    let b = central_crop_box(image.height, image.width, fraction);
    let row = image.width * 3;
    let mut data = Vec::with_capacity(b.height * b.width * 3);
    for y in b.top..b.top + b.height {
        let start = y * row + b.left * 3;
        data.extend_from_slice(&image.data[start..start + b.width * 3]);
    }
    RgbImage {
        width: b.width,
        height: b.height,
        data,
    }
}

/// `convert_image_dtype(uint8 -> float32)`: a cast, then a multiply by `1. / 255`, a Python
/// float (float64) that TF turns into a float32 constant. Dividing by 255 instead would differ
/// in the last bit for some values.
pub fn to_float(image: &RgbImage) -> FloatImage {
    let scale = (1.0f64 / 255.0) as f32;
    FloatImage {
        width: image.width,
        height: image.height,
        data: image.data.iter().map(|&v| f32::from(v) * scale).collect(),
    }
}

/// One output row's or column's source pixels and weight (TF's `CachedInterpolation`).
#[derive(Clone, Copy, Debug)]
struct Interpolation {
    lower: usize,
    upper: usize,
    lerp: f32,
}

/// TF's `compute_interpolation_weights` with the legacy scaler: `in = out * scale` in float32,
/// `lower = floor(in)`, `upper = min(ceil(in), in_size - 1)`, `lerp = in - floor(in)`.
fn interpolation_weights(out_size: usize, in_size: usize) -> Vec<Interpolation> {
    // TF's CalculateResizeScale without align_corners: in_size / float(out_size).
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|i| {
            let source = i as f32 * scale;
            let floor = source.floor();
            Interpolation {
                lower: floor.max(0.0) as usize,
                upper: (source.ceil() as usize).min(in_size - 1),
                lerp: source - floor,
            }
        })
        .collect()
}

/// TF's `compute_lerp`: horizontal first on both rows, then vertical, no fused multiply-add
/// (TF's SSE path uses separate `mul` and `add`).
fn lerp(top_left: f32, top_right: f32, bottom_left: f32, bottom_right: f32, x: f32, y: f32) -> f32 {
    let top = top_left + (top_right - top_left) * x;
    let bottom = bottom_left + (bottom_right - bottom_left) * x;
    top + (bottom - top) * y
}

/// TF1's `resize_bilinear(align_corners=False, half_pixel_centers=False)` of an RGB image to
/// `out_height`×`out_width`. Like TF, returns the input unchanged when the size is the same.
pub fn resize_bilinear(image: &FloatImage, out_height: usize, out_width: usize) -> FloatImage {
    if out_height == image.height && out_width == image.width {
        return image.clone();
    }
    let ys = interpolation_weights(out_height, image.height);
    let xs = interpolation_weights(out_width, image.width);
    let row = image.width * 3;
    let mut data = Vec::with_capacity(out_height * out_width * 3);
    for y in &ys {
        let upper_row = &image.data[y.upper * row..(y.upper + 1) * row];
        let lower_row = &image.data[y.lower * row..(y.lower + 1) * row];
        for x in &xs {
            for c in 0..3 {
                data.push(lerp(
                    lower_row[x.lower * 3 + c],
                    lower_row[x.upper * 3 + c],
                    upper_row[x.lower * 3 + c],
                    upper_row[x.upper * 3 + c],
                    x.lerp,
                    y.lerp,
                ));
            }
        }
    }
    FloatImage {
        width: out_width,
        height: out_height,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_box_truncates_like_python_int() {
        // 512: (512 - 448) / 2 = 32 exactly; 427: (427 - 373.625) / 2 = 26.6875 -> 26.
        assert_eq!(
            central_crop_box(512, 427, 0.875),
            CropBox {
                top: 32,
                left: 26,
                height: 448,
                width: 375
            }
        );
        assert_eq!(central_crop_box(1, 1, 0.875).height, 1);
    }

    #[test]
    fn uint8_to_float_is_cast_times_float32_scale() {
        let image = RgbImage {
            width: 1,
            height: 1,
            data: vec![0, 128, 255],
        };
        let f = to_float(&image).data;
        assert_eq!(f[0], 0.0);
        assert_eq!(f[1], 128.0f32 * (1.0f64 / 255.0) as f32);
        assert_eq!(f[2], 255.0f32 * (1.0f64 / 255.0) as f32);
    }

    #[test]
    fn resize_samples_at_out_times_scale_without_half_pixel_offset() {
        // One row 0, 1, 2, 3 (grey in all channels) to 2 wide: samples at 0 and 2.
        let image = FloatImage {
            width: 4,
            height: 1,
            data: [0.0f32, 1.0, 2.0, 3.0]
                .iter()
                .flat_map(|&v| [v; 3])
                .collect(),
        };
        let out = resize_bilinear(&image, 1, 2);
        assert_eq!(out.data, vec![0.0, 0.0, 0.0, 2.0, 2.0, 2.0]);
        // Upsampling 2 -> 4: samples at 0, 0.5, 1, 1.5; the last is clamped to the edge.
        let small = FloatImage {
            width: 2,
            height: 1,
            data: vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0],
        };
        let up: Vec<f32> = resize_bilinear(&small, 1, 4)
            .data
            .into_iter()
            .step_by(3)
            .collect();
        assert_eq!(up, vec![0.0, 0.5, 1.0, 1.0]);
    }
}
