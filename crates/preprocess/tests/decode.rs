//! Decoding edge cases: 16-bit, grey, alpha, and the refusals, each naming the file.

use image::{ImageBuffer, ImageFormat, Luma, LumaA, Rgba};
use preprocess::{decode_rgb8, PreprocessError, DEFAULT_MAX_PIXELS};
use std::io::Cursor;
use std::path::Path;

fn encode<P: image::PixelWithColorType>(
    image: &ImageBuffer<P, Vec<P::Subpixel>>,
    format: ImageFormat,
) -> Vec<u8>
where
    [P::Subpixel]: image::EncodableLayout,
{
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

#[test]
fn sixteen_bit_grey_png_keeps_high_bytes_replicated() {
    let image: ImageBuffer<Luma<u16>, _> =
        ImageBuffer::from_raw(3, 1, vec![0x01FFu16, 0xFF7F, 0xABCD]).unwrap();
    let rgb = decode_rgb8(
        &encode(&image, ImageFormat::Png),
        Path::new("g16.png"),
        DEFAULT_MAX_PIXELS,
    )
    .unwrap();
    assert_eq!(rgb.data, vec![1, 1, 1, 255, 255, 255, 0xAB, 0xAB, 0xAB]);
}

#[test]
fn rgba_and_grey_alpha_pngs_drop_alpha_without_compositing() {
    let rgba: ImageBuffer<Rgba<u8>, _> = ImageBuffer::from_raw(1, 1, vec![10, 20, 30, 0]).unwrap();
    let rgb = decode_rgb8(
        &encode(&rgba, ImageFormat::Png),
        Path::new("a.png"),
        DEFAULT_MAX_PIXELS,
    )
    .unwrap();
    assert_eq!(rgb.data, vec![10, 20, 30]);
    let la: ImageBuffer<LumaA<u8>, _> = ImageBuffer::from_raw(1, 1, vec![77, 0]).unwrap();
    let rgb = decode_rgb8(
        &encode(&la, ImageFormat::Png),
        Path::new("la.png"),
        DEFAULT_MAX_PIXELS,
    )
    .unwrap();
    assert_eq!(rgb.data, vec![77, 77, 77]);
}

#[test]
fn grey_jpeg_is_replicated() {
    let grey: ImageBuffer<Luma<u8>, _> =
        ImageBuffer::from_fn(16, 16, |x, y| Luma([(x * 8 + y) as u8]));
    let rgb = decode_rgb8(
        &encode(&grey, ImageFormat::Jpeg),
        Path::new("g.jpg"),
        DEFAULT_MAX_PIXELS,
    )
    .unwrap();
    assert_eq!(
        (rgb.width, rgb.height, rgb.data.len()),
        (16, 16, 16 * 16 * 3)
    );
    assert!(rgb.data.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
}

#[test]
fn refusals_name_the_file() {
    let path = Path::new("dir/photo.png");
    let grey: ImageBuffer<Luma<u8>, _> = ImageBuffer::new(100, 100);
    let png = encode(&grey, ImageFormat::Png);
    let cases: [(&[u8], u64, &str); 4] = [
        (b"", DEFAULT_MAX_PIXELS, "empty file"),
        (
            b"GIF89a not supported",
            DEFAULT_MAX_PIXELS,
            "not a JPEG or PNG",
        ),
        (
            &png,
            9_999,
            "100x100 = 10000 pixels, over the limit of 9999",
        ),
        (&png[..png.len() - 20], DEFAULT_MAX_PIXELS, "cannot decode"),
    ];
    for (bytes, limit, want) in cases {
        let err: PreprocessError = decode_rgb8(bytes, path, limit).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("dir/photo.png: ") && message.contains(want),
            "{message}"
        );
    }
}
