//! Bounds-checked walkers over the containers of the accepted formats: JPEG segments, PNG
//! chunks, RIFF (WebP) chunks and ISO-BMFF (HEIF) boxes. Each stops at the first malformed
//! structure and never reads outside the input; each yields a bounded number of items.

use arbiter_core::ImageFormat;

/// The most items a walker yields: a file with more segments or chunks than this is hostile.
pub const MAX_ITEMS: usize = 100_000;

/// The JPEG segments before the first scan: (marker, payload without the length field).
/// Markers without a payload (RSTn, TEM) are skipped.
pub fn jpeg_segments(bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut at = 2usize;
    let mut done = !bytes.starts_with(&[0xFF, 0xD8]);
    let mut count = 0usize;
    std::iter::from_fn(move || {
        loop {
            if done || count >= MAX_ITEMS {
                return None;
            }
            // Fill bytes before a marker.
            while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
                at += 1;
            }
            if bytes.get(at) != Some(&0xFF) {
                done = true;
                return None;
            }
            let marker = *bytes.get(at + 1)?;
            at += 2;
            match marker {
                0x01 | 0xD0..=0xD7 => continue,
                0xD9 | 0xDA => {
                    done = true;
                    // The scan header itself is useful (component selectors); its data is not.
                    if marker == 0xDA {
                        let length = usize::from(u16::from_be_bytes(
                            bytes.get(at..at + 2)?.try_into().ok()?,
                        ));
                        let payload = bytes.get(at + 2..at.checked_add(length)?)?;
                        return Some((marker, payload));
                    }
                    return None;
                }
                _ => {}
            }
            let length = usize::from(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
            if length < 2 {
                done = true;
                return None;
            }
            let Some(payload) = bytes.get(at + 2..at + length) else {
                done = true;
                return None;
            };
            at += length;
            count += 1;
            return Some((marker, payload));
        }
    })
}

/// The PNG chunks: (type, data), up to and including `IEND`.
pub fn png_chunks(bytes: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut at = 8usize;
    let mut done = !bytes.starts_with(b"\x89PNG\r\n\x1a\n");
    let mut count = 0usize;
    std::iter::from_fn(move || {
        if done || count >= MAX_ITEMS {
            return None;
        }
        let length =
            usize::try_from(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?)).ok()?;
        let kind: [u8; 4] = bytes.get(at + 4..at + 8)?.try_into().ok()?;
        let Some(data) = bytes.get(at + 8..(at + 8).checked_add(length)?) else {
            done = true;
            return None;
        };
        at = at + 12 + length;
        count += 1;
        if &kind == b"IEND" {
            done = true;
        }
        Some((kind, data))
    })
}

/// The chunks of a RIFF file (WebP): (FourCC, data).
pub fn riff_chunks(bytes: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut at = 12usize;
    let mut count = 0usize;
    std::iter::from_fn(move || {
        if count >= MAX_ITEMS {
            return None;
        }
        let kind: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        let length = usize::try_from(u32::from_le_bytes(
            bytes.get(at + 4..at + 8)?.try_into().ok()?,
        ))
        .ok()?;
        let data = bytes.get(at + 8..(at + 8).checked_add(length)?)?;
        at = at + 8 + length + (length & 1);
        count += 1;
        Some((kind, data))
    })
}

/// The ISO-BMFF boxes at one level: (type, body). Stops at the first malformed box.
pub fn bmff_boxes(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    crate::sniff::boxes_iter(data).take(MAX_ITEMS)
}

/// Where the image of a JPEG or PNG file ends: just after the JPEG's end-of-image marker (the
/// segments and the entropy-coded data of every scan walked) or after the PNG's `IEND` chunk.
/// Bytes past it belong to no part of the image. `None` for other formats and for a file that
/// ends before its image does.
pub fn image_end(format: ImageFormat, bytes: &[u8]) -> Option<usize> {
    match format {
        ImageFormat::Jpeg => jpeg_end(bytes),
        ImageFormat::Png => png_end(bytes),
        _ => None,
    }
}

fn jpeg_end(bytes: &[u8]) -> Option<usize> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut at = 2usize;
    loop {
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        at += 2;
        match marker {
            0xD9 => return Some(at),
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let length = usize::from(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
        if length < 2 {
            return None;
        }
        at = at.checked_add(length)?;
        bytes.get(..at)?;
        if marker == 0xDA {
            // Entropy-coded data, up to the next marker that is neither a stuffed 0xFF (FF 00)
            // nor a restart marker.
            loop {
                let ff = at + bytes.get(at..)?.iter().position(|b| *b == 0xFF)?;
                match *bytes.get(ff + 1)? {
                    0x00 | 0xD0..=0xD7 => at = ff + 2,
                    0xFF => at = ff + 1,
                    _ => {
                        at = ff;
                        break;
                    }
                }
            }
        }
    }
}

fn png_end(bytes: &[u8]) -> Option<usize> {
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return None;
    }
    let mut at = 8usize;
    for _ in 0..MAX_ITEMS {
        let length =
            usize::try_from(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?)).ok()?;
        let kind = bytes.get(at + 4..at + 8)?;
        let end = at.checked_add(12)?.checked_add(length)?;
        bytes.get(..end)?;
        if kind == b"IEND" {
            return Some(end);
        }
        at = end;
    }
    None
}

/// The first position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (first, rest) = needle.split_first()?;
    let mut from = 0usize;
    while let Some(offset) = haystack.get(from..)?.iter().position(|b| b == first) {
        let at = from + offset;
        if haystack.get(at + 1..at + 1 + rest.len()) == Some(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_finds_the_first_occurrence_only_inside_the_input() {
        assert_eq!(find(b"abcabc", b"ca"), Some(2));
        assert_eq!(find(b"abcab", b"abc"), Some(0));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"", b"a"), None);
        assert_eq!(find(b"a", b""), None);
    }

    #[test]
    fn the_image_ends_at_its_end_marker_whatever_follows() {
        // SOI, a comment, a scan whose data holds a stuffed byte and a restart marker, EOI.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xFE, 0, 4, b'h', b'i'];
        jpeg.extend([
            0xFF, 0xDA, 0, 2, 1, 0xFF, 0x00, 2, 0xFF, 0xD0, 3, 0xFF, 0xD9,
        ]);
        let end = jpeg.len();
        assert_eq!(image_end(ImageFormat::Jpeg, &jpeg), Some(end));
        jpeg.extend(b"appended\xFF\xD9 later");
        assert_eq!(image_end(ImageFormat::Jpeg, &jpeg), Some(end));
        assert_eq!(image_end(ImageFormat::Jpeg, &jpeg[..end - 1]), None);

        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(0u32.to_be_bytes());
        png.extend(b"IEND\0\0\0\0");
        let end = png.len();
        png.extend(b"trailer");
        assert_eq!(image_end(ImageFormat::Png, &png), Some(end));
        assert_eq!(image_end(ImageFormat::Webp, &png), None);
    }

    #[test]
    fn walkers_stop_at_truncation() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(5u32.to_be_bytes());
        png.extend(b"tEXta\0b");
        assert_eq!(png_chunks(&png).count(), 0);
        png.extend(b"cd\0\0\0\0");
        assert_eq!(png_chunks(&png).count(), 1);
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x10, 1, 2];
        assert_eq!(jpeg_segments(&jpeg).count(), 0);
        assert_eq!(
            riff_chunks(b"RIFF\0\0\0\0WEBPVP8 \xff\xff\xff\xff").count(),
            0
        );
    }
}
