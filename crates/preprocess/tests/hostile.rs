//! Photos as an attacker sends them: CMYK and YCCK JPEGs (decoded as TensorFlow decodes
//! them), FIFOs, files over the byte cap, absurd dimensions in PNG and JPEG headers.

use image::{ImageBuffer, ImageFormat, Luma};
use mozjpeg::{ColorSpace, DctMethod, Decompress};
use preprocess::{decode_rgb8, load_rgb8, PreprocessError, DEFAULT_MAX_PIXELS, MAX_PHOTO_BYTES};
use proptest::prelude::*;
use std::io::Cursor;
use std::path::{Path, PathBuf};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The file's CMYK samples as libjpeg decodes them with TF's settings (IFAST IDCT, fancy
/// upsampling, `JCS_CMYK` out), and its JPEG colour space.
fn libjpeg_cmyk(bytes: &[u8]) -> (Vec<u8>, ColorSpace) {
    let mut d = Decompress::new_mem(bytes).expect("a JPEG header");
    let space = d.color_space();
    d.dct_method(DctMethod::IntegerFast);
    d.do_fancy_upsampling(true);
    let mut started = d.to_colorspace(ColorSpace::JCS_CMYK).expect("CMYK output");
    let samples = started.read_scanlines::<u8>().expect("decodes");
    started.finish().expect("finishes");
    (samples, space)
}

/// TF's formulas from `jpeg_mem.cc`, written out here independently of the code under test.
fn tf_rgb(cmyk: &[u8], adobe: bool) -> Vec<u8> {
    cmyk.chunks_exact(4)
        .flat_map(|p| {
            let (c, m, y, k) = (p[0] as i32, p[1] as i32, p[2] as i32, p[3] as i32);
            let rgb = if adobe {
                [(k * c) / 255, (k * m) / 255, (k * y) / 255]
            } else {
                [
                    (255 - k) * (255 - c) / 255,
                    (255 - k) * (255 - m) / 255,
                    (255 - k) * (255 - y) / 255,
                ]
            };
            rgb.map(|v| v as u8)
        })
        .collect()
}

#[test]
fn cmyk_and_ycck_jpegs_decode_to_tf_rgb() {
    let cases = [
        ("cmyk_adobe.jpg", ColorSpace::JCS_CMYK, true),
        ("ycck_adobe.jpg", ColorSpace::JCS_YCCK, true),
        ("cmyk_plain.jpg", ColorSpace::JCS_CMYK, false),
    ];
    for (name, want_space, adobe) in cases {
        let path = data(name);
        let bytes = std::fs::read(&path).expect("committed test file");
        let (cmyk, space) = libjpeg_cmyk(&bytes);
        assert_eq!(space, want_space, "{name}");
        let image = load_rgb8(&path, DEFAULT_MAX_PIXELS).expect("decodes");
        assert_eq!((image.width, image.height), (48, 40), "{name}");
        assert_eq!(image.data, tf_rgb(&cmyk, adobe), "{name}");
        // The pixels vary (a flat or black image would prove little).
        assert!(image.data.iter().max() > image.data.iter().min().map(|m| m + 100).as_ref());
    }
}

#[test]
fn the_adobe_marker_decides_the_inversion() {
    // The two files differ only by the APP14 segment; TF reads them as opposite inks.
    let adobe = load_rgb8(&data("cmyk_adobe.jpg"), DEFAULT_MAX_PIXELS).expect("decodes");
    let plain = load_rgb8(&data("cmyk_plain.jpg"), DEFAULT_MAX_PIXELS).expect("decodes");
    assert_ne!(adobe.data, plain.data);
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

#[test]
fn a_fifo_is_refused_at_once_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("photo.jpg");
    mkfifo(&fifo);
    let err = load_rgb8(&fifo, DEFAULT_MAX_PIXELS).expect_err("a FIFO is not a photo");
    let message = err.to_string();
    assert!(matches!(err, PreprocessError::Read { .. }));
    assert!(
        message.starts_with(&format!("{}: ", fifo.display())),
        "{message}"
    );
    assert!(message.contains("FIFO"), "{message}");
}

#[test]
fn a_file_over_the_byte_cap_is_refused_before_reading() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("huge.png");
    // Sparse: no disk space, and refused from its length before any byte is read.
    let file = std::fs::File::create(&path).expect("created");
    file.set_len(MAX_PHOTO_BYTES + 1).expect("sized");
    let message = load_rgb8(&path, DEFAULT_MAX_PIXELS)
        .expect_err("over the cap")
        .to_string();
    assert!(
        message.starts_with(&format!("{}: ", path.display())),
        "{message}"
    );
    assert!(
        message.contains(&format!("{MAX_PHOTO_BYTES}-byte limit")),
        "{message}"
    );
    let folder = load_rgb8(dir.path(), DEFAULT_MAX_PIXELS).expect_err("a folder");
    assert!(folder.to_string().contains("a folder"), "{folder}");
}

/// A PNG of `width`x`height` from its signature and IHDR alone (correct CRC not needed: the
/// size is read before anything checks it).
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    bytes
}

/// A baseline JPEG header (SOI, SOF0 of `width`x`height` with 3 components), no pixels.
fn jpeg_header(width: u16, height: u16) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    bytes
}

#[test]
fn absurd_dimensions_are_refused_from_the_header() {
    let path = Path::new("absurd.img");
    let cases = [
        (png_header(u32::MAX, u32::MAX), "4294967295x4294967295"),
        (png_header(0x7FFF_FFFF, 2), "2147483647x2"),
        (jpeg_header(65_535, 65_535), "65535x65535"),
        (jpeg_header(20_000, 5_001), "20000x5001"),
    ];
    for (bytes, dims) in cases {
        let err = decode_rgb8(&bytes, path, DEFAULT_MAX_PIXELS).expect_err("too large");
        let message = err.to_string();
        assert!(matches!(err, PreprocessError::TooLarge { .. }), "{message}");
        assert!(
            message.contains(dims) && message.contains("refused before decoding"),
            "{message}"
        );
    }
}

#[test]
fn the_pixel_limit_holds_for_cmyk_jpegs() {
    let bytes = std::fs::read(data("cmyk_adobe.jpg")).expect("committed test file");
    let err = decode_rgb8(&bytes, Path::new("c.jpg"), 48 * 40 - 1).expect_err("over the limit");
    assert!(err.to_string().contains("48x40 = 1920 pixels"), "{err}");
    assert!(decode_rgb8(&bytes, Path::new("c.jpg"), 48 * 40).is_ok());
}

fn grey_png(width: u32, height: u32) -> Vec<u8> {
    let image: ImageBuffer<Luma<u8>, _> = ImageBuffer::new(width, height);
    let mut bytes = Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, ImageFormat::Png)
        .expect("encodes");
    bytes.into_inner()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any PNG or JPEG header size: over the limit is refused as too large, never decoded.
    #[test]
    fn header_sizes_over_the_limit_are_refused(w in 1u32..=u32::MAX, h in 1u32..=u32::MAX, png in any::<bool>()) {
        let limit = 1_000_000u64;
        let bytes = if png {
            png_header(w, h)
        } else {
            jpeg_header((w % 65_536).max(1) as u16, (h % 65_536).max(1) as u16)
        };
        let result = decode_rgb8(&bytes, Path::new("p"), limit);
        // A header-only file within the limit fails to decode; over it, it is too large.
        let (w, h) = if png { (w, h) } else { ((w % 65_536).max(1), (h % 65_536).max(1)) };
        let over = u64::from(w) * u64::from(h) > limit;
        prop_assert_eq!(matches!(result, Err(PreprocessError::TooLarge { .. })), over);
        prop_assert!(result.is_err());
    }

    /// Truncating a real PNG anywhere before its 12-byte IEND chunk gives an error naming
    /// the file, never a panic.
    #[test]
    fn truncated_pngs_are_errors(cut in 0usize..200) {
        let png = grey_png(20, 10);
        let cut = cut.min(png.len() - 13);
        let err = decode_rgb8(&png[..cut], Path::new("t.png"), DEFAULT_MAX_PIXELS);
        prop_assert!(err.is_err_and(|e| e.to_string().starts_with("t.png: ")));
    }
}
