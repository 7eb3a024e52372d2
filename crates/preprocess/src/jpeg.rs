//! JPEG decoding identical to TensorFlow's.
//!
//! TF decodes with libjpeg-turbo, and `decode_image`/`decode_jpeg` default to the IFAST
//! integer IDCT ("sacrificing image quality for speed") with fancy upsampling. The image
//! crate's decoder (zune-jpeg) is closer to the accurate IDCT, so on `rocket.jpg` it differs
//! from TF in 2/3 of the samples by up to 11 levels. libjpeg-turbo's own decoder (the mozjpeg
//! crate vendors it) with the same settings gives TF's pixels exactly.

use crate::PreprocessError;
use mozjpeg::{DctMethod, Decompress};
use std::cell::Cell;
use std::io::{BufRead, Read};
use std::panic::AssertUnwindSafe;
use std::path::Path;

/// Decodes JPEG bytes to interleaved RGB as TF's `decode_image(channels=3)` does.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<Vec<u8>, PreprocessError> {
    let ran_out = Cell::new(false);
    let source = WatchedBytes {
        rest: bytes,
        ran_out: &ran_out,
    };
    // libjpeg reports fatal errors through its error handler, which the mozjpeg crate turns
    // into an unwind; catching it turns a corrupt file into an error, not a crash. Nothing
    // shared is left half-updated: `ran_out` is a plain flag read only afterwards.
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| decode_unguarded(source)));
    let message = match result {
        // libjpeg pads a truncated file with an end marker and carries on; TF (without
        // try_recover_truncated) refuses it, and so do we.
        Ok(Ok(_)) if ran_out.get() => "truncated JPEG data (the file ends early)".to_string(),
        Ok(Ok(pixels)) => return Ok(pixels),
        Ok(Err(e)) => e.to_string(),
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

fn decode_unguarded(source: WatchedBytes<'_>) -> std::io::Result<Vec<u8>> {
    let mut decompress = Decompress::with_markers(&[]).from_reader(source)?;
    decompress.dct_method(DctMethod::IntegerFast);
    decompress.do_fancy_upsampling(true);
    let mut started = decompress.rgb()?;
    let pixels = started.read_scanlines::<u8>()?;
    started.finish()?;
    Ok(pixels)
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
