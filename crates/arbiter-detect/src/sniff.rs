//! Format sniffing from magic bytes and dimensions from headers, without decoding pixels.
//!
//! Every read is bounds-checked: a truncated or corrupt header is an error, never a panic.

use arbiter_core::ImageFormat;

/// Why the header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SniffError {
    /// The bytes are not one of the accepted formats.
    #[error("not a JPEG, PNG, WebP, HEIC, BMP or TIFF image{0}")]
    Unsupported(String),
    /// The format was recognised but its header is truncated or corrupt.
    #[error("corrupt {format} header: {reason}")]
    Corrupt {
        /// The recognised format.
        format: ImageFormat,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The format of `bytes`, from their magic bytes.
pub fn sniff_format(bytes: &[u8]) -> Result<ImageFormat, SniffError> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Ok(ImageFormat::Jpeg)
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Ok(ImageFormat::Png)
    } else if starts(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        Ok(ImageFormat::Webp)
    } else if starts(b"BM") && bytes.len() >= 26 {
        Ok(ImageFormat::Bmp)
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Ok(ImageFormat::Tiff)
    } else if bytes.get(4..8) == Some(b"ftyp") && is_heif_brand(bytes) {
        Ok(ImageFormat::Heic)
    } else {
        let hint = match bytes.get(4..8) {
            Some(b"ftyp") => " (an ISO media file that is not HEIF)",
            _ if starts(b"GIF8") => " (GIF is not accepted)",
            _ if bytes.is_empty() => " (the file is empty)",
            _ => "",
        };
        Err(SniffError::Unsupported(hint.to_owned()))
    }
}

fn is_heif_brand(bytes: &[u8]) -> bool {
    const BRANDS: [&[u8; 4]; 8] = [
        b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
    ];
    let size = be_u32(bytes, 0).map_or(0, |s| s as usize).min(bytes.len());
    // The major brand, then the compatible brands after the minor version.
    let major = bytes.get(8..12);
    let compatible = bytes.get(16..size.max(16)).unwrap_or(&[]);
    major.is_some_and(|b| BRANDS.iter().any(|brand| b == *brand))
        || compatible
            .chunks_exact(4)
            .any(|b| BRANDS.iter().any(|brand| b == *brand))
}

/// Width and height of an image of a known format, read from its header.
pub fn dimensions(format: ImageFormat, bytes: &[u8]) -> Result<(u32, u32), SniffError> {
    let corrupt = |reason| SniffError::Corrupt { format, reason };
    let dims =
        match format {
            ImageFormat::Png => png_dimensions(bytes).ok_or_else(|| corrupt("no IHDR chunk"))?,
            ImageFormat::Jpeg => jpeg_dimensions(bytes)
                .ok_or_else(|| corrupt("no frame header before the data ends"))?,
            ImageFormat::Webp => {
                webp_dimensions(bytes).ok_or_else(|| corrupt("no VP8 frame header"))?
            }
            ImageFormat::Bmp => bmp_dimensions(bytes).ok_or_else(|| corrupt("bad info header"))?,
            ImageFormat::Tiff => {
                tiff_dimensions(bytes).ok_or_else(|| corrupt("no image width and length tags"))?
            }
            ImageFormat::Heic => heif_dimensions(bytes)
                .ok_or_else(|| corrupt("no image spatial extents ('ispe')"))?,
        };
    match dims {
        (0, _) | (_, 0) => Err(corrupt("zero width or height")),
        dims => Ok(dims),
    }
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Dimensions from IHDR, once the chunks up to the first complete IDAT are all present.
fn png_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    (b.get(12..16)? == b"IHDR").then_some(())?;
    let dims = (be_u32(b, 16)?, be_u32(b, 20)?);
    let mut at = 8usize;
    loop {
        let length = be_u32(b, at)? as usize;
        let kind = b.get(at + 4..at + 8)?;
        // The chunk, its CRC included, must be in the file.
        b.get(at + 8..at.checked_add(12)?.checked_add(length)?)?;
        if kind == b"IDAT" {
            return Some(dims);
        }
        at += 12 + length;
    }
}

/// Dimensions from the frame header, once the segments up to the start of the scan are all
/// present.
fn jpeg_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    let mut dims = None;
    loop {
        // Skip fill bytes before a marker.
        while *b.get(at)? == 0xFF && *b.get(at + 1)? == 0xFF {
            at += 1;
        }
        if *b.get(at)? != 0xFF {
            return None;
        }
        let marker = *b.get(at + 1)?;
        at += 2;
        match marker {
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 => return None,
            _ => {}
        }
        let length = usize::from(be_u16(b, at)?);
        // The whole segment must be in the file.
        if length < 2 || b.len() < at + length {
            return None;
        }
        if marker == 0xDA {
            // Start of scan: entropy-coded data follows, after a frame header.
            return dims;
        }
        let is_frame = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_frame {
            let height = be_u16(b, at + 3)?;
            let width = be_u16(b, at + 5)?;
            dims = Some((u32::from(width), u32::from(height)));
        }
        at += length;
    }
}

fn webp_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    match b.get(12..16)? {
        b"VP8 " => {
            // Frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height.
            (b.get(23..26)? == [0x9d, 0x01, 0x2a]).then_some(())?;
            let w = u32::from(le_u16(b, 26)? & 0x3FFF);
            let h = u32::from(le_u16(b, 28)? & 0x3FFF);
            Some((w, h))
        }
        b"VP8L" => {
            (*b.get(20)? == 0x2f).then_some(())?;
            let bits = le_u32(b, 21)?;
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => {
            let w = u32::from_le_bytes([*b.get(24)?, *b.get(25)?, *b.get(26)?, 0]) + 1;
            let h = u32::from_le_bytes([*b.get(27)?, *b.get(28)?, *b.get(29)?, 0]) + 1;
            Some((w, h))
        }
        _ => None,
    }
}

fn bmp_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let header_size = le_u32(b, 14)?;
    if header_size == 12 {
        return Some((u32::from(le_u16(b, 18)?), u32::from(le_u16(b, 20)?)));
    }
    let w = i32::from_le_bytes(b.get(18..22)?.try_into().ok()?);
    let h = i32::from_le_bytes(b.get(22..26)?.try_into().ok()?);
    // A negative height means a top-down bitmap.
    (w > 0).then(|| (w.unsigned_abs(), h.unsigned_abs()))
}

fn tiff_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let tags = tiff_first_ifd(b)?;
    let tag = |wanted| tags.iter().find(|(t, _)| *t == wanted).map(|(_, v)| *v);
    Some((tag(256)?, tag(257)?))
}

/// The SHORT and LONG values of the first IFD of a TIFF file, (tag, first value) each; `None`
/// when the header or the IFD is truncated.
pub(crate) fn tiff_first_ifd(b: &[u8]) -> Option<Vec<(u16, u32)>> {
    let little = b.starts_with(b"II");
    let u16_at = |at| if little { le_u16(b, at) } else { be_u16(b, at) };
    let u32_at = |at| if little { le_u32(b, at) } else { be_u32(b, at) };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd)?);
    let mut tags = Vec::new();
    for i in 0..count {
        let entry = ifd + 2 + i * 12;
        let tag = u16_at(entry)?;
        let kind = u16_at(entry + 2)?;
        let value = match kind {
            3 => u32::from(u16_at(entry + 8)?),
            4 => u32_at(entry + 8)?,
            _ => continue,
        };
        tags.push((tag, value));
    }
    Some(tags)
}

/// HEIF: the largest `ispe` property in `meta/iprp/ipco` (the primary image or its grid; tiles
/// and thumbnails are smaller).
fn heif_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let meta = find_box(b, b"meta")?;
    // `meta` is a full box: 4 bytes of version and flags before its children.
    let iprp = find_box(meta.get(4..)?, b"iprp")?;
    let ipco = find_box(iprp, b"ipco")?;
    boxes_iter(ipco)
        .filter(|(kind, _)| kind == b"ispe")
        .filter_map(|(_, body)| Some((be_u32(body, 4)?, be_u32(body, 8)?)))
        .max_by_key(|(w, h)| u64::from(*w) * u64::from(*h))
}

fn find_box<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes_iter(data)
        .find(|(k, _)| k == kind)
        .map(|(_, body)| body)
}

/// The ISO-BMFF boxes at one level: (type, body). Stops at the first malformed box.
pub(crate) fn boxes_iter(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let size = be_u32(data, at)? as usize;
        let kind: [u8; 4] = data.get(at + 4..at + 8)?.try_into().ok()?;
        let (header, size) = match size {
            0 => (8, data.len().checked_sub(at)?),
            1 => (
                16,
                usize::try_from(u64::from_be_bytes(
                    data.get(at + 8..at + 16)?.try_into().ok()?,
                ))
                .ok()?,
            ),
            size => (8, size),
        };
        let body = data.get(at + header..at.checked_add(size)?)?;
        at += size;
        Some((kind, body))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
        b.extend(b"\0\0\0\0IDAT\0\0\0\0");
        b
    }

    #[test]
    fn sniffs_each_accepted_format() {
        assert_eq!(sniff_format(&png_header(1, 1)), Ok(ImageFormat::Png));
        assert_eq!(
            sniff_format(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Ok(ImageFormat::Jpeg)
        );
        assert_eq!(sniff_format(b"RIFF\0\0\0\0WEBPVP8 "), Ok(ImageFormat::Webp));
        assert_eq!(sniff_format(b"II*\0\x08\0\0\0"), Ok(ImageFormat::Tiff));
        assert_eq!(sniff_format(b"MM\0*\0\0\0\x08"), Ok(ImageFormat::Tiff));
        assert_eq!(
            sniff_format(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"),
            Ok(ImageFormat::Heic)
        );
        let mut bmp = b"BM".to_vec();
        bmp.resize(54, 0);
        assert_eq!(sniff_format(&bmp), Ok(ImageFormat::Bmp));
    }

    #[test]
    fn rejects_other_formats_with_a_hint() {
        let err = sniff_format(b"GIF89a....").unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a JPEG, PNG, WebP, HEIC, BMP or TIFF image (GIF is not accepted)"
        );
        assert!(sniff_format(b"").unwrap_err().to_string().contains("empty"));
        assert!(sniff_format(b"\0\0\0\x18ftypisom\0\0\0\0isomavc1").is_err());
        assert!(sniff_format(b"hello, world").is_err());
    }

    #[test]
    fn reads_png_dimensions_and_refuses_truncated_headers() {
        assert_eq!(
            dimensions(ImageFormat::Png, &png_header(640, 480)),
            Ok((640, 480))
        );
        let truncated = &png_header(640, 480)[..20];
        assert!(matches!(
            dimensions(ImageFormat::Png, truncated),
            Err(SniffError::Corrupt { .. })
        ));
        assert!(dimensions(ImageFormat::Png, &png_header(0, 480)).is_err());
    }

    #[test]
    fn every_prefix_of_a_header_is_an_error_or_a_size_never_a_panic() {
        // SOI, APP0, SOF0 (640x480, 3 components), SOS.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00];
        jpeg.extend([0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80, 0x03]);
        jpeg.extend([1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        jpeg.extend([
            0xFF, 0xDA, 0x00, 0x0C, 0x03, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0,
        ]);
        assert_eq!(dimensions(ImageFormat::Jpeg, &jpeg), Ok((640, 480)));
        for format in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Webp,
            ImageFormat::Bmp,
            ImageFormat::Tiff,
            ImageFormat::Heic,
        ] {
            for end in 0..jpeg.len() {
                let _ = dimensions(format, &jpeg[..end]);
            }
            let _ = dimensions(format, &[0xFF; 64]);
            let _ = dimensions(format, &[0x00; 64]);
        }
    }
}
