//! Decoding under limits: the pixels the pixel models read.
//!
//! A decompression bomb (a small file declaring huge dimensions) is refused from the dimensions
//! intake read, before the decoder allocates anything; the decoder itself runs under an
//! allocation limit as well, which covers the decoded buffer (16-bit samples included) and the
//! luminance and alpha planes made from it. HEIC is not decoded (no HEIF decoder is built in),
//! nor are tiled TIFF files with separate colour planes (the `tiff` decoder fails on them). A
//! panic inside a decoder is caught and reported as an undecodable image, without its message.

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
    /// Decoding would take more memory than the configured limit.
    #[error(
        "decoding the {width}x{height} image needs more than the {limit}-byte decode memory limit"
    )]
    TooMuchMemory {
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The limit in bytes.
        limit: u64,
    },
    /// A valid layout of the format that the built-in decoder cannot read.
    #[error("{format} pixels are not decoded: {layout} is not supported by the built-in decoder")]
    UnsupportedLayout {
        /// The format.
        format: ImageFormat,
        /// The layout, in plain language.
        layout: &'static str,
    },
    /// The decoder refused the data.
    #[error("the pixel data could not be decoded ({0})")]
    Corrupt(String),
    /// The decoder failed on the data in a way it does not report (a panic inside it).
    #[error("the pixel data could not be decoded (the {0} decoder failed on this file)")]
    DecoderFailed(ImageFormat),
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
    if info.format == ImageFormat::Tiff
        && let Some(layout) = unsupported_tiff_layout(&input.bytes)
    {
        return Err(DecodeError::UnsupportedLayout {
            format: ImageFormat::Tiff,
            layout,
        });
    }
    // The luminance and alpha planes made from the decoded image count against the limit too;
    // the decoder gets what is left.
    let too_much = DecodeError::TooMuchMemory {
        width: info.width,
        height: info.height,
        limit: config.max_decode_bytes,
    };
    let decoder_limit = config
        .max_decode_bytes
        .checked_sub(2 * pixels)
        .ok_or(too_much.clone())?;
    decode_caught(input, format, decoder_limit, too_much)
}

/// Decodes with the decoder allowed `decoder_limit` bytes. A panic inside a decoder is a fault of
/// the decoder on this file, reported as such; its message is internal and stays out of the
/// result.
fn decode_caught(
    input: &MediaInput,
    format: image::ImageFormat,
    decoder_limit: u64,
    too_much: DecodeError,
) -> Result<Pixels, DecodeError> {
    let info = &input.info;
    let caught = std::panic::catch_unwind(|| {
        if info.format == ImageFormat::Jpeg
            && let Some(pixels) = decode_jpeg_luma(&input.bytes, info.width, info.height)
        {
            return Ok(pixels);
        }
        let mut reader = image::ImageReader::with_format(Cursor::new(&input.bytes[..]), format);
        let mut limits = image::Limits::default();
        // The header intake read and the decoder's own must agree: a file whose frames are
        // larger than its first header says is refused here too.
        limits.max_image_width = Some(info.width.max(1));
        limits.max_image_height = Some(info.height.max(1));
        limits.max_alloc = Some(decoder_limit);
        reader.limits(limits);
        match reader.decode() {
            Ok(image) => Ok(from_image(image)),
            Err(image::ImageError::Limits(_)) => Err(too_much.clone()),
            Err(err) => Err(DecodeError::Corrupt(err.to_string())),
        }
    });
    caught.unwrap_or(Err(DecodeError::DecoderFailed(info.format)))
}

/// A TIFF layout the `tiff` decoder cannot read: tiles (`TileWidth`) with the colour planes
/// stored separately (`PlanarConfiguration` 2). A valid layout, refused before decoding.
fn unsupported_tiff_layout(bytes: &[u8]) -> Option<&'static str> {
    let tags = crate::sniff::tiff_first_ifd(bytes)?;
    let tag = |wanted| tags.iter().find(|(t, _)| *t == wanted).map(|(_, v)| *v);
    let samples = tag(277).unwrap_or(1);
    (tag(322).is_some() && tag(284) == Some(2) && samples > 1)
        .then_some("a tiled TIFF with separate colour planes (PlanarConfiguration 2)")
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

/// Luminance (and alpha) of a decoded image, read straight from its samples whatever their
/// depth: no converted copy of the image is made.
pub fn from_image(image: image::DynamicImage) -> Pixels {
    use image::DynamicImage as D;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let mut planes = Planes::new(width * height, image.color().has_alpha());
    match image {
        D::ImageLuma8(buffer) => planes.luma = buffer.into_raw(),
        D::ImageLumaA8(buffer) => planes.read(buffer.as_raw(), 2, |v| v),
        D::ImageRgb8(buffer) => planes.read(buffer.as_raw(), 3, |v| v),
        D::ImageRgba8(buffer) => planes.read(buffer.as_raw(), 4, |v| v),
        D::ImageLuma16(buffer) => planes.read(buffer.as_raw(), 1, from_u16),
        D::ImageLumaA16(buffer) => planes.read(buffer.as_raw(), 2, from_u16),
        D::ImageRgb16(buffer) => planes.read(buffer.as_raw(), 3, from_u16),
        D::ImageRgba16(buffer) => planes.read(buffer.as_raw(), 4, from_u16),
        D::ImageRgb32F(buffer) => planes.read(buffer.as_raw(), 3, from_f32),
        D::ImageRgba32F(buffer) => planes.read(buffer.as_raw(), 4, from_f32),
        other => planes.read(other.into_rgba8().as_raw(), 4, |v| v),
    }
    Pixels {
        width,
        height,
        luma: planes.luma,
        alpha: planes.alpha,
    }
}

/// The luminance and alpha planes being filled from interleaved samples.
struct Planes {
    luma: Vec<u8>,
    alpha: Option<Vec<u8>>,
}

impl Planes {
    fn new(pixels: usize, has_alpha: bool) -> Self {
        Self {
            luma: Vec::with_capacity(pixels),
            alpha: has_alpha.then(|| Vec::with_capacity(pixels)),
        }
    }

    /// Reads pixels of `channels` samples (grey, grey + alpha, RGB or RGBA), each made 8-bit by
    /// `to8`.
    fn read<T: Copy>(&mut self, samples: &[T], channels: usize, to8: impl Fn(T) -> u8) {
        for p in samples.chunks_exact(channels) {
            let y = if channels >= 3 {
                luma_of(to8(p[0]), to8(p[1]), to8(p[2]))
            } else {
                to8(p[0])
            };
            self.luma.push(y);
            if let Some(alpha) = self.alpha.as_mut()
                && channels.is_multiple_of(2)
            {
                alpha.push(to8(p[channels - 1]));
            }
        }
    }
}

/// A 16-bit sample as 8 bits, rounded as the `image` crate converts.
#[inline]
fn from_u16(v: u16) -> u8 {
    ((u32::from(v) * 255 + 32_767) / 65_535) as u8
}

/// A floating-point sample (nominally 0..1) as 8 bits.
#[inline]
fn from_f32(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

#[inline]
fn luma_of(r: u8, g: u8, b: u8) -> u8 {
    // BT.601 in fixed point: 0.299, 0.587, 0.114 scaled by 2^16.
    let y = 19_595 * u32::from(r) + 38_470 * u32::from(g) + 7_471 * u32::from(b);
    ((y + 32_768) >> 16) as u8
}

#[cfg(test)]
#[path = "../tests/common/images.rs"]
mod test_images;

#[cfg(test)]
mod tests {
    use super::test_images::Tiff;
    use super::*;
    use crate::intake::{IntakeLimits, intake};

    fn tiled_planar() -> MediaInput {
        let tiff = Tiff {
            planar: 2,
            tile: Some(16),
            ..Tiff::rgb(120, 104)
        };
        intake(tiff.write(), &IntakeLimits::default()).unwrap()
    }

    #[test]
    fn a_tiled_tiff_with_separate_planes_is_refused_before_decoding_naming_the_layout() {
        let err = decode(&tiled_planar(), &LocalDetectorConfig::default()).unwrap_err();
        assert!(
            matches!(err, DecodeError::UnsupportedLayout { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("tiled TIFF with separate colour planes")
        );
    }

    #[test]
    fn a_panic_inside_the_decoder_is_an_error_without_its_message() {
        // The same file past the layout check: the `tiff` decoder panics on it.
        let input = tiled_planar();
        let too_much = DecodeError::DecoderFailed(ImageFormat::Tiff);
        let err = decode_caught(&input, image::ImageFormat::Tiff, 1 << 30, too_much).unwrap_err();
        assert_eq!(err, DecodeError::DecoderFailed(ImageFormat::Tiff));
        assert_eq!(
            err.to_string(),
            "the pixel data could not be decoded (the TIFF decoder failed on this file)"
        );
    }

    #[test]
    fn the_other_tiff_layouts_decode_to_the_same_luminance() {
        let expected = from_image(image::load_from_memory(&Tiff::rgb(120, 104).write()).unwrap());
        for (planar, tile, big_endian) in [
            (1, Some(16), false),
            (2, None, false),
            (1, None, true),
            (2, None, true),
        ] {
            let tiff = Tiff {
                planar,
                tile,
                big_endian,
                ..Tiff::rgb(120, 104)
            };
            let input = intake(tiff.write(), &IntakeLimits::default()).unwrap();
            let pixels = decode(&input, &LocalDetectorConfig::default()).unwrap();
            assert_eq!(pixels.luma, expected.luma, "{tiff:?}");
        }
        assert_eq!(expected.at(10, 3), luma_of(45, 105, 165));
    }

    #[test]
    fn sixteen_bit_images_stay_within_the_decode_memory_limit() {
        let (width, height) = (400u32, 300u32);
        let tiff16 = Tiff {
            bits: 16,
            ..Tiff::rgb(width, height)
        };
        let rgb16: Vec<u16> = (0..height)
            .flat_map(|y| (0..width).flat_map(move |x| (0..3).map(move |c| (x, y, c))))
            .map(|(x, y, c)| tiff16.sample(x, y, c))
            .collect();
        let mut png16 = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut png16),
            &rgb16
                .iter()
                .flat_map(|v| v.to_be_bytes())
                .collect::<Vec<_>>(),
            width,
            height,
            image::ExtendedColorType::Rgb16,
        )
        .unwrap();
        let expected =
            from_image(image::load_from_memory(&Tiff::rgb(width, height).write()).unwrap());
        let pixels = u64::from(width * height);
        // What the decoder itself takes: 6 bytes a pixel for the decoded image; the TIFF decoder
        // also holds its own copy and the raw strip (here one strip of the whole image).
        for (bytes, decoder) in [(png16, 6 * pixels), (tiff16.write(), 18 * pixels)] {
            let input = intake(bytes, &IntakeLimits::default()).unwrap();
            // Then 1 byte a pixel of luminance and 1 of alpha (reserved whatever the image),
            // and the decoders' working buffers: the whole must fit the limit.
            let within = LocalDetectorConfig {
                max_decode_bytes: decoder + 2 * pixels + (256 << 10),
                ..LocalDetectorConfig::default()
            };
            let decoded = decode(&input, &within).unwrap();
            assert_eq!(decoded.luma, expected.luma, "{:?}", input.info.format);
            // Enough for the decoder alone, not for what is made from its output.
            let short = LocalDetectorConfig {
                max_decode_bytes: decoder + pixels / 2,
                ..LocalDetectorConfig::default()
            };
            let err = decode(&input, &short).unwrap_err();
            assert!(matches!(err, DecodeError::TooMuchMemory { .. }), "{err}");
            assert!(err.to_string().contains("decode memory limit"), "{err}");
        }
    }

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
