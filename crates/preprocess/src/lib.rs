//! Turns photo files into the model's input, exactly as TensorFlow's AmoebaNet evaluation
//! preprocessing does, and names the model's classes.
//!
//! Owns: image decoding (PNG with the `image` crate, JPEG with libjpeg-turbo's IFAST IDCT as
//! TF uses it, made RGB as TF's `decode_image(channels=3)` makes it: grey replicated, alpha
//! dropped, 16-bit samples cut to their high byte, CMYK and YCCK converted with TF's own
//! formulas), reading only regular files of at most [`MAX_PHOTO_BYTES`], refusing empty, undecodable or oversized
//! files before any pixel is decoded, the conversion to float (`convert_image_dtype`),
//! `central_crop(0.875)` and TF1's `resize_bilinear(align_corners=False,
//! half_pixel_centers=False)` to the module's size, all with TF's order of operations (the
//! test photos come out bit-identical to TF's); and the 1001 ImageNet labels (index 0
//! `background`), with softmax and top-k over logits.
//!
//! Does not own: the model (`model-io`, `nasnet-forward`), batching or output formats (the
//! `amoeba` binary).

mod decode;
mod error;
mod jpeg;
pub mod labels;
mod resize;

pub use decode::{decode_rgb8, load_rgb8, RgbImage, DEFAULT_MAX_PIXELS, MAX_PHOTO_BYTES};
pub use error::PreprocessError;
pub use jpeg::cmyk_to_rgb_like_tf;
pub use resize::{central_crop, central_crop_box, resize_bilinear, to_float, CropBox, FloatImage};

use std::path::Path;

/// The fraction of each side that TF-slim's evaluation preprocessing keeps.
pub const CENTRAL_FRACTION: f64 = 0.875;

/// The full evaluation preprocessing of one decoded image: float in [0, 1], central crop
/// 0.875, bilinear resize to `size`×`size`. Returns HWC float32, `size * size * 3` values.
pub fn preprocess_rgb(image: &RgbImage, size: usize) -> Vec<f32> {
    let cropped = central_crop(image, CENTRAL_FRACTION);
    resize_bilinear(&to_float(&cropped), size, size).data
}

/// Reads, checks and decodes `path`, then preprocesses it to `size`×`size` (HWC float32).
pub fn preprocess_file(
    path: &Path,
    size: usize,
    max_pixels: u64,
) -> Result<Vec<f32>, PreprocessError> {
    let image = load_rgb8(path, max_pixels)?;
    Ok(preprocess_rgb(&image, size))
}
