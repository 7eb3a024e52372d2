//! Decoding a file to 8-bit RGB the way TensorFlow's `decode_image(channels=3)` does: the
//! image crate reads headers and PNGs (lossless, so any correct decoder gives TF's pixels),
//! libjpeg-turbo decodes JPEGs (see [`crate::jpeg`]).

use crate::PreprocessError;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use std::io::Cursor;
use std::path::Path;

/// 100 megapixels: far above any photo a classifier needs, far below what exhausts memory
/// (an RGBA 16-bit decode of the limit takes 800 MB).
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// 256 MiB: the largest photo file read. A 100-megapixel JPEG at the highest quality is far
/// smaller; the cap bounds the memory a single file can take before its header is checked.
pub const MAX_PHOTO_BYTES: u64 = 256 << 20;

/// An 8-bit RGB image, rows of interleaved `r, g, b` (HWC), as TF's decoders return it.
#[derive(Clone, Debug, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// Reads and decodes `path` to RGB, refusing anything but a regular file (a FIFO or a device
/// is refused at once, without blocking), files over [`MAX_PHOTO_BYTES`], empty files, formats
/// other than JPEG and PNG, and images over `max_pixels` (checked from the header, before any
/// pixel is decoded).
pub fn load_rgb8(path: &Path, max_pixels: u64) -> Result<RgbImage, PreprocessError> {
    let bytes =
        safe_fs::read_regular(path, MAX_PHOTO_BYTES).map_err(|source| PreprocessError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    decode_rgb8(&bytes, path, max_pixels)
}

/// [`load_rgb8`] on bytes already in memory; `path` only names them in errors.
pub fn decode_rgb8(
    bytes: &[u8],
    path: &Path,
    max_pixels: u64,
) -> Result<RgbImage, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::Empty {
            path: path.to_path_buf(),
        });
    }
    let undecodable = |e: image::ImageError| PreprocessError::Undecodable {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let header = reader(bytes, path)?;
    let format = header.format();
    // The decoders read on past the size before they report it, so a bare oversized header
    // would fail as truncated instead of as too large: read PNG's IHDR and JPEG's SOF here.
    let own_reading = match format {
        Some(ImageFormat::Png) => png_dimensions(bytes),
        Some(ImageFormat::Jpeg) => jpeg_dimensions(bytes),
        _ => None,
    };
    let (width, height) = match own_reading {
        Some(dims) => dims,
        None => header.into_dimensions().map_err(undecodable)?,
    };
    check_pixels(path, width, height, max_pixels)?;
    if format == Some(ImageFormat::Jpeg) {
        return jpeg_like_tf(bytes, path, width, height, max_pixels);
    }
    let mut reader = reader(bytes, path)?;
    reader.limits(decode_limits(width, height, max_pixels));
    let decoded = reader.decode().map_err(undecodable)?;
    Ok(to_rgb8_like_tf(decoded))
}

/// JPEGs go to libjpeg-turbo (see [`crate::jpeg`]); the header was read by the image crate.
fn jpeg_like_tf(
    bytes: &[u8],
    path: &Path,
    width: u32,
    height: u32,
    max_pixels: u64,
) -> Result<RgbImage, PreprocessError> {
    let data = crate::jpeg::decode_rgb(bytes, path, max_pixels)?;
    let (width, height) = (width as usize, height as usize);
    if data.len() != width * height * 3 {
        return Err(PreprocessError::Undecodable {
            path: path.to_path_buf(),
            message: format!("decoded {} bytes, expected {width}x{height}x3", data.len()),
        });
    }
    Ok(RgbImage {
        width,
        height,
        data,
    })
}

/// A reader for JPEG or PNG bytes; anything else is refused by its magic bytes.
fn reader<'a>(
    bytes: &'a [u8],
    path: &Path,
) -> Result<ImageReader<Cursor<&'a [u8]>>, PreprocessError> {
    let unknown = || PreprocessError::UnknownFormat {
        path: path.to_path_buf(),
    };
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|_| unknown())?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => Ok(reader),
        _ => Err(unknown()),
    }
}

/// Width and height from a PNG's IHDR chunk, which the format requires to come first.
fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let ihdr = bytes.get(12..24)?;
    if &ihdr[..4] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| Some(u32::from_be_bytes(b.try_into().ok()?));
    Some((be(&ihdr[4..8])?, be(&ihdr[8..12])?))
}

/// Width and height from a JPEG's first SOF segment: the segments after SOI are walked by
/// their lengths (fill bytes and standalone markers skipped) up to SOS; `None` when the
/// walk runs off the bytes first. libjpeg checks its own reading again before decoding.
fn jpeg_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        match marker {
            0xFF => at += 1,
            0x01 | 0xD0..=0xD7 => at += 2,
            0xD8..=0xDA => return None,
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let sof = bytes.get(at + 5..at + 9)?;
                let height = u16::from_be_bytes([sof[0], sof[1]]);
                let width = u16::from_be_bytes([sof[2], sof[3]]);
                return Some((u32::from(width), u32::from(height)));
            }
            _ => {
                let len = usize::from(u16::from_be_bytes([
                    *bytes.get(at + 2)?,
                    *bytes.get(at + 3)?,
                ]));
                at += 2 + len;
            }
        }
    }
}

fn check_pixels(path: &Path, width: u32, height: u32, limit: u64) -> Result<(), PreprocessError> {
    if u64::from(width) * u64::from(height) > limit {
        return Err(PreprocessError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            limit,
        });
    }
    Ok(())
}

/// Pins the decoder to the header's dimensions (so a file cannot grow past the check while
/// decoding) and lets it allocate what an image within the pixel limit may need.
fn decode_limits(width: u32, height: u32, max_pixels: u64) -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    // 4 channels of 16 bits, plus the decoders' own buffers.
    let needed = max_pixels.saturating_mul(8).saturating_add(64 << 20);
    limits.max_alloc = Some(limits.max_alloc.unwrap_or(0).max(needed));
    limits
}

/// Makes RGB as TF's `decode_image(channels=3)` does: grey is replicated, alpha dropped
/// (not composited), and 16-bit samples keep their high byte (libpng's `png_set_strip_16`,
/// which TF uses when asked for uint8: 0x01FF becomes 1, not the rounded 2).
fn to_rgb8_like_tf(image: DynamicImage) -> RgbImage {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let data = match image {
        DynamicImage::ImageLuma8(b) => rgb_from(b.as_raw(), 1, |v| v),
        DynamicImage::ImageLumaA8(b) => rgb_from(b.as_raw(), 2, |v| v),
        DynamicImage::ImageRgb8(b) => b.into_raw(),
        DynamicImage::ImageRgba8(b) => rgb_from(b.as_raw(), 4, |v| v),
        DynamicImage::ImageLuma16(b) => rgb_from(b.as_raw(), 1, high_byte),
        DynamicImage::ImageLumaA16(b) => rgb_from(b.as_raw(), 2, high_byte),
        DynamicImage::ImageRgb16(b) => rgb_from(b.as_raw(), 3, high_byte),
        DynamicImage::ImageRgba16(b) => rgb_from(b.as_raw(), 4, high_byte),
        // PNG and JPEG decoders never produce float images; convert anything else the
        // image crate's way.
        other => other.to_rgb8().into_raw(),
    };
    RgbImage {
        width,
        height,
        data,
    }
}

fn high_byte(v: u16) -> u8 {
    (v >> 8) as u8
}

/// Interleaved samples with `channels` per pixel to RGB: 1 or 2 channels are grey (plus
/// alpha), 3 or 4 are RGB (plus alpha).
fn rgb_from<T: Copy>(samples: &[T], channels: usize, to_u8: fn(T) -> u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() / channels * 3);
    for pixel in samples.chunks_exact(channels) {
        if channels < 3 {
            let grey = to_u8(pixel[0]);
            out.extend_from_slice(&[grey, grey, grey]);
        } else {
            out.extend(pixel[..3].iter().map(|&v| to_u8(v)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_size_is_read_from_the_first_sof_after_other_segments() {
        // SOI, fill byte, APP0 of 4 bytes, RST0, SOF2 of 300 wide and 200 high.
        let bytes = [
            0xFF, 0xD8, 0xFF, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, 0xFF, 0xD0, 0xFF, 0xC2, 0x00,
            0x11, 0x08, 0x00, 0xC8, 0x01, 0x2C,
        ];
        assert_eq!(jpeg_dimensions(&bytes), Some((300, 200)));
        // DHT (0xC4) is not a SOF; SOS before any SOF, or running off the end, gives None.
        assert_eq!(
            jpeg_dimensions(&[0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x02, 0xFF, 0xDA]),
            None
        );
        assert_eq!(jpeg_dimensions(&bytes[..15]), None);
    }

    #[test]
    fn grey_alpha_is_replicated_and_alpha_dropped() {
        assert_eq!(
            rgb_from(&[7u8, 200, 9, 0], 2, |v| v),
            vec![7, 7, 7, 9, 9, 9]
        );
        assert_eq!(rgb_from(&[1u8, 2, 3, 4], 4, |v| v), vec![1, 2, 3]);
    }

    #[test]
    fn sixteen_bit_keeps_the_high_byte_like_libpng_strip_16() {
        // Measured with TF 2.15.1: decode_image(channels=3) of a 16-bit grey PNG.
        let samples = [
            0x0000u16, 0x00FF, 0x017F, 0x01FF, 0xFF7F, 0xFFFF, 0x1234, 0xABCD,
        ];
        let got = rgb_from(&samples, 1, high_byte);
        let grey: Vec<u8> = got.iter().step_by(3).copied().collect();
        assert_eq!(grey, vec![0, 0, 1, 1, 255, 255, 18, 171]);
    }
}
