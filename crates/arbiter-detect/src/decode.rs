//! Decoding under limits: the pixels the pixel models read.
//!
//! A decompression bomb (a small file declaring huge dimensions) is refused from the dimensions
//! intake read, before the decoder allocates anything; the decoder itself runs under an
//! allocation limit as well, which covers the decoded buffer (16-bit samples included) and the
//! luminance and alpha planes made from it. HEIC is not decoded (no HEIF decoder is built in).
//! Tiled TIFF files with separate colour planes, on which the `image` crate's TIFF path fails, are
//! read tile by tile with the `tiff` crate. A panic inside a decoder is caught and reported as an
//! undecodable image, without its message.

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
    if info.format == ImageFormat::Tiff && is_tiled_planar_tiff(&input.bytes) {
        return caught(info.format, || {
            decode_tiled_planar_tiff(&input.bytes, decoder_limit, too_much)
        });
    }
    caught(info.format, || {
        decode_with_image(input, format, decoder_limit, too_much)
    })
}

/// Runs a decoder. A panic inside it is a fault of the decoder on this file, reported as such;
/// its message is internal and stays out of the result.
fn caught(
    format: ImageFormat,
    decode: impl FnOnce() -> Result<Pixels, DecodeError>,
) -> Result<Pixels, DecodeError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .unwrap_or(Err(DecodeError::DecoderFailed(format)))
}

/// Decodes with the `image` crate, its decoder allowed `decoder_limit` bytes.
fn decode_with_image(
    input: &MediaInput,
    format: image::ImageFormat,
    decoder_limit: u64,
    too_much: DecodeError,
) -> Result<Pixels, DecodeError> {
    let info = &input.info;
    {
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
            Err(image::ImageError::Limits(_)) => Err(too_much),
            Err(err) => Err(DecodeError::Corrupt(err.to_string())),
        }
    }
}

/// Tiles (`TileWidth`) with the colour planes stored separately (`PlanarConfiguration` 2): a
/// valid layout on which the `image` crate's TIFF path fails.
fn is_tiled_planar_tiff(bytes: &[u8]) -> bool {
    let Some(tags) = crate::sniff::tiff_first_ifd(bytes) else {
        return false;
    };
    let tag = |wanted| tags.iter().find(|(t, _)| *t == wanted).map(|(_, v)| *v);
    tag(322).is_some() && tag(284) == Some(2) && tag(277).unwrap_or(1) > 1
}

/// A tiled TIFF with separate colour planes (grey + alpha, RGB or RGBA), read one plane at a time:
/// each plane is presented to the `image` crate as a grey tiled TIFF of its own (the file's bytes
/// with a new first IFD appended: one sample a pixel, the plane's tiles only), whose layout it
/// decodes. The planes kept count against `decoder_limit`; each plane's decoder gets the rest.
fn decode_tiled_planar_tiff(
    bytes: &[u8],
    decoder_limit: u64,
    too_much: DecodeError,
) -> Result<Pixels, DecodeError> {
    let unsupported = |layout| DecodeError::UnsupportedLayout {
        format: ImageFormat::Tiff,
        layout,
    };
    let corrupt = || DecodeError::Corrupt("the TIFF tile tables are truncated".to_owned());
    let ifd = RawIfd::read(bytes).ok_or_else(corrupt)?;
    let channels = ifd.value(277).unwrap_or(1) as usize;
    // Grey + alpha (BlackIsZero) or RGB(A); other colour models are not read plane by plane.
    if !matches!((ifd.value(262), channels), (Some(1), 2) | (Some(2), 3 | 4)) {
        return Err(unsupported(
            "a tiled TIFF with separate planes in a colour model other than grey or RGB",
        ));
    }
    let offsets = ifd.values(bytes, 324).ok_or_else(corrupt)?;
    let counts = ifd.values(bytes, 325).ok_or_else(corrupt)?;
    if offsets.len() != counts.len() || offsets.len() % channels != 0 {
        return Err(corrupt());
    }
    let per_plane = offsets.len() / channels;
    let mut planes: Vec<Pixels> = Vec::with_capacity(channels);
    let mut kept = 0u64;
    for c in 0..channels {
        let range = c * per_plane..(c + 1) * per_plane;
        let plane = ifd.grey_plane(bytes, &offsets[range.clone()], &counts[range]);
        let limit = decoder_limit.checked_sub(kept).ok_or(too_much.clone())?;
        let mut reader =
            image::ImageReader::with_format(Cursor::new(&plane[..]), image::ImageFormat::Tiff);
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(limit);
        reader.limits(limits);
        let pixels = match reader.decode() {
            Ok(image) => from_image(image),
            Err(image::ImageError::Limits(_)) => return Err(too_much),
            Err(err) => return Err(DecodeError::Corrupt(err.to_string())),
        };
        kept += pixels.luma.len() as u64;
        if let Some(first) = planes.first()
            && (first.width, first.height) != (pixels.width, pixels.height)
        {
            return Err(corrupt());
        }
        planes.push(pixels);
    }
    let (width, height) = (planes[0].width, planes[0].height);
    let luma = if channels >= 3 {
        let (r, g, b) = (&planes[0].luma, &planes[1].luma, &planes[2].luma);
        (0..width * height)
            .map(|i| luma_of(r[i], g[i], b[i]))
            .collect()
    } else {
        std::mem::take(&mut planes[0].luma)
    };
    let alpha = channels
        .is_multiple_of(2)
        .then(|| std::mem::take(&mut planes[channels - 1].luma));
    Ok(Pixels {
        width,
        height,
        luma,
        alpha,
    })
}

/// The first IFD of a TIFF file, entry by entry: (tag, type, count, the 4-byte value field).
struct RawIfd {
    little: bool,
    entries: Vec<(u16, u16, u32, [u8; 4])>,
}

impl RawIfd {
    fn read(bytes: &[u8]) -> Option<Self> {
        let little = bytes.starts_with(b"II");
        let mut ifd = Self {
            little,
            entries: Vec::new(),
        };
        let at = ifd.u32(bytes, 4)? as usize;
        let count = usize::from(ifd.u16(bytes, at)?);
        for i in 0..count {
            let e = at + 2 + i * 12;
            let value: [u8; 4] = bytes.get(e + 8..e + 12)?.try_into().ok()?;
            ifd.entries.push((
                ifd.u16(bytes, e)?,
                ifd.u16(bytes, e + 2)?,
                ifd.u32(bytes, e + 4)?,
                value,
            ));
        }
        Some(ifd)
    }

    fn u16(&self, bytes: &[u8], at: usize) -> Option<u16> {
        let b: [u8; 2] = bytes.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    fn u32(&self, bytes: &[u8], at: usize) -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    /// The first value of a SHORT or LONG entry.
    fn value(&self, tag: u16) -> Option<u32> {
        let (_, kind, _, value) = self.entries.iter().find(|e| e.0 == tag)?;
        match kind {
            3 => self.u16(value, 0).map(u32::from),
            4 => self.u32(value, 0),
            _ => None,
        }
    }

    /// Every value of a SHORT or LONG entry, read inline or from where the entry points.
    fn values(&self, bytes: &[u8], tag: u16) -> Option<Vec<u32>> {
        let (_, kind, count, value) = *self.entries.iter().find(|e| e.0 == tag)?;
        let size = match kind {
            3 => 2,
            4 => 4,
            _ => return None,
        };
        let count = count as usize;
        let len = count.checked_mul(size)?;
        let data = if len <= 4 {
            value.get(..len)?
        } else {
            let at = self.u32(&value, 0)? as usize;
            bytes.get(at..at.checked_add(len)?)?
        };
        (0..count)
            .map(|i| match size {
                2 => self.u16(data, i * 2).map(u32::from),
                _ => self.u32(data, i * 4),
            })
            .collect()
    }

    /// The file's bytes with a new first IFD appended: this IFD as one grey sample a pixel,
    /// whose tiles are `offsets` and `counts`. Values the other entries point at stay where they
    /// are, in the original bytes.
    fn grey_plane(&self, bytes: &[u8], offsets: &[u32], counts: &[u32]) -> Vec<u8> {
        let (u16b, u32b) = (
            |v: u16, little: bool| {
                if little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                }
            },
            |v: u32, little: bool| {
                if little {
                    v.to_le_bytes()
                } else {
                    v.to_be_bytes()
                }
            },
        );
        let little = self.little;
        let short = |v: u16| {
            let mut field = [0u8; 4];
            field[..2].copy_from_slice(&u16b(v, little));
            field
        };
        // Per-sample values (one a channel, out of line): the first stands for the plane.
        let first = |tag, default| {
            self.values(bytes, tag)
                .and_then(|v| v.first().copied())
                .map_or(default, |v| v as u16)
        };
        let (bits, format) = (first(258, 8), first(339, 1));
        let mut out = bytes.to_vec();
        if out.len() % 2 == 1 {
            out.push(0);
        }
        let ifd_at = out.len();
        // ExtraSamples goes: one sample a pixel has none.
        let entries: Vec<_> = self.entries.iter().filter(|e| e.0 != 338).collect();
        let tables_at = ifd_at + 2 + entries.len() * 12 + 4;
        let mut tables = Vec::new();
        let table = |values: &[u32], tables: &mut Vec<u8>| -> (u32, [u8; 4]) {
            if values.len() == 1 {
                return (1, u32b(values[0], little));
            }
            let at = (tables_at + tables.len()) as u32;
            for v in values {
                tables.extend(u32b(*v, little));
            }
            (values.len() as u32, u32b(at, little))
        };
        out.extend(u16b(entries.len() as u16, little));
        for &&(tag, kind, count, value) in &entries {
            let (kind, count, value) = match tag {
                258 => (3, 1, short(bits)),
                262 => (3, 1, short(1)),
                277 | 284 => (3, 1, short(1)),
                339 => (3, 1, short(format)),
                324 => {
                    let (n, v) = table(offsets, &mut tables);
                    (4, n, v)
                }
                325 => {
                    let (n, v) = table(counts, &mut tables);
                    (4, n, v)
                }
                _ => (kind, count, value),
            };
            out.extend(u16b(tag, little));
            out.extend(u16b(kind, little));
            out.extend(u32b(count, little));
            out.extend(value);
        }
        out.extend([0; 4]);
        out.extend(tables);
        out[4..8].copy_from_slice(&u32b(ifd_at as u32, little));
        out
    }
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
    fn a_tiled_tiff_with_separate_planes_is_read_tile_by_tile_within_the_memory_limit() {
        let input = tiled_planar();
        let pixels = decode(&input, &LocalDetectorConfig::default()).unwrap();
        let expected = from_image(image::load_from_memory(&Tiff::rgb(120, 104).write()).unwrap());
        assert_eq!(pixels.luma, expected.luma);
        // Three 8-bit planes and the luminance and alpha reserve: 5 bytes a pixel, not less.
        let pixels = 120 * 104;
        let short = LocalDetectorConfig {
            max_decode_bytes: 5 * pixels - 1,
            ..LocalDetectorConfig::default()
        };
        let err = decode(&input, &short).unwrap_err();
        assert!(matches!(err, DecodeError::TooMuchMemory { .. }), "{err}");
    }

    #[test]
    fn a_panic_inside_the_decoder_is_an_error_without_its_message() {
        // The same file past the layout check: the `tiff` decoder panics on it.
        let input = tiled_planar();
        let too_much = DecodeError::DecoderFailed(ImageFormat::Tiff);
        let err = caught(ImageFormat::Tiff, || {
            decode_with_image(&input, image::ImageFormat::Tiff, 1 << 30, too_much)
        })
        .unwrap_err();
        assert_eq!(err, DecodeError::DecoderFailed(ImageFormat::Tiff));
        assert_eq!(
            err.to_string(),
            "the pixel data could not be decoded (the TIFF decoder failed on this file)"
        );
    }

    #[test]
    fn the_other_tiff_layouts_decode_to_the_same_luminance() {
        let expected = from_image(image::load_from_memory(&Tiff::rgb(120, 104).write()).unwrap());
        for (planar, tile, big_endian, bits) in [
            (1, Some(16), false, 8),
            (2, None, false, 8),
            (1, None, true, 8),
            (2, None, true, 8),
            (2, Some(16), false, 8),
            (2, Some(32), true, 8),
            (2, Some(48), false, 16),
            (2, Some(16), true, 16),
        ] {
            let tiff = Tiff {
                planar,
                tile,
                big_endian,
                bits,
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
