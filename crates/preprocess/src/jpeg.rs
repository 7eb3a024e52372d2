//! JPEG decoding identical to TensorFlow's.
//!
//! TF decodes with libjpeg-turbo, and `decode_image`/`decode_jpeg` default to the IFAST
//! integer IDCT ("sacrificing image quality for speed") with fancy upsampling. The image
//! crate's decoder (zune-jpeg) is closer to the accurate IDCT, so on `rocket.jpg` it differs
//! from TF in 2/3 of the samples by up to 11 levels. libjpeg-turbo's own decoder (the mozjpeg
//! crate vendors it) with the same settings gives TF's pixels exactly.
//!
//! CMYK and YCCK JPEGs: TF (`tensorflow/core/lib/jpeg/jpeg_mem.cc`, `UncompressLow`) asks
//! libjpeg for `JCS_CMYK` output whenever the file's colour space is `JCS_CMYK` or `JCS_YCCK`
//! and converts each pixel to RGB itself, in integers: with an Adobe APP14 marker (libjpeg's
//! `saw_Adobe_marker`; Adobe writes inverted CMYK) `r = k * c / 255`, otherwise
//! `r = (255 - k) * (255 - c) / 255`, the same for g (m) and b (y). [`cmyk_to_rgb_like_tf`]
//! does exactly that.

use crate::PreprocessError;
use mozjpeg::{ColorSpace, DctMethod, Decompress, Marker};
use std::cell::Cell;
use std::io::{BufRead, Read};
use std::panic::AssertUnwindSafe;
use std::path::Path;

/// TF refuses a JPEG whose width x height x components reaches this (`total_size >= 1 << 29`
/// in `UncompressLow`), before decoding it.
const TF_MAX_JPEG_SAMPLES: u64 = 1 << 29;

/// APP14 data that makes libjpeg set `saw_Adobe_marker` (`examine_app14`: at least 12 bytes,
/// starting with `Adobe`).
const ADOBE_APP14_MIN_LEN: usize = 12;

/// Decodes JPEG bytes to interleaved RGB as TF's `decode_image(channels=3)` does, refusing
/// more than `max_pixels` pixels by libjpeg's own reading of the header, before decoding.
pub fn decode_rgb(bytes: &[u8], path: &Path, max_pixels: u64) -> Result<Vec<u8>, PreprocessError> {
    let ran_out = Cell::new(false);
    let source = WatchedBytes {
        rest: bytes,
        ran_out: &ran_out,
    };
    // libjpeg reports fatal errors through its error handler, which the mozjpeg crate turns
    // into an unwind; catching it turns a corrupt file into an error, not a crash. Nothing
    // shared is left half-updated: `ran_out` is a plain flag read only afterwards.
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        decode_unguarded(source, path, max_pixels)
    }));
    let message = match result {
        // libjpeg pads a truncated file with an end marker and carries on; TF (without
        // try_recover_truncated) refuses it, and so do we.
        Ok(Ok(_)) if ran_out.get() => "truncated JPEG data (the file ends early)".to_string(),
        Ok(Ok(pixels)) => return Ok(pixels),
        Ok(Err(Failure::Refused(e))) => return Err(e),
        Ok(Err(Failure::Io(e))) => e.to_string(),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "libjpeg fatal error".to_string()),
    };
    Err(PreprocessError::Undecodable {
        path: path.to_path_buf(),
        message,
    })
}

/// Why [`decode_unguarded`] stopped: libjpeg's own error, or a refusal of ours.
enum Failure {
    Io(std::io::Error),
    Refused(PreprocessError),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

fn decode_unguarded(
    source: WatchedBytes<'_>,
    path: &Path,
    max_pixels: u64,
) -> Result<Vec<u8>, Failure> {
    let mut decompress = Decompress::with_markers(&[Marker::APP(14)]).from_reader(source)?;
    check_size(&decompress, path, max_pixels).map_err(Failure::Refused)?;
    let four_channels = matches!(
        decompress.color_space(),
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK
    );
    let adobe = decompress.markers().any(|m| {
        m.marker == Marker::APP(14)
            && m.data.len() >= ADOBE_APP14_MIN_LEN
            && m.data.starts_with(b"Adobe")
    });
    decompress.dct_method(DctMethod::IntegerFast);
    decompress.do_fancy_upsampling(true);
    let out_space = if four_channels {
        ColorSpace::JCS_CMYK
    } else {
        ColorSpace::JCS_RGB
    };
    let mut started = decompress.to_colorspace(out_space)?;
    let samples = started.read_scanlines::<u8>()?;
    started.finish()?;
    Ok(if four_channels {
        cmyk_to_rgb_like_tf(&samples, adobe)
    } else {
        samples
    })
}

/// The pixel limit, and TF's own sample limit, on the size libjpeg read from the header.
fn check_size<R>(
    decompress: &Decompress<R>,
    path: &Path,
    max_pixels: u64,
) -> Result<(), PreprocessError> {
    let (width, height) = decompress.size();
    let (width, height) = (width as u64, height as u64);
    if width * height > max_pixels {
        return Err(PreprocessError::TooLarge {
            path: path.to_path_buf(),
            width: u32::try_from(width).unwrap_or(u32::MAX),
            height: u32::try_from(height).unwrap_or(u32::MAX),
            limit: max_pixels,
        });
    }
    let samples = width * height * decompress.components().len() as u64;
    if samples >= TF_MAX_JPEG_SAMPLES {
        return Err(PreprocessError::Undecodable {
            path: path.to_path_buf(),
            message: format!(
                "{width}x{height} with {} components is {samples} samples; TensorFlow refuses \
                 JPEGs of 2^29 ({TF_MAX_JPEG_SAMPLES}) samples or more",
                decompress.components().len()
            ),
        });
    }
    Ok(())
}

/// TF's CMYK to RGB conversion (`jpeg_mem.cc`), pixel by pixel in integer arithmetic.
pub fn cmyk_to_rgb_like_tf(cmyk: &[u8], adobe: bool) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for pixel in cmyk.chunks_exact(4) {
        let k = u32::from(pixel[3]);
        for &ink in &pixel[..3] {
            let ink = u32::from(ink);
            let value = if adobe {
                k * ink / 255
            } else {
                (255 - k) * (255 - ink) / 255
            };
            // Both products are at most 255 * 255, so the quotient fits a byte.
            rgb.push(value as u8);
        }
    }
    rgb
}

/// The file's bytes as a reader that notes when libjpeg asks for more than there is.
struct WatchedBytes<'a> {
    rest: &'a [u8],
    ran_out: &'a Cell<bool>,
}

impl Read for WatchedBytes<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.fill_buf()?.read(buf)?;
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for WatchedBytes<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.rest.is_empty() {
            self.ran_out.set(true);
        }
        Ok(self.rest)
    }

    fn consume(&mut self, amount: usize) {
        self.rest = &self.rest[amount.min(self.rest.len())..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_conversion_follows_tf_integer_formulas() {
        // Worked by hand from jpeg_mem.cc: Adobe r = k*c/255, plain r = (255-k)*(255-c)/255.
        let cmyk = [255, 128, 0, 255, 10, 20, 30, 200];
        assert_eq!(
            cmyk_to_rgb_like_tf(&cmyk, true),
            vec![255, 128, 0, 7, 15, 23]
        );
        assert_eq!(cmyk_to_rgb_like_tf(&cmyk, false), vec![0, 0, 0, 52, 50, 48]);
    }
}
