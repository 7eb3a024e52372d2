//! Writes the CMYK and YCCK test JPEGs: `cargo run -p preprocess --example make_cmyk_jpegs`.
//!
//! `tests/data/cmyk_adobe.jpg` (CMYK with libjpeg's Adobe APP14 marker, transform 0),
//! `tests/data/ycck_adobe.jpg` (YCCK, Adobe transform 2) and `tests/data/cmyk_plain.jpg` (the
//! CMYK file with its APP14 segment cut out, so libjpeg sees CMYK without `saw_Adobe_marker`).
//! 48x40 pixels of smooth CMYK gradients, encoded by the vendored libjpeg (mozjpeg).

use mozjpeg::{ColorSpace, Compress};
use std::error::Error;
use std::path::Path;

const WIDTH: usize = 48;
const HEIGHT: usize = 40;

fn pixels() -> Vec<u8> {
    let mut out = Vec::with_capacity(WIDTH * HEIGHT * 4);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            out.extend_from_slice(&[
                (x * 255 / (WIDTH - 1)) as u8,
                (y * 255 / (HEIGHT - 1)) as u8,
                ((x + y) * 255 / (WIDTH + HEIGHT - 2)) as u8,
                (64 + (x * y) % 160) as u8,
            ]);
        }
    }
    out
}

fn encode(space: ColorSpace) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut compress = Compress::new(ColorSpace::JCS_CMYK);
    compress.set_size(WIDTH, HEIGHT);
    compress.set_quality(92.0);
    compress.set_color_space(space);
    let mut started = compress.start_compress(Vec::new())?;
    started.write_scanlines(&pixels())?;
    Ok(started.finish()?)
}

/// The JPEG without its APP14 (0xFFEE) segments.
fn without_app14(jpeg: &[u8]) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut out = jpeg[..2].to_vec();
    let mut at = 2;
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF && jpeg[at + 1] != 0xDA {
        let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        if jpeg[at + 1] != 0xEE {
            out.extend_from_slice(jpeg.get(at..at + 2 + len).ok_or("truncated segment")?);
        }
        at += 2 + len;
    }
    out.extend_from_slice(&jpeg[at..]);
    Ok(out)
}

fn main() -> Result<(), Box<dyn Error>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let cmyk = encode(ColorSpace::JCS_CMYK)?;
    std::fs::write(dir.join("cmyk_adobe.jpg"), &cmyk)?;
    std::fs::write(dir.join("ycck_adobe.jpg"), encode(ColorSpace::JCS_YCCK)?)?;
    std::fs::write(dir.join("cmyk_plain.jpg"), without_app14(&cmyk)?)?;
    println!(
        "wrote {}/{{cmyk_adobe,ycck_adobe,cmyk_plain}}.jpg",
        dir.display()
    );
    Ok(())
}
