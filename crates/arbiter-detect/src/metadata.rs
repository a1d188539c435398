//! The metadata model: what a file says about itself.
//!
//! Reads EXIF (camera make, model, software, capture time, GPS, maker notes, `UserComment`,
//! `ImageDescription`), XMP (`Iptc4xmpExt:DigitalSourceType`, credits, descriptions) in JPEG
//! APP1, PNG iTXt, WebP, TIFF and HEIF, and the text chunks that image generators write into PNG
//! files (`tEXt`, `iTXt`, `zTXt`). Only a declaration of generative AI sets a finding; camera
//! EXIF is reported as consistent with a camera, never as proof, and editing software is reported
//! as such, not as manipulation.
//!
//! Every parser is bounded: text is cut at [`MAX_TEXT`], compressed chunks are inflated to at
//! most [`MAX_TEXT`], IFD chains are followed at most [`MAX_IFDS`] deep. One file's reading is
//! bounded as a whole too: at most [`MAX_TEXT_VALUES`] text values and [`MAX_TEXT_TOTAL`] bytes
//! of text are read, and at most [`MAX_EVIDENCE`] pieces of evidence are kept, so a file of
//! thousands of text chunks costs no more than one of a few.

use crate::container::{bmff_boxes, find, jpeg_segments, png_chunks, riff_chunks};
use arbiter_core::{ImageFormat, MetadataFacts};
use std::io::Read;

/// The most bytes of one text value (a PNG chunk's text, an XMP packet, a `UserComment`) read.
pub const MAX_TEXT: usize = 1 << 20;
/// The most IFDs of one EXIF structure visited.
pub const MAX_IFDS: usize = 8;
/// The most text chunks of one PNG inflated (each at most [`MAX_TEXT`]).
const MAX_COMPRESSED_CHUNKS: usize = 16;
/// The most text values (PNG text chunks, XMP packets, comments, EXIF text tags, EXIF
/// structures) read from one file; later ones are counted and skipped.
pub const MAX_TEXT_VALUES: usize = 256;
/// The most bytes of text read from one file, over all its values.
pub const MAX_TEXT_TOTAL: usize = 4 << 20;
/// The most pieces of evidence kept for one file; later ones are counted.
pub const MAX_EVIDENCE: usize = 16;

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
    /// Where a declaration was read, in plain language; at most [`MAX_EVIDENCE`], no repeats.
    pub evidence: Vec<String>,
    /// Declarations made after [`MAX_EVIDENCE`] pieces of evidence were kept (not listed).
    pub evidence_left_out: usize,
    /// Text values not read because the file reached [`MAX_TEXT_VALUES`] or [`MAX_TEXT_TOTAL`].
    pub values_skipped: usize,
    /// Other observations (camera, editing software), in plain language; never a finding.
    pub observations: Vec<String>,
    /// The file has an alpha channel worth checking for hidden ("stealth") generation data.
    pub has_alpha: bool,
    /// Text values read so far, and their bytes.
    values_read: usize,
    bytes_read: usize,
}

/// PNG text keys that image generators write, and the generator each one names.
const GENERATOR_KEYS: [(&str, &str, &str); 7] = [
    (
        "parameters",
        "AUTOMATIC1111",
        "Stable Diffusion web UI generation parameters",
    ),
    ("prompt", "ComfyUI", "a ComfyUI prompt graph"),
    ("workflow", "ComfyUI", "a ComfyUI workflow graph"),
    (
        "invokeai_metadata",
        "InvokeAI",
        "InvokeAI generation metadata",
    ),
    ("sd-metadata", "InvokeAI", "InvokeAI generation metadata"),
    ("Dream", "InvokeAI", "an InvokeAI dream command"),
    ("fooocus_scheme", "Fooocus", "Fooocus generation metadata"),
];

/// Names of generators as they appear in a `Software` tag or text chunk.
const GENERATOR_SOFTWARE: [&str; 9] = [
    "NovelAI",
    "Stable Diffusion",
    "ComfyUI",
    "InvokeAI",
    "Midjourney",
    "DALL-E",
    "DALL·E",
    "Fooocus",
    "Adobe Firefly",
];

const XMP_AI_CREATED: &str = "trainedAlgorithmicMedia";
const XMP_AI_COMPOSITE: [&str; 2] = ["compositeWithTrainedAlgorithmicMedia", "compositeSynthetic"];
const GOOGLE_AI_CREDIT: &str = "Made with Google AI";

/// Reads the metadata of an image of a known format.
pub fn read_metadata(format: ImageFormat, bytes: &[u8]) -> MetadataReport {
    let mut report = MetadataReport::default();
    match format {
        ImageFormat::Png => read_png(bytes, &mut report),
        ImageFormat::Jpeg => read_jpeg(bytes, &mut report),
        ImageFormat::Tiff => read_exif(bytes, "the TIFF file", &mut report),
        ImageFormat::Webp => read_webp(bytes, &mut report),
        ImageFormat::Heic => read_heif(bytes, &mut report),
        ImageFormat::Bmp => {}
    }
    report.summarise_camera();
    if report.values_skipped > 0 {
        report.observations.push(format!(
            "{} more metadata values were not read: the reader stops after {MAX_TEXT_VALUES} values or {} MiB of text",
            report.values_skipped,
            MAX_TEXT_TOTAL >> 20
        ));
    }
    report
}

impl MetadataReport {
    /// Records a declaration of generative AI.
    pub fn declare(&mut self, declaration: Declaration, generator: &str, evidence: String) {
        // An AI creation outranks an AI edit.
        if self.declaration != Some(Declaration::AiGenerated) {
            self.declaration = Some(declaration);
        }
        self.facts.ai_declared = true;
        if self.facts.generator.is_none() && !generator.is_empty() {
            self.facts.generator = Some(generator.to_owned());
        }
        // At most MAX_EVIDENCE entries, so the check for a repeat takes constant time.
        if self.evidence.contains(&evidence) {
            return;
        }
        if self.evidence.len() < MAX_EVIDENCE {
            self.evidence.push(evidence);
        } else {
            self.evidence_left_out += 1;
        }
    }

    /// Whether one more text value of `len` bytes may be read from this file; counts it if so,
    /// and counts it as skipped if not.
    fn admit(&mut self, len: usize) -> bool {
        if self.values_read >= MAX_TEXT_VALUES || self.bytes_read >= MAX_TEXT_TOTAL {
            self.values_skipped += 1;
            return false;
        }
        self.values_read += 1;
        self.bytes_read += len.min(MAX_TEXT);
        true
    }

    fn read_xmp(&mut self, xmp: &str, place: &str) {
        let xmp = truncate(xmp, MAX_TEXT);
        if let Some(kind) = XMP_AI_COMPOSITE.iter().find(|c| xmp.contains(*c)) {
            self.declare(
                Declaration::AiEdited,
                "",
                format!("XMP in {place} declares DigitalSourceType {kind}"),
            );
        } else if xmp.contains(XMP_AI_CREATED) {
            self.declare(
                Declaration::AiGenerated,
                "",
                format!("XMP in {place} declares DigitalSourceType trainedAlgorithmicMedia"),
            );
        }
        self.read_free_text(xmp, &format!("XMP in {place}"));
    }

    /// Credits and descriptions that name a generator, wherever they are written.
    fn read_free_text(&mut self, text: &str, place: &str) {
        if text.contains(GOOGLE_AI_CREDIT) {
            self.declare(
                Declaration::AiGenerated,
                "Google AI",
                format!("{place} carries the credit \"{GOOGLE_AI_CREDIT}\""),
            );
        }
        if is_midjourney_description(text) {
            self.declare(
                Declaration::AiGenerated,
                "Midjourney",
                format!("{place} carries a Midjourney job description (\"Job ID: ...\")"),
            );
        }
    }

    /// Generation parameters in free text (a PNG chunk, an EXIF `UserComment`, a JPEG comment).
    fn read_parameters(&mut self, text: &str, place: &str) {
        if is_a1111_parameters(text) {
            self.declare(
                Declaration::AiGenerated,
                "AUTOMATIC1111",
                format!("{place} carries Stable Diffusion generation parameters (prompt, steps, sampler, seed)"),
            );
        } else if is_comfyui_graph(text) {
            self.declare(
                Declaration::AiGenerated,
                "ComfyUI",
                format!("{place} carries a ComfyUI graph"),
            );
        } else if is_generation_json(text) {
            self.declare(
                Declaration::AiGenerated,
                "",
                format!("{place} carries generation settings (prompt, sampler, seed, steps)"),
            );
        }
        self.read_free_text(text, place);
    }

    fn read_software(&mut self, software: &str, place: &str) {
        if self.facts.software.is_none() {
            self.facts.software = Some(software.chars().take(120).collect());
        }
        if let Some(generator) = GENERATOR_SOFTWARE
            .iter()
            .find(|g| software.to_lowercase().contains(&g.to_lowercase()))
        {
            self.declare(
                Declaration::AiGenerated,
                generator,
                format!("{place} names the generator {generator}"),
            );
        }
    }

    fn observe(&mut self, observation: String) {
        if !self.observations.contains(&observation) && self.observations.len() < 16 {
            self.observations.push(observation);
        }
    }

    fn summarise_camera(&mut self) {
        let facts = &self.facts;
        if facts.camera_make.is_some() || facts.camera_model.is_some() {
            let mut parts = Vec::new();
            if let Some(time) = &facts.capture_time {
                parts.push(format!("capture time {time}"));
            }
            if facts.gps_present {
                parts.push("GPS".to_owned());
            }
            let what = [facts.camera_make.as_deref(), facts.camera_model.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            let extra = if parts.is_empty() {
                String::new()
            } else {
                format!(" with {}", parts.join(", "))
            };
            self.observations.insert(
                0,
                format!("EXIF names a camera ({what}){extra}: consistent with a capture, not proof of one"),
            );
        } else if facts.exif_present && !self.facts.ai_declared {
            self.observe("EXIF is present but names no camera".to_owned());
        }
        if let Some(software) = self.facts.software.clone()
            && !self.facts.ai_declared
        {
            self.observe(format!(
                "software recorded: {software} (editing software is reported, not a finding)"
            ));
        }
    }
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// AUTOMATIC1111's parameter block: a prompt, then `Steps: N, Sampler: ..., CFG scale: ...`.
fn is_a1111_parameters(text: &str) -> bool {
    text.contains("Steps: ")
        && ["Sampler: ", "CFG scale: ", "Seed: "]
            .iter()
            .filter(|k| text.contains(*k))
            .count()
            >= 2
}

/// A ComfyUI API graph (`{"3": {"class_type": "KSampler", ...}}`) or UI graph (`last_node_id`).
fn is_comfyui_graph(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with('{')
        && (t.contains("\"class_type\"")
            || (t.contains("\"last_node_id\"") && t.contains("\"nodes\"")))
}

/// A JSON object of generation settings (NovelAI, Fooocus, InvokeAI): at least three of the
/// usual keys.
fn is_generation_json(text: &str) -> bool {
    let t = text.trim_start();
    if !t.starts_with('{') {
        return false;
    }
    let keys = [
        "\"prompt\"",
        "\"positive_prompt\"",
        "\"negative_prompt\"",
        "\"sampler\"",
        "\"sampler_name\"",
        "\"seed\"",
        "\"steps\"",
        "\"cfg_scale\"",
        "\"scale\"",
        "\"uc\"",
        "\"base_model\"",
        "\"generation_mode\"",
    ];
    keys.iter().filter(|k| t.contains(*k)).count() >= 3
}

/// Midjourney writes `<prompt> Job ID: <uuid>` into the image description.
fn is_midjourney_description(text: &str) -> bool {
    let Some(at) = text.find("Job ID: ") else {
        return false;
    };
    let id: Vec<char> = text[at + 8..].chars().take(36).collect();
    id.len() == 36
        && id.iter().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                *c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn read_png(bytes: &[u8], report: &mut MetadataReport) {
    let mut inflated = 0usize;
    for (kind, data) in png_chunks(bytes) {
        match &kind {
            b"IHDR" => {
                // Colour type 4 (grey + alpha) or 6 (RGBA).
                report.has_alpha = matches!(data.get(9), Some(4 | 6));
            }
            b"tEXt" | b"iTXt" | b"zTXt" => {
                let compressed = kind == *b"zTXt"
                    || (kind == *b"iTXt"
                        && data
                            .iter()
                            .position(|b| *b == 0)
                            .and_then(|n| data.get(n + 1))
                            == Some(&1));
                if compressed && inflated >= MAX_COMPRESSED_CHUNKS {
                    continue;
                }
                // A compressed chunk costs what it may inflate to.
                if !report.admit(if compressed { MAX_TEXT } else { data.len() }) {
                    continue;
                }
                if compressed {
                    inflated += 1;
                }
                if let Some((key, text)) = png_text(&kind, data) {
                    read_png_text(&key, &text, report);
                }
            }
            b"eXIf" => read_exif(data, "the PNG eXIf chunk", report),
            _ => {}
        }
    }
}

/// The keyword and text of a tEXt, zTXt or iTXt chunk (inflated, at most [`MAX_TEXT`] bytes).
fn png_text(kind: &[u8; 4], data: &[u8]) -> Option<(String, String)> {
    let nul = data.iter().take(80).position(|b| *b == 0)?;
    let key = String::from_utf8_lossy(&data[..nul]).into_owned();
    let rest = data.get(nul + 1..)?;
    let text = match kind {
        b"tEXt" => latin1(truncate_bytes(rest)),
        b"zTXt" => latin1(&inflate(rest.get(1..)?)?),
        _ => {
            // iTXt: compression flag, method, language\0, translated keyword\0, text.
            let (flag, rest) = rest.split_first()?;
            let rest = rest.get(1..)?;
            let lang_end = rest.iter().position(|b| *b == 0)?;
            let rest = rest.get(lang_end + 1..)?;
            let translated_end = rest.iter().position(|b| *b == 0)?;
            let text = rest.get(translated_end + 1..)?;
            if *flag == 0 {
                String::from_utf8_lossy(truncate_bytes(text)).into_owned()
            } else {
                String::from_utf8_lossy(&inflate(text)?).into_owned()
            }
        }
    };
    Some((key, text))
}

fn truncate_bytes(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(MAX_TEXT)]
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|b| char::from(*b)).collect()
}

/// zlib-inflates at most [`MAX_TEXT`] bytes; a bomb is cut there.
fn inflate(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .take(MAX_TEXT as u64)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// gzip-inflates at most [`MAX_TEXT`] bytes.
pub(crate) fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(MAX_TEXT as u64)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

fn read_png_text(key: &str, text: &str, report: &mut MetadataReport) {
    let place = format!(
        "PNG text chunk `{}`",
        key.chars().take(40).collect::<String>()
    );
    match key {
        "XML:com.adobe.xmp" => {
            report.read_xmp(text, "a PNG iTXt chunk");
            return;
        }
        "Software" => report.read_software(text.trim(), &place),
        "Title" if text.trim() == "AI generated image" => report.declare(
            Declaration::AiGenerated,
            "",
            format!("{place} reads \"AI generated image\""),
        ),
        "Source" if text.trim_start().starts_with("Stable Diffusion") => report.declare(
            Declaration::AiGenerated,
            "Stable Diffusion",
            format!("{place} names a Stable Diffusion model"),
        ),
        _ => {}
    }
    if key == "fooocus_scheme" {
        // Fooocus writes its settings under `parameters` too; this key names it for sure.
        report.facts.generator = Some("Fooocus".to_owned());
    }
    if let Some((_, generator, what)) = GENERATOR_KEYS.iter().find(|(k, _, _)| *k == key) {
        report.declare(
            Declaration::AiGenerated,
            generator,
            format!("{place} carries {what}"),
        );
        report.read_free_text(text, &place);
    } else {
        report.read_parameters(text, &place);
    }
}

fn read_jpeg(bytes: &[u8], report: &mut MetadataReport) {
    for (marker, segment) in jpeg_segments(bytes) {
        match marker {
            0xE1 | 0xED | 0xFE if !report.admit(segment.len()) => {}
            0xE1 => {
                if let Some(tiff) = segment.strip_prefix(b"Exif\0\0") {
                    read_exif(tiff, "EXIF", report);
                } else if let Some(xmp) = segment.strip_prefix(b"http://ns.adobe.com/xap/1.0/\0") {
                    report.read_xmp(&String::from_utf8_lossy(xmp), "the JPEG APP1 segment");
                } else if let Some(xmp) =
                    segment.strip_prefix(b"http://ns.adobe.com/xmp/extension/\0")
                {
                    // GUID (32) + full length (4) + offset (4), then a piece of the packet.
                    if let Some(piece) = xmp.get(40..) {
                        report.read_xmp(&String::from_utf8_lossy(piece), "the JPEG extended XMP");
                    }
                }
            }
            // APP13: Photoshop IRB with IPTC-IIM (credit, caption).
            0xED => report.read_free_text(&latin1(segment), "the JPEG IPTC segment"),
            // COM: a comment; some generators write their parameters here.
            0xFE => report.read_parameters(&String::from_utf8_lossy(segment), "the JPEG comment"),
            _ => {}
        }
    }
}

fn read_webp(bytes: &[u8], report: &mut MetadataReport) {
    for (kind, data) in riff_chunks(bytes) {
        match &kind {
            b"VP8X" => report.has_alpha = data.first().is_some_and(|f| f & 0x10 != 0),
            b"VP8L" => report.has_alpha = data.get(4).is_some_and(|b| b & 0x10 != 0),
            b"EXIF" => read_exif(
                data.strip_prefix(b"Exif\0\0").unwrap_or(data),
                "the WebP EXIF chunk",
                report,
            ),
            b"XMP " if report.admit(data.len()) => {
                report.read_xmp(&String::from_utf8_lossy(data), "the WebP XMP chunk")
            }
            _ => {}
        }
    }
}

/// HEIF: the `Exif` item (located through `iinf`/`iloc`, falling back to a search of `mdat`) and
/// the XMP packet (a `mime` item; found by its `<x:xmpmeta` start).
fn read_heif(bytes: &[u8], report: &mut MetadataReport) {
    let exif = heif_exif_item(bytes).or_else(|| {
        let (_, mdat) = bmff_boxes(bytes).find(|(kind, _)| kind == b"mdat")?;
        let window = &mdat[..mdat.len().min(1 << 20)];
        let start = find(window, b"Exif\0\0")? + 6;
        mdat.get(start..)
    });
    if let Some(tiff) = exif {
        read_exif(tiff, "the HEIF Exif item", report);
    }
    if let Some(start) = find(bytes, b"<x:xmpmeta")
        && report.admit(65_536)
    {
        let end = (start + 65_536).min(bytes.len());
        report.read_xmp(
            &String::from_utf8_lossy(&bytes[start..end]),
            "the HEIF XMP item",
        );
    }
}

/// The TIFF structure of a HEIF `Exif` item: `meta/iinf` names the item, `meta/iloc` says where
/// its bytes are (construction method 0, one extent).
fn heif_exif_item(bytes: &[u8]) -> Option<&[u8]> {
    let (_, meta) = bmff_boxes(bytes).find(|(kind, _)| kind == b"meta")?;
    let children = meta.get(4..)?;
    let (_, iinf) = bmff_boxes(children).find(|(kind, _)| kind == b"iinf")?;
    let version = *iinf.first()?;
    let entries_at = if version == 0 { 6 } else { 8 };
    let mut exif_id = None;
    for (kind, infe) in bmff_boxes(iinf.get(entries_at..)?) {
        if &kind != b"infe" || *infe.first()? < 2 {
            continue;
        }
        let (id, type_at) = if *infe.first()? == 2 {
            (
                u32::from(u16::from_be_bytes(infe.get(4..6)?.try_into().ok()?)),
                8,
            )
        } else {
            (u32::from_be_bytes(infe.get(4..8)?.try_into().ok()?), 10)
        };
        if infe.get(type_at..type_at + 4) == Some(b"Exif") {
            exif_id = Some(id);
            break;
        }
    }
    let exif_id = exif_id?;
    let (_, iloc) = bmff_boxes(children).find(|(kind, _)| kind == b"iloc")?;
    let version = *iloc.first()?;
    let sizes = *iloc.get(4)?;
    let (offset_size, length_size) = (usize::from(sizes >> 4), usize::from(sizes & 15));
    let sizes2 = *iloc.get(5)?;
    let (base_size, index_size) = (usize::from(sizes2 >> 4), usize::from(sizes2 & 15));
    let index_size = if version >= 1 { index_size } else { 0 };
    let mut at = 6;
    let count = if version < 2 {
        let c = u32::from(u16::from_be_bytes(iloc.get(at..at + 2)?.try_into().ok()?));
        at += 2;
        c
    } else {
        let c = u32::from_be_bytes(iloc.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        c
    };
    let read = |at: &mut usize, size: usize| -> Option<u64> {
        let mut value = 0u64;
        for b in iloc.get(*at..*at + size)? {
            value = (value << 8) | u64::from(*b);
        }
        *at += size;
        Some(value)
    };
    for _ in 0..count.min(4096) {
        let id = if version < 2 {
            read(&mut at, 2)?
        } else {
            read(&mut at, 4)?
        };
        let method = if version >= 1 {
            read(&mut at, 2)? & 15
        } else {
            0
        };
        at += 2; // data reference index
        let base = read(&mut at, base_size)?;
        let extents = read(&mut at, 2)?;
        let mut first = None;
        for _ in 0..extents.min(256) {
            read(&mut at, index_size)?;
            let offset = read(&mut at, offset_size)?;
            let length = read(&mut at, length_size)?;
            first.get_or_insert((offset, length));
        }
        if id == u64::from(exif_id) && method == 0 {
            let (offset, length) = first?;
            let start = usize::try_from(base.checked_add(offset)?).ok()?;
            let item = bytes.get(start..start.checked_add(usize::try_from(length).ok()?)?)?;
            // A 4-byte offset to the TIFF header, then (usually) "Exif\0\0".
            let skip = usize::try_from(u32::from_be_bytes(item.get(..4)?.try_into().ok()?)).ok()?;
            return item.get(4 + skip..);
        }
    }
    None
}

/// Reads the EXIF tags policies use from a TIFF structure.
fn read_exif(tiff: &[u8], place: &str, report: &mut MetadataReport) {
    let Some(reader) = Tiff::new(tiff) else {
        return;
    };
    report.facts.exif_present = true;
    if !report.admit(0) {
        return;
    }
    let Some(ifd0) = reader.u32(4) else { return };
    let mut ifds = vec![(ifd0, Ifd::Primary)];
    let mut visited = Vec::new();
    while let Some((ifd, kind)) = ifds.pop() {
        if visited.len() >= MAX_IFDS || visited.contains(&ifd) {
            continue;
        }
        visited.push(ifd);
        for (tag, ty, count, value_at) in reader.entries(ifd) {
            let text_tag = matches!(
                (kind, tag),
                (Ifd::Primary, 0x010F | 0x0110 | 0x0131 | 0x010E | 0x02BC) | (Ifd::Exif, 0x9286)
            );
            if text_tag && !report.admit(count) {
                continue;
            }
            match (kind, tag) {
                (Ifd::Primary, 0x010F) => {
                    read_make_model(&reader, ty, count, value_at, true, report)
                }
                (Ifd::Primary, 0x0110) => {
                    read_make_model(&reader, ty, count, value_at, false, report)
                }
                (Ifd::Primary, 0x0131) => {
                    if let Some(software) = reader.ascii(ty, count, value_at, 256) {
                        report.read_software(&software, &format!("{place} Software"));
                    }
                }
                (Ifd::Primary, 0x010E) => {
                    if let Some(text) = reader.ascii(ty, count, value_at, MAX_TEXT) {
                        report.read_parameters(&text, &format!("{place} ImageDescription"));
                    }
                }
                (Ifd::Primary, 0x02BC) => {
                    if let Some(xmp) = reader.bytes(count, value_at) {
                        report.read_xmp(&String::from_utf8_lossy(xmp), place);
                    }
                }
                (Ifd::Primary, 0x8825) => report.facts.gps_present = true,
                (Ifd::Primary, 0x8769) => {
                    if let Some(exif) = reader.u32(value_at) {
                        ifds.push((exif, Ifd::Exif));
                    }
                }
                (Ifd::Exif, 0x9003) => {
                    report.facts.capture_time = reader.ascii(ty, count, value_at, 64);
                }
                (Ifd::Exif, 0x927C) => {
                    report.observe("EXIF carries maker notes".to_owned());
                }
                (Ifd::Exif, 0x9286) => {
                    if let Some(text) = reader.bytes(count, value_at).and_then(user_comment) {
                        report.read_parameters(&text, &format!("{place} UserComment"));
                    }
                }
                _ => {}
            }
        }
    }
}

/// Make and Model: a camera's names, or (ComfyUI's WebP/JPEG output) `workflow:{...}` and
/// `prompt:{...}` JSON.
fn read_make_model(
    reader: &Tiff<'_>,
    ty: u16,
    count: usize,
    value_at: usize,
    make: bool,
    report: &mut MetadataReport,
) {
    let Some(text) = reader.ascii(ty, count, value_at, MAX_TEXT) else {
        return;
    };
    let json = text
        .strip_prefix("workflow:")
        .or_else(|| text.strip_prefix("prompt:"))
        .unwrap_or(&text);
    if is_comfyui_graph(json) {
        let tag = if make { "Make" } else { "Model" };
        report.declare(
            Declaration::AiGenerated,
            "ComfyUI",
            format!("EXIF {tag} carries a ComfyUI graph instead of a camera name"),
        );
        return;
    }
    let text: String = text.chars().take(120).collect();
    if make {
        report.facts.camera_make = Some(text);
    } else {
        report.facts.camera_model = Some(text);
    }
}

/// An EXIF `UserComment`: an 8-byte character code, then the text.
fn user_comment(raw: &[u8]) -> Option<String> {
    let (code, text) = (raw.get(..8)?, raw.get(8..)?);
    let text = truncate_bytes(text);
    let decoded = match code {
        b"UNICODE\0" => {
            // UTF-16 in either byte order: the order whose high bytes are mostly zero.
            let sample = &text[..text.len().min(256) & !1];
            let zero_even = sample.iter().step_by(2).filter(|b| **b == 0).count();
            let zero_odd = sample
                .iter()
                .skip(1)
                .step_by(2)
                .filter(|b| **b == 0)
                .count();
            let units = text.chunks_exact(2).map(|p| {
                if zero_even >= zero_odd {
                    u16::from_be_bytes([p[0], p[1]])
                } else {
                    u16::from_le_bytes([p[0], p[1]])
                }
            });
            char::decode_utf16(units)
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        }
        _ => String::from_utf8_lossy(text).into_owned(),
    };
    let decoded = decoded.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!decoded.is_empty()).then(|| decoded.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ifd {
    Primary,
    Exif,
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
        let b: [u8; 2] = self.data.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(if self.little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }

    fn u32(&self, at: usize) -> Option<usize> {
        let b: [u8; 4] = self.data.get(at..at.checked_add(4)?)?.try_into().ok()?;
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
            let entry = at.checked_add(2 + i * 12)?;
            Some((
                self.u16(entry)?,
                self.u16(entry + 2)?,
                self.u32(entry + 4)?,
                entry + 8,
            ))
        })
    }

    /// The raw bytes of a byte-sized value (ASCII, BYTE, UNDEFINED), at most [`MAX_TEXT`].
    fn bytes(&self, count: usize, value_at: usize) -> Option<&'a [u8]> {
        if count == 0 || count > MAX_TEXT {
            return None;
        }
        let start = if count <= 4 {
            value_at
        } else {
            self.u32(value_at)?
        };
        self.data.get(start..start.checked_add(count)?)
    }

    /// An ASCII value, trimmed, at most `max` bytes.
    fn ascii(&self, kind: u16, count: usize, value_at: usize, max: usize) -> Option<String> {
        if !matches!(kind, 1 | 2 | 7) || count > max {
            return None;
        }
        let raw = self.bytes(count, value_at)?;
        let text = String::from_utf8_lossy(raw);
        let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        (!text.is_empty()).then(|| text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../tests/fixtures/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn png_with_text(key: &str, text: &str) -> Vec<u8> {
        let mut png = crate::intake::tests::png(128, 128);
        png.truncate(png.len() - 12);
        let mut data = key.as_bytes().to_vec();
        data.push(0);
        data.extend(text.as_bytes());
        png.extend((data.len() as u32).to_be_bytes());
        png.extend(b"tEXt");
        png.extend(&data);
        png.extend([0; 4]);
        png.extend(b"\0\0\0\0IDAT\0\0\0\0");
        png
    }

    #[test]
    fn generator_text_chunks_declare_ai() {
        let report = read_metadata(
            ImageFormat::Png,
            &png_with_text(
                "parameters",
                "photo of a duck\nSteps: 15, Sampler: UniPC, Seed: 1",
            ),
        );
        assert_eq!(report.declaration, Some(Declaration::AiGenerated));
        assert!(report.facts.ai_declared);
        assert_eq!(report.facts.generator.as_deref(), Some("AUTOMATIC1111"));
    }

    #[test]
    fn ordinary_text_chunks_declare_nothing() {
        let report = read_metadata(ImageFormat::Png, &png_with_text("Comment", "holiday"));
        assert_eq!(report.declaration, None);
        let report = read_metadata(ImageFormat::Png, &png_with_text("Software", "GIMP 2.10"));
        assert_eq!(report.declaration, None);
        assert_eq!(report.facts.software.as_deref(), Some("GIMP 2.10"));
        assert!(report.observations[0].contains("GIMP"), "{report:?}");
    }

    #[test]
    fn every_generator_fixture_declares_ai_with_its_generator() {
        let cases = [
            ("genmeta/automatic1111_cropped.png", "AUTOMATIC1111"),
            ("genmeta/automatic1111_cropped.jpg", "AUTOMATIC1111"),
            ("genmeta/comfyui_img2img_cropped.png", "ComfyUI"),
            ("genmeta/novelai1_cropped.png", "NovelAI"),
            ("genmeta/invokeai_imeta1.png", "InvokeAI"),
            ("genmeta/invokeai_sdmeta1.png", "InvokeAI"),
            ("genmeta/fooocus1_cropped.png", "Fooocus"),
        ];
        for (path, generator) in cases {
            let bytes = fixture(path);
            let format = crate::sniff::sniff_format(&bytes).unwrap();
            let report = read_metadata(format, &bytes);
            assert_eq!(
                report.declaration,
                Some(Declaration::AiGenerated),
                "{path}: {report:?}"
            );
            assert!(
                report.facts.generator.is_some(),
                "{path}: no generator named: {report:?}"
            );
            assert_eq!(report.facts.generator.as_deref(), Some(generator), "{path}");
        }
    }

    #[test]
    fn the_utf16_user_comment_of_an_a1111_jpeg_is_decoded() {
        let report = read_metadata(
            ImageFormat::Jpeg,
            &fixture("genmeta/automatic1111_cropped.jpg"),
        );
        assert!(report.facts.exif_present);
        assert!(
            report.evidence[0].contains("UserComment"),
            "{:?}",
            report.evidence
        );
        assert_eq!(user_comment(b"UNICODE\0\0h\0i").as_deref(), Some("hi"),);
        assert_eq!(user_comment(b"UNICODE\0h\0i\0").as_deref(), Some("hi"));
        assert_eq!(user_comment(b"ASCII\0\0\0hello").as_deref(), Some("hello"));
    }

    #[test]
    fn camera_exif_is_an_observation_never_a_declaration() {
        let report = read_metadata(ImageFormat::Jpeg, &fixture("camera/DSCN0010.jpg"));
        assert_eq!(report.declaration, None);
        assert!(report.facts.gps_present);
        assert_eq!(report.facts.camera_make.as_deref(), Some("NIKON"));
        assert_eq!(
            report.facts.capture_time.as_deref(),
            Some("2008:10:22 16:28:39")
        );
        assert!(report.observations[0].contains("not proof"));
        let report = read_metadata(ImageFormat::Jpeg, &fixture("camera/canon-ixus.jpg"));
        assert!(
            report
                .observations
                .iter()
                .any(|o| o.contains("maker notes")),
            "{report:?}"
        );
    }

    #[test]
    fn heif_exif_is_read_through_the_item_location() {
        let report = read_metadata(ImageFormat::Heic, &fixture("camera/IMG_5195.HEIC"));
        assert_eq!(report.facts.camera_make.as_deref(), Some("Apple"));
        assert_eq!(report.facts.software.as_deref(), Some("14.4.2"));
        assert_eq!(report.declaration, None);
        let report = read_metadata(ImageFormat::Heic, &fixture("camera/samplefilehub.heif"));
        assert!(report.facts.exif_present);
        assert_eq!(report.facts.camera_make, None);
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
    fn credits_descriptions_and_comfyui_exif_declare_ai() {
        let mut report = MetadataReport::default();
        report.read_xmp(
            "<photoshop:Credit>Made with Google AI</photoshop:Credit>",
            "test",
        );
        assert_eq!(report.facts.generator.as_deref(), Some("Google AI"));
        let mut report = MetadataReport::default();
        report.read_parameters(
            "a cat in a hat --ar 3:2 Job ID: 5b2ad3a7-5d1f-4a43-9b0f-4c1e8e7a1d2b",
            "test",
        );
        assert_eq!(report.facts.generator.as_deref(), Some("Midjourney"));
        let mut report = MetadataReport::default();
        report.read_parameters("Job ID: not-a-uuid", "test");
        assert_eq!(report.declaration, None);

        // Little-endian TIFF: IFD0 with Make = `prompt:{...}` stored out of line.
        let make = br#"prompt:{"3": {"inputs": {"seed": 1}, "class_type": "KSampler"}}"#;
        let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec();
        tiff.extend([0x0F, 0x01, 2, 0]);
        tiff.extend((make.len() as u32).to_le_bytes());
        tiff.extend(26u32.to_le_bytes());
        tiff.extend([0; 4]);
        tiff.extend(make);
        let mut report = MetadataReport::default();
        read_exif(&tiff, "EXIF", &mut report);
        assert_eq!(report.facts.generator.as_deref(), Some("ComfyUI"));
        assert_eq!(report.facts.camera_make, None);
    }

    #[test]
    fn compressed_text_is_inflated_and_bombs_are_cut() {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![b'a'; 8 * MAX_TEXT]).unwrap();
        let bomb = z.finish().unwrap();
        assert!(bomb.len() < 40_000);
        let mut data = b"Comment\0\0".to_vec();
        data.extend(&bomb);
        let (key, text) = png_text(b"zTXt", &data).unwrap();
        assert_eq!(key, "Comment");
        assert_eq!(text.len(), MAX_TEXT);
    }

    #[test]
    fn exif_tags_are_read_from_a_tiff_structure() {
        // Big-endian TIFF: IFD0 at 8 with Make ("ACME") inline and a GPS pointer.
        let mut tiff = b"MM\0*\0\0\0\x08\0\x02".to_vec();
        tiff.extend([0x01, 0x0F, 0, 2, 0, 0, 0, 4]);
        tiff.extend(b"ACME");
        tiff.extend([0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0]);
        let mut report = MetadataReport::default();
        read_exif(&tiff, "EXIF", &mut report);
        assert!(report.facts.exif_present);
        assert!(report.facts.gps_present);
        assert_eq!(report.facts.camera_make.as_deref(), Some("ACME"));
    }

    #[test]
    fn an_exif_ifd_pointing_at_itself_ends() {
        // IFD0 whose ExifIFD pointer points back at IFD0.
        let mut tiff = b"MM\0*\0\0\0\x08\0\x01".to_vec();
        tiff.extend([0x87, 0x69, 0, 4, 0, 0, 0, 1, 0, 0, 0, 8]);
        let mut report = MetadataReport::default();
        read_exif(&tiff, "EXIF", &mut report);
        assert!(report.facts.exif_present);
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
