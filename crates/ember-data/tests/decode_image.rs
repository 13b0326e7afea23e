//! `decode_image`: the one way ember decodes untrusted image files (size limits, truncation).

use std::io::Cursor;
use std::path::Path;

use ember_data::{decode_image, Error, MAX_IMAGE_PIXELS};
use image::{ImageFormat, RgbImage};

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8]))
}

/// A PNG holding only a header (IHDR, 8-bit grey), an empty IDAT and IEND: enough to learn its size.
fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend(kind);
        out.extend(data);
        out.extend(crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &[]);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn decode_image_reads_every_format_the_loader_accepts() {
    let img = gradient(9, 7);
    for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Bmp, ImageFormat::WebP] {
        let decoded = decode_image(&encode(&img, format), Path::new("x")).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (9, 7), "{format:?}");
    }
}

#[test]
fn decode_image_rejects_truncated_files_naming_them() {
    let img = gradient(40, 30);
    for format in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Bmp, ImageFormat::WebP] {
        let bytes = encode(&img, format);
        // Cut inside the pixel data, or just before the end (a JPEG's end-of-image marker: the
        // case decoders fill with grey; a PNG's IEND chunk holds no pixels, so not for PNG).
        let cuts = if format == ImageFormat::Png {
            vec![bytes.len() * 2 / 3]
        } else {
            vec![bytes.len() * 2 / 3, bytes.len() - 2]
        };
        for keep in cuts {
            let err = decode_image(&bytes[..keep], Path::new("photos/cat.img"))
                .err()
                .unwrap_or_else(|| panic!("{format:?} cut to {keep} of {} bytes decoded", bytes.len()));
            assert!(matches!(err, Error::Decode { .. }), "{format:?}: {err}");
            assert!(err.to_string().starts_with("photos/cat.img: cannot decode image: "), "{err}");
        }
    }
}

#[test]
fn decode_image_refuses_huge_images_before_decoding_naming_file_and_size() {
    // 20000x1: the "621-byte PNG" of issue 18, over the per-side limit.
    let long = encode(&gradient(20_000, 1), ImageFormat::Png);
    let err = decode_image(&long, Path::new("long.png")).unwrap_err();
    assert!(matches!(err, Error::ImageTooLarge { width: 20_000, height: 1, .. }), "{err}");
    assert!(err.to_string().starts_with("long.png: image is 20000x1 pixels, over the limit"), "{err}");
    // 9000x9000 is under the per-side limit but over the pixel limit; refused from the header alone.
    const { assert!(9000u64 * 9000 > MAX_IMAGE_PIXELS) };
    let err = decode_image(&png_header_only(9000, 9000), Path::new("big.png")).unwrap_err();
    assert!(matches!(err, Error::ImageTooLarge { width: 9000, height: 9000, .. }), "{err}");
    assert!(err.to_string().contains("big.png: image is 9000x9000 pixels"), "{err}");
}

#[test]
fn decode_image_names_the_file_for_unknown_formats() {
    let err = decode_image(b"definitely not an image", Path::new("notes.png")).unwrap_err();
    assert!(matches!(err, Error::Decode { .. }) && err.to_string().starts_with("notes.png: "), "{err}");
}
