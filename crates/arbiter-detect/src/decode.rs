//! Decoding under limits: the pixels the pixel models read.
//!
//! A decompression bomb (a small file declaring huge dimensions) is refused from the dimensions
//! intake read, before the decoder allocates anything; the decoder itself runs under an
//! allocation limit as well. HEIC is not decoded (no HEIF decoder is built in).

use crate::config::LocalDetectorConfig;
use arbiter_core::{ImageFormat, MediaInput};
use std::io::Cursor;

/// The decoded image as the pixel models see it: luminance (BT.601, 0..255) at native
/// resolution, and the alpha channel when the image has one.
#[derive(Debug, Clone)]
pub struct Pixels {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Luminance, row-major, `width * height` values.
    pub luma: Vec<u8>,
    /// Alpha, row-major, when the image has an alpha channel.
    pub alpha: Option<Vec<u8>>,
}

impl Pixels {
    /// The luminance at (x, y); callers keep x and y in range.
    #[inline]
    pub fn at(&self, x: usize, y: usize) -> u8 {
        self.luma.get(y * self.width + x).copied().unwrap_or(0)
    }
}

/// Why the pixels were not decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The image is larger than the configured decode limit.
    #[error(
        "the image is {width}x{height} ({megapixels} MP), more than the {limit} MP decode limit"
    )]
    TooManyPixels {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// Its size in megapixels.
        megapixels: u64,
        /// The limit in megapixels.
        limit: u64,
    },
    /// No decoder for this format is built in.
    #[error("{0} pixels are not decoded: no {0} decoder is built into the local detector")]
    NoDecoder(ImageFormat),
    /// The decoder refused the data.
    #[error("the pixel data could not be decoded ({0})")]
    Corrupt(String),
}

/// Decodes `input` within the limits of `config`.
pub fn decode(input: &MediaInput, config: &LocalDetectorConfig) -> Result<Pixels, DecodeError> {
    let info = &input.info;
    let pixels = u64::from(info.width) * u64::from(info.height);
    if pixels > config.max_decode_pixels {
        return Err(DecodeError::TooManyPixels {
            width: info.width,
            height: info.height,
            megapixels: pixels / 1_000_000,
            limit: config.max_decode_pixels / 1_000_000,
        });
    }
    let format = match info.format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Webp => image::ImageFormat::WebP,
        ImageFormat::Bmp => image::ImageFormat::Bmp,
        ImageFormat::Tiff => image::ImageFormat::Tiff,
        ImageFormat::Heic => return Err(DecodeError::NoDecoder(ImageFormat::Heic)),
    };
    if info.format == ImageFormat::Jpeg
        && let Some(pixels) = decode_jpeg_luma(&input.bytes, info.width, info.height)
    {
        return Ok(pixels);
    }
    let mut reader = image::ImageReader::with_format(Cursor::new(&input.bytes[..]), format);
    let mut limits = image::Limits::default();
    // The header intake read and the decoder's own must agree: a file whose frames are larger
    // than its first header says is refused here too.
    limits.max_image_width = Some(info.width.max(1));
    limits.max_image_height = Some(info.height.max(1));
    limits.max_alloc = Some(config.max_decode_bytes);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|err| DecodeError::Corrupt(err.to_string()))?;
    Ok(from_image(image))
}

/// A JPEG's luminance straight from its Y component (JFIF's Y is BT.601 luma): the chroma is
/// never converted to RGB, which saves time and two thirds of the output buffer. `None` when this
/// path cannot decode the file (the general decoder then tries, and reports any error).
fn decode_jpeg_luma(bytes: &[u8], width: u32, height: u32) -> Option<Pixels> {
    use zune_jpeg::zune_core::{
        bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions,
    };
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::Luma)
        .set_max_width(width as usize)
        .set_max_height(height as usize);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().ok()?;
    let (w, h) = decoder.dimensions()?;
    if decoder.output_colorspace()? != ColorSpace::Luma {
        return None;
    }
    let luma = decoder.decode().ok()?;
    (luma.len() == w.checked_mul(h)?).then_some(Pixels {
        width: w,
        height: h,
        luma,
        alpha: None,
    })
}

/// Luminance (and alpha) of a decoded image; the colour buffer is dropped row by row.
pub fn from_image(image: image::DynamicImage) -> Pixels {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let has_alpha = image.color().has_alpha();
    let mut luma = Vec::with_capacity(width * height);
    let mut alpha = has_alpha.then(|| Vec::with_capacity(width * height));
    match image {
        image::DynamicImage::ImageLuma8(buffer) => luma = buffer.into_raw(),
        image::DynamicImage::ImageRgb8(buffer) => {
            luma.extend(
                buffer
                    .as_raw()
                    .chunks_exact(3)
                    .map(|p| luma_of(p[0], p[1], p[2])),
            );
        }
        image::DynamicImage::ImageRgba8(buffer) => {
            for p in buffer.as_raw().chunks_exact(4) {
                luma.push(luma_of(p[0], p[1], p[2]));
                if let Some(alpha) = alpha.as_mut() {
                    alpha.push(p[3]);
                }
            }
        }
        other => {
            let rgba = other.into_rgba8();
            for p in rgba.as_raw().chunks_exact(4) {
                luma.push(luma_of(p[0], p[1], p[2]));
                if let Some(alpha) = alpha.as_mut() {
                    alpha.push(p[3]);
                }
            }
        }
    }
    Pixels {
        width,
        height,
        luma,
        alpha,
    }
}

#[inline]
fn luma_of(r: u8, g: u8, b: u8) -> u8 {
    // BT.601 in fixed point: 0.299, 0.587, 0.114 scaled by 2^16.
    let y = 19_595 * u32::from(r) + 38_470 * u32::from(g) + 7_471 * u32::from(b);
    ((y + 32_768) >> 16) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::{IntakeLimits, intake};

    #[test]
    fn a_bomb_is_refused_before_decoding() {
        // A PNG header declaring 60000x60000 (3.6 gigapixels) in a few dozen bytes.
        let input = intake(
            crate::intake::tests::png(60_000, 60_000),
            &IntakeLimits::default(),
        )
        .unwrap();
        let err = decode(&input, &LocalDetectorConfig::default()).unwrap_err();
        assert!(matches!(err, DecodeError::TooManyPixels { .. }), "{err}");
        assert!(err.to_string().contains("3600 MP"), "{err}");
    }

    #[test]
    fn an_undecodable_body_is_an_error_not_a_panic() {
        let input = intake(
            crate::intake::tests::png(640, 480),
            &IntakeLimits::default(),
        )
        .unwrap();
        let err = decode(&input, &LocalDetectorConfig::default()).unwrap_err();
        assert!(matches!(err, DecodeError::Corrupt(_)), "{err}");
    }

    #[test]
    fn luma_follows_bt601() {
        assert_eq!(luma_of(255, 255, 255), 255);
        assert_eq!(luma_of(0, 0, 0), 0);
        assert_eq!(luma_of(255, 0, 0), 76);
    }
}
