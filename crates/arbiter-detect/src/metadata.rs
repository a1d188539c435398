//! The metadata model: what a file says about itself.
//!
//! Reads EXIF (camera make, model, software, capture time, GPS), XMP `DigitalSourceType`, and the
//! text chunks that image generators write into PNG files. Only a declaration of generative AI
//! sets a finding; camera EXIF is reported as consistent with a camera, never as proof.

use crate::sniff::boxes_iter;
use arbiter_core::{ImageFormat, MetadataFacts};

/// What a file declares about how it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declaration {
    /// Made by a generative model.
    AiGenerated,
    /// A real image edited with a generative model.
    AiEdited,
}

/// The metadata model's reading of one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataReport {
    /// Facts for policies.
    pub facts: MetadataFacts,
    /// A declaration of generative AI, if the file makes one.
    pub declaration: Option<Declaration>,
    /// Where the declaration (or the absence of one) was read, in plain language.
    pub evidence: Vec<String>,
}

/// PNG text keys that image generators write, and the generator each one names.
const GENERATOR_KEYS: [(&str, &str); 8] = [
    (
        "parameters",
        "Stable Diffusion web UI (AUTOMATIC1111 / Fooocus) generation parameters",
    ),
    ("prompt", "ComfyUI prompt graph"),
    ("workflow", "ComfyUI workflow graph"),
    ("invokeai_metadata", "InvokeAI generation metadata"),
    ("sd-metadata", "InvokeAI generation metadata"),
    ("Dream", "InvokeAI dream command"),
    ("fooocus_scheme", "Fooocus generation metadata"),
    ("Software=NovelAI", "NovelAI generator signature"),
];

const XMP_AI_CREATED: &str = "trainedAlgorithmicMedia";
const XMP_AI_COMPOSITE: [&str; 2] = ["compositeWithTrainedAlgorithmicMedia", "compositeSynthetic"];

/// Reads the metadata of an image of a known format.
pub fn read_metadata(format: ImageFormat, bytes: &[u8]) -> MetadataReport {
    let mut report = MetadataReport::default();
    match format {
        ImageFormat::Png => read_png(bytes, &mut report),
        ImageFormat::Jpeg => read_jpeg(bytes, &mut report),
        ImageFormat::Tiff => read_exif(bytes, &mut report),
        ImageFormat::Webp | ImageFormat::Heic | ImageFormat::Bmp => {
            read_containers(format, bytes, &mut report)
        }
    }
    report
}

impl MetadataReport {
    fn declare(&mut self, declaration: Declaration, evidence: String) {
        // An AI creation outranks an AI edit.
        if self.declaration != Some(Declaration::AiGenerated) {
            self.declaration = Some(declaration);
        }
        self.facts.ai_declared = true;
        self.evidence.push(evidence);
    }

    fn read_xmp(&mut self, xmp: &str, place: &str) {
        if xmp.contains(XMP_AI_CREATED) && !XMP_AI_COMPOSITE.iter().any(|c| xmp.contains(c)) {
            self.declare(
                Declaration::AiGenerated,
                format!("XMP in {place} declares DigitalSourceType trainedAlgorithmicMedia"),
            );
        } else if let Some(kind) = XMP_AI_COMPOSITE.iter().find(|c| xmp.contains(*c)) {
            self.declare(
                Declaration::AiEdited,
                format!("XMP in {place} declares DigitalSourceType {kind}"),
            );
        }
    }
}

fn read_png(bytes: &[u8], report: &mut MetadataReport) {
    let mut at = 8usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let kind = &header[4..8];
        let Some(data) = bytes.get(at + 8..(at + 8).saturating_add(length)) else {
            break;
        };
        match kind {
            b"tEXt" | b"iTXt" => {
                if let Some((key, text)) = png_text(kind, data) {
                    read_png_text(key, text, report);
                }
            }
            b"eXIf" => read_exif(data, report),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + length;
    }
}

/// The keyword and (uncompressed) text of a tEXt or iTXt chunk.
fn png_text<'a>(kind: &[u8], data: &'a [u8]) -> Option<(&'a str, String)> {
    let nul = data.iter().position(|b| *b == 0)?;
    let key = std::str::from_utf8(&data[..nul]).ok()?;
    let rest = data.get(nul + 1..)?;
    let text = if kind == b"tEXt" {
        // Latin-1: every byte is one code point.
        rest.iter().map(|b| char::from(*b)).collect()
    } else {
        // iTXt: compression flag, method, language\0, translated keyword\0, text.
        let (flag, rest) = rest.split_first()?;
        if *flag != 0 {
            return None;
        }
        let rest = rest.get(1..)?;
        let lang_end = rest.iter().position(|b| *b == 0)?;
        let rest = rest.get(lang_end + 1..)?;
        let translated_end = rest.iter().position(|b| *b == 0)?;
        String::from_utf8_lossy(rest.get(translated_end + 1..)?).into_owned()
    };
    Some((key, text))
}

fn read_png_text(key: &str, text: String, report: &mut MetadataReport) {
    if key == "XML:com.adobe.xmp" {
        report.read_xmp(&text, "a PNG iTXt chunk");
        return;
    }
    if key == "Software" {
        report.facts.software = Some(text.chars().take(120).collect());
    }
    let generator = GENERATOR_KEYS
        .iter()
        .find(|(k, _)| match k.split_once('=') {
            Some((k, v)) => k == key && text.trim() == v,
            None => *k == key,
        });
    if let Some((_, generator)) = generator {
        report.declare(
            Declaration::AiGenerated,
            format!("PNG text chunk `{key}` carries {generator}"),
        );
    }
}

fn read_jpeg(bytes: &[u8], report: &mut MetadataReport) {
    let mut at = 2usize;
    while let (Some(0xFF), Some(marker)) = (bytes.get(at), bytes.get(at + 1).copied()) {
        if marker == 0xDA || marker == 0xD9 {
            break;
        }
        let Some(length) = bytes
            .get(at + 2..at + 4)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            break;
        };
        let Some(segment) = bytes.get(at + 4..(at + 2).saturating_add(length)) else {
            break;
        };
        if marker == 0xE1 {
            if let Some(tiff) = segment.strip_prefix(b"Exif\0\0") {
                read_exif(tiff, report);
            } else if let Some(xmp) = segment.strip_prefix(b"http://ns.adobe.com/xap/1.0/\0") {
                report.read_xmp(&String::from_utf8_lossy(xmp), "the JPEG APP1 segment");
            }
        }
        at += 2 + length.max(2);
    }
}

/// WebP (RIFF chunks `EXIF`, `XMP `) and HEIF (`Exif` / `mime` items are not indexed yet: the
/// whole file is searched for an XMP packet).
fn read_containers(format: ImageFormat, bytes: &[u8], report: &mut MetadataReport) {
    if format == ImageFormat::Webp {
        let mut at = 12usize;
        while let Some(header) = bytes.get(at..at + 8) {
            let length = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let Some(data) = bytes.get(at + 8..(at + 8).saturating_add(length)) else {
                break;
            };
            match &header[..4] {
                b"EXIF" => read_exif(data.strip_prefix(b"Exif\0\0").unwrap_or(data), report),
                b"XMP " => report.read_xmp(&String::from_utf8_lossy(data), "the WebP XMP chunk"),
                _ => {}
            }
            at += 8 + length + (length & 1);
        }
    } else if format == ImageFormat::Heic {
        let exif = boxes_iter(bytes)
            .find(|(kind, _)| kind == b"mdat")
            .and_then(|(_, mdat)| {
                let start = find(mdat, b"Exif\0\0")? + 6;
                mdat.get(start..)
            });
        if let Some(tiff) = exif {
            read_exif(tiff, report);
        }
        if let Some(start) = find(bytes, b"<x:xmpmeta") {
            report.read_xmp(
                &String::from_utf8_lossy(&bytes[start..(start + 65_536).min(bytes.len())]),
                "the HEIF XMP item",
            );
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads the EXIF tags policies use from a TIFF structure.
fn read_exif(tiff: &[u8], report: &mut MetadataReport) {
    let Some(reader) = Tiff::new(tiff) else {
        return;
    };
    report.facts.exif_present = true;
    let Some(ifd0) = reader.u32(4) else { return };
    for (tag, kind, count, value_at) in reader.entries(ifd0) {
        match tag {
            0x010F => report.facts.camera_make = reader.ascii(kind, count, value_at),
            0x0110 => report.facts.camera_model = reader.ascii(kind, count, value_at),
            0x0131 => report.facts.software = reader.ascii(kind, count, value_at),
            0x8825 => report.facts.gps_present = true,
            0x8769 => {
                let Some(exif_ifd) = reader.u32(value_at) else {
                    continue;
                };
                for (tag, kind, count, value_at) in reader.entries(exif_ifd) {
                    if tag == 0x9003 {
                        report.facts.capture_time = reader.ascii(kind, count, value_at);
                    }
                }
            }
            _ => {}
        }
    }
    if report.facts.camera_make.is_some() {
        report
            .evidence
            .push("EXIF names a camera (consistent with a capture, not proof of one)".to_owned());
    }
}

struct Tiff<'a> {
    data: &'a [u8],
    little: bool,
}

impl<'a> Tiff<'a> {
    fn new(data: &'a [u8]) -> Option<Self> {
        match data.get(..4)? {
            b"II*\0" => Some(Self { data, little: true }),
            b"MM\0*" => Some(Self {
                data,
                little: false,
            }),
            _ => None,
        }
    }

    fn u16(&self, at: usize) -> Option<u16> {
        let b: [u8; 2] = self.data.get(at..at + 2)?.try_into().ok()?;
        Some(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    fn u32(&self, at: usize) -> Option<usize> {
        let b: [u8; 4] = self.data.get(at..at + 4)?.try_into().ok()?;
        let v = if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        };
        usize::try_from(v).ok()
    }

    /// (tag, type, count, offset of the value field) of each entry of the IFD at `at`, at most
    /// 512 entries.
    fn entries(&self, at: usize) -> impl Iterator<Item = (u16, u16, usize, usize)> + '_ {
        let count = self.u16(at).map_or(0, usize::from).min(512);
        (0..count).map_while(move |i| {
            let entry = at + 2 + i * 12;
            Some((
                self.u16(entry)?,
                self.u16(entry + 2)?,
                self.u32(entry + 4)?,
                entry + 8,
            ))
        })
    }

    /// An ASCII value, trimmed, at most 256 bytes.
    fn ascii(&self, kind: u16, count: usize, value_at: usize) -> Option<String> {
        if kind != 2 || count == 0 || count > 256 {
            return None;
        }
        let start = if count <= 4 {
            value_at
        } else {
            self.u32(value_at)?
        };
        let raw = self.data.get(start..start + count)?;
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        (!text.is_empty()).then(|| text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_with_text(key: &str, text: &str) -> Vec<u8> {
        let mut png = crate::intake::tests::png(128, 128);
        let mut data = key.as_bytes().to_vec();
        data.push(0);
        data.extend(text.as_bytes());
        png.extend((data.len() as u32).to_be_bytes());
        png.extend(b"tEXt");
        png.extend(&data);
        png.extend([0; 4]);
        png
    }

    #[test]
    fn generator_text_chunks_declare_ai() {
        let report = read_metadata(
            ImageFormat::Png,
            &png_with_text("parameters", "photo of a duck\nSteps: 15"),
        );
        assert_eq!(report.declaration, Some(Declaration::AiGenerated));
        assert!(report.facts.ai_declared);
        assert!(
            report.evidence[0].contains("AUTOMATIC1111"),
            "{:?}",
            report.evidence
        );
    }

    #[test]
    fn ordinary_text_chunks_declare_nothing() {
        let report = read_metadata(ImageFormat::Png, &png_with_text("Comment", "holiday"));
        assert_eq!(report.declaration, None);
        let report = read_metadata(ImageFormat::Png, &png_with_text("Software", "GIMP 2.10"));
        assert_eq!(report.declaration, None);
        assert_eq!(report.facts.software.as_deref(), Some("GIMP 2.10"));
    }

    #[test]
    fn xmp_digital_source_type_separates_creation_from_edits() {
        let mut report = MetadataReport::default();
        report.read_xmp("<Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>", "test");
        assert_eq!(report.declaration, Some(Declaration::AiGenerated));
        let mut report = MetadataReport::default();
        report.read_xmp(
            "digitalsourcetype/compositeWithTrainedAlgorithmicMedia",
            "test",
        );
        assert_eq!(report.declaration, Some(Declaration::AiEdited));
        let mut report = MetadataReport::default();
        report.read_xmp("digitalsourcetype/algorithmicMedia", "test");
        assert_eq!(report.declaration, None);
    }

    #[test]
    fn exif_tags_are_read_from_a_tiff_structure() {
        // Big-endian TIFF: IFD0 at 8 with Make ("ACME") inline and a GPS pointer.
        let mut tiff = b"MM\0*\0\0\0\x08\0\x02".to_vec();
        tiff.extend([0x01, 0x0F, 0, 2, 0, 0, 0, 4]);
        tiff.extend(b"ACME");
        tiff.extend([0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0]);
        let mut report = MetadataReport::default();
        read_exif(&tiff, &mut report);
        assert!(report.facts.exif_present);
        assert!(report.facts.gps_present);
        assert_eq!(report.facts.camera_make.as_deref(), Some("ACME"));
    }

    #[test]
    fn garbage_never_panics() {
        for format in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Tiff,
            ImageFormat::Webp,
            ImageFormat::Heic,
        ] {
            for len in 0..64 {
                let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
                let _ = read_metadata(format, &bytes);
                let _ = read_metadata(format, &vec![0xFF; len]);
            }
        }
    }
}
