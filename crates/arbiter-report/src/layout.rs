//! Where everything goes: the report as A4 pages of positioned text, boxes and images, with
//! text wrapped to its column and a new page begun when one is full.

use crate::fonts::{Face, Fonts};
use crate::{DecisionSection, ImageSection, Report, ResultLine, verdict_colour, verdict_words};

/// A4 width, in points.
pub(crate) const PAGE_WIDTH: f32 = 595.0;
/// A4 height, in points.
pub(crate) const PAGE_HEIGHT: f32 = 842.0;
const MARGIN: f32 = 40.0;
/// The lowest a line of content may reach; the footer is below.
const BOTTOM: f32 = PAGE_HEIGHT - 48.0;
const CONTENT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN;
/// The side of the square a thumbnail or heatmap is fitted into.
const PICTURE: f32 = 104.0;
const LINE: f32 = 1.32;

const BLACK: [u8; 3] = [0x21, 0x21, 0x21];
const GREY: [u8; 3] = [0x75, 0x75, 0x75];
const RULE: [u8; 3] = [0xcf, 0xd8, 0xdc];
const WHITE: [u8; 3] = [0xff, 0xff, 0xff];

/// A report laid out.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// The pages, in order.
    pub pages: Vec<Page>,
}

/// One page and what is drawn on it, top-left origin, in points.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// What is drawn, in order.
    pub items: Vec<Item>,
}

impl Page {
    /// The page's text, a line per text item, in drawing order.
    pub fn text(&self) -> String {
        self.items
            .iter()
            .filter_map(|item| match item {
                Item::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Which picture of the report an image item shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picture {
    /// The thumbnail of image `n` (index into `Report::images`).
    Thumbnail(usize),
    /// The heatmap of image `n`.
    Heatmap(usize),
}

/// One thing drawn.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A line of text; `y` is its baseline.
    Text {
        /// Left edge.
        x: f32,
        /// Baseline.
        y: f32,
        /// Font size.
        size: f32,
        /// Bold face.
        bold: bool,
        /// RGB.
        colour: [u8; 3],
        /// The text (only characters the font can draw).
        text: String,
    },
    /// A filled rectangle.
    Fill {
        /// Left edge.
        x: f32,
        /// Top edge.
        y: f32,
        /// Width.
        w: f32,
        /// Height.
        h: f32,
        /// RGB.
        colour: [u8; 3],
    },
    /// A rectangle's outline.
    Frame {
        /// Left edge.
        x: f32,
        /// Top edge.
        y: f32,
        /// Width.
        w: f32,
        /// Height.
        h: f32,
        /// RGB.
        colour: [u8; 3],
    },
    /// A PNG picture of the report, scaled into the rectangle.
    Image {
        /// Left edge.
        x: f32,
        /// Top edge.
        y: f32,
        /// Width.
        w: f32,
        /// Height.
        h: f32,
        /// Which picture.
        picture: Picture,
    },
}

/// Splits text into lines no wider than `width` at `size`: at spaces, and inside a word (a hash,
/// an id) that is wider than the line on its own.
pub(crate) fn wrap(face: &Face, text: &str, size: f32, width: f32) -> Vec<String> {
    let text = face.drawable(text);
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
            let candidate = if line.is_empty() {
                word.to_owned()
            } else {
                format!("{line} {word}")
            };
            if face.width(&candidate, size) <= width {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // The word alone: broken by characters when it does not fit.
            for c in word.chars() {
                line.push(c);
                if face.width(&line, size) > width && line.chars().count() > 1 {
                    line.pop();
                    lines.push(std::mem::take(&mut line));
                    line.push(c);
                }
            }
        }
        if !line.is_empty() || lines.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// The size of a PNG from its header, if it is one.
pub(crate) fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    if png.len() < 24 || png[..8] != SIGNATURE || &png[12..16] != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(png[16..20].try_into().ok()?);
    let height = u32::from_be_bytes(png[20..24].try_into().ok()?);
    (width > 0 && height > 0).then_some((width, height))
}

/// Fits a picture of `size` into a `side` square, keeping its shape.
fn fit((width, height): (u32, u32), side: f32) -> (f32, f32) {
    let (w, h) = (width as f32, height as f32);
    let scale = side / w.max(h);
    (w * scale, h * scale)
}

struct Writer<'f> {
    fonts: &'f Fonts,
    pages: Vec<Page>,
    y: f32,
}

impl<'f> Writer<'f> {
    fn new(fonts: &'f Fonts) -> Self {
        Self {
            fonts,
            pages: vec![Page::default()],
            y: MARGIN,
        }
    }

    fn page(&mut self) -> &mut Page {
        if self.pages.is_empty() {
            self.pages.push(Page::default());
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    /// Starts a new page when `height` more does not fit on this one.
    fn room(&mut self, height: f32) {
        if self.y + height > BOTTOM && self.y > MARGIN {
            self.pages.push(Page::default());
            self.y = MARGIN;
        }
    }

    fn push(&mut self, item: Item) {
        self.page().items.push(item);
    }

    fn text_at(
        &mut self,
        x: f32,
        baseline: f32,
        size: f32,
        bold: bool,
        colour: [u8; 3],
        text: &str,
    ) {
        let text = self.fonts.face(bold).drawable(text);
        if text.trim().is_empty() {
            return;
        }
        self.push(Item::Text {
            x,
            y: baseline,
            size,
            bold,
            colour,
            text,
        });
    }

    /// Text wrapped into a column, from the current position down; returns its height.
    fn paragraph(
        &mut self,
        x: f32,
        width: f32,
        size: f32,
        bold: bool,
        colour: [u8; 3],
        text: &str,
    ) {
        for line in wrap(self.fonts.face(bold), text, size, width) {
            self.room(size * LINE);
            let baseline = self.y + size;
            self.text_at(x, baseline, size, bold, colour, &line);
            self.y += size * LINE;
        }
    }

    /// `label` in bold, then `value` wrapped in the rest of the column.
    fn field(&mut self, x: f32, width: f32, size: f32, label: &str, value: &str) {
        let label_width = self.fonts.bold.width(label, size) + size * 0.4;
        let lines = wrap(
            &self.fonts.regular,
            value,
            size,
            (width - label_width).max(size * 4.0),
        );
        for (i, line) in lines.iter().enumerate() {
            self.room(size * LINE);
            let baseline = self.y + size;
            if i == 0 {
                self.text_at(x, baseline, size, true, BLACK, label);
            }
            self.text_at(x + label_width, baseline, size, false, BLACK, line);
            self.y += size * LINE;
        }
    }

    fn heading(&mut self, text: &str, size: f32) {
        self.room(size * LINE + 24.0);
        self.y += size * 0.4;
        self.paragraph(MARGIN, CONTENT_WIDTH, size, true, BLACK, text);
    }

    fn rule(&mut self) {
        self.room(8.0);
        let y = self.y + 3.0;
        self.push(Item::Fill {
            x: MARGIN,
            y,
            w: CONTENT_WIDTH,
            h: 0.6,
            colour: RULE,
        });
        self.y += 8.0;
    }

    fn gap(&mut self, height: f32) {
        self.y += height;
    }
}

/// The side of a thumbnail in the compact layout of a case with many images.
const SMALL_PICTURE: f32 = 58.0;
/// The most pages a report card takes before its images are laid out compactly.
const MAX_PAGES: usize = 2;

/// Lays a report out: each image in full when the report fits on [`MAX_PAGES`] pages that way,
/// else (a case with many images) each image compactly (a small thumbnail beside its facts, each
/// result's outcome and the decision in a few lines; the evidence in words and the heatmap are
/// left to the image's own report).
pub(crate) fn lay_out(report: &Report, fonts: &Fonts) -> Layout {
    let full = lay_out_as(report, fonts, false);
    if full.pages.len() > MAX_PAGES && report.images.len() > 1 {
        lay_out_as(report, fonts, true)
    } else {
        full
    }
}

fn lay_out_as(report: &Report, fonts: &Fonts, compact: bool) -> Layout {
    let mut w = Writer::new(fonts);
    w.paragraph(
        MARGIN,
        CONTENT_WIDTH,
        16.0,
        true,
        BLACK,
        "Arbiter report card",
    );
    w.paragraph(MARGIN, CONTENT_WIDTH, 11.0, true, BLACK, &report.title);
    w.paragraph(
        MARGIN,
        CONTENT_WIDTH,
        8.0,
        false,
        GREY,
        &format!(
            "Tenant {} - generated {} - {} image{}",
            report.tenant,
            report.generated_at,
            report.images.len(),
            if report.images.len() == 1 { "" } else { "s" }
        ),
    );
    if let Some(case) = &report.case {
        w.rule();
        w.heading(
            &format!("Case decision ({} {})", case.kind, case.case_id),
            10.0,
        );
        match &case.decision {
            Some(decision) => decision_block(&mut w, decision),
            None => w.paragraph(
                MARGIN,
                CONTENT_WIDTH,
                8.0,
                false,
                BLACK,
                "No case decision yet.",
            ),
        }
        w.field(
            MARGIN,
            CONTENT_WIDTH,
            8.0,
            "Evidence complete:",
            if case.complete {
                "yes, every piece of evidence the flow requires is in"
            } else {
                "no, the flow still waits for evidence it requires"
            },
        );
    }
    for (index, image) in report.images.iter().enumerate() {
        w.rule();
        if compact {
            compact_image_block(&mut w, index, image);
        } else {
            image_block(&mut w, index, image);
        }
    }
    w.rule();
    audit_block(&mut w, report);
    let mut layout = Layout { pages: w.pages };
    footers(&mut layout, fonts, &report.title);
    layout
}

fn image_block(w: &mut Writer<'_>, index: usize, image: &ImageSection) {
    if let Some(heading) = &image.heading {
        w.heading(heading, 10.0);
    }
    // The picture on the left, the identifying facts on the right.
    w.room(PICTURE + 6.0);
    let top = w.y;
    let thumbnail = image.thumbnail_png.as_deref().and_then(png_size);
    match thumbnail {
        Some(size) => {
            let (pw, ph) = fit(size, PICTURE);
            w.push(Item::Image {
                x: MARGIN + (PICTURE - pw) / 2.0,
                y: top + (PICTURE - ph) / 2.0,
                w: pw,
                h: ph,
                picture: Picture::Thumbnail(index),
            });
        }
        None => {
            w.push(Item::Frame {
                x: MARGIN,
                y: top,
                w: PICTURE,
                h: PICTURE,
                colour: RULE,
            });
            w.y = top + PICTURE / 2.0 - 10.0;
            let words = if image.thumbnail_png.is_some() {
                "The kept thumbnail could not be read."
            } else {
                "No thumbnail was kept of this image."
            };
            w.paragraph(MARGIN + 8.0, PICTURE - 16.0, 7.5, false, GREY, words);
        }
    }
    let x = MARGIN + PICTURE + 12.0;
    let width = CONTENT_WIDTH - PICTURE - 12.0;
    w.y = top;
    w.field(x, width, 8.0, "Request:", &image.request_id);
    w.field(
        x,
        width,
        8.0,
        "Reference id:",
        image.reference_id.as_deref().unwrap_or("(none given)"),
    );
    w.field(x, width, 8.0, "SHA-256:", &image.sha256);
    w.field(x, width, 8.0, "Image:", &image.image_line);
    w.field(x, width, 8.0, "Recorded:", &image.recorded_at);
    w.field(x, width, 8.0, "Detector:", &image.detector);
    // The verdict, colour-coded.
    w.gap(3.0);
    let verdict = &image.verdict;
    let badge = verdict_words(&verdict.label);
    let badge_width = w.fonts.bold.width(&badge, 10.0) + 14.0;
    let badge_top = w.y;
    w.push(Item::Fill {
        x,
        y: badge_top,
        w: badge_width,
        h: 16.0,
        colour: verdict_colour(&verdict.label),
    });
    w.text_at(x + 7.0, badge_top + 11.5, 10.0, true, WHITE, &badge);
    w.text_at(
        x + badge_width + 8.0,
        badge_top + 11.0,
        8.5,
        false,
        BLACK,
        &format!(
            "Verdict {}, confidence {:.2}, risk {}",
            verdict.label, verdict.confidence, verdict.risk_level
        ),
    );
    w.y = (badge_top + 20.0).max(top + PICTURE + 4.0);

    if !image.results.is_empty() {
        results_table(w, &image.results);
    }
    if let Some(heatmap) = &image.heatmap {
        w.gap(2.0);
        w.room(PICTURE * 0.75 + 4.0);
        let top = w.y;
        let side = PICTURE * 0.75;
        let mut bottom = top;
        if let Some(size) = png_size(&heatmap.png) {
            let (pw, ph) = fit(size, side);
            bottom = top + ph;
            w.push(Item::Image {
                x: MARGIN,
                y: top,
                w: pw,
                h: ph,
                picture: Picture::Heatmap(index),
            });
        }
        w.paragraph(x, width, 8.0, true, BLACK, "Manipulation heatmap");
        w.paragraph(x, width, 8.0, false, BLACK, &heatmap.caption);
        w.y = w.y.max(bottom + 4.0);
    }
    match &image.decision {
        Some(decision) => {
            w.gap(2.0);
            decision_block(w, decision);
        }
        None => w.paragraph(
            MARGIN,
            CONTENT_WIDTH,
            8.0,
            false,
            BLACK,
            "No flow decided about this image: it was analysed only.",
        ),
    }
    for review in &image.reviews {
        w.field(
            MARGIN,
            CONTENT_WIDTH,
            8.0,
            &format!("Review ({}, {}):", review.queue, review.status),
            &review.outcome,
        );
    }
    if image.reviews.is_empty() && image.decision.is_some() {
        w.field(
            MARGIN,
            CONTENT_WIDTH,
            8.0,
            "Review:",
            "not sent to a review queue",
        );
    }
    if image.entries.is_empty() {
        w.field(
            MARGIN,
            CONTENT_WIDTH,
            8.0,
            "Audit entries:",
            "none recorded",
        );
    } else {
        w.paragraph(
            MARGIN,
            CONTENT_WIDTH,
            8.0,
            true,
            BLACK,
            "Audit entries (seq, event, entry_hash):",
        );
        for entry in &image.entries {
            w.paragraph(
                MARGIN + 8.0,
                CONTENT_WIDTH - 8.0,
                7.0,
                false,
                BLACK,
                &format!("{}  {}  {}", entry.seq, entry.event, entry.entry_hash),
            );
        }
    }
}

/// An image in a few lines: a small thumbnail beside its identifying facts and verdict, then
/// its results, decision, reviews and audit entries in small type.
fn compact_image_block(w: &mut Writer<'_>, index: usize, image: &ImageSection) {
    let size = 7.0;
    w.room(SMALL_PICTURE + 40.0);
    let top = w.y;
    match image.thumbnail_png.as_deref().and_then(png_size) {
        Some(picture) => {
            let (pw, ph) = fit(picture, SMALL_PICTURE);
            w.push(Item::Image {
                x: MARGIN + (SMALL_PICTURE - pw) / 2.0,
                y: top + (SMALL_PICTURE - ph) / 2.0,
                w: pw,
                h: ph,
                picture: Picture::Thumbnail(index),
            });
        }
        None => w.push(Item::Frame {
            x: MARGIN,
            y: top,
            w: SMALL_PICTURE,
            h: SMALL_PICTURE,
            colour: RULE,
        }),
    }
    let x = MARGIN + SMALL_PICTURE + 10.0;
    let width = CONTENT_WIDTH - SMALL_PICTURE - 10.0;
    if let Some(heading) = &image.heading {
        w.paragraph(x, width, 8.5, true, BLACK, heading);
    }
    w.field(x, width, size, "Request:", &image.request_id);
    w.field(
        x,
        width,
        size,
        "Reference id:",
        image.reference_id.as_deref().unwrap_or("(none given)"),
    );
    w.field(x, width, size, "SHA-256:", &image.sha256);
    let verdict = &image.verdict;
    let badge = verdict_words(&verdict.label);
    let badge_width = w.fonts.bold.width(&badge, 8.0) + 10.0;
    let badge_top = w.y + 1.0;
    w.push(Item::Fill {
        x,
        y: badge_top,
        w: badge_width,
        h: 12.0,
        colour: verdict_colour(&verdict.label),
    });
    w.text_at(x + 5.0, badge_top + 8.8, 8.0, true, WHITE, &badge);
    w.text_at(
        x + badge_width + 6.0,
        badge_top + 8.5,
        size,
        false,
        BLACK,
        &format!(
            "Verdict {}, confidence {:.2}, risk {} - {} - {}",
            verdict.label, verdict.confidence, verdict.risk_level, image.detector, image.image_line
        ),
    );
    w.y = (badge_top + 14.0).max(top + SMALL_PICTURE + 2.0);
    if !image.results.is_empty() {
        let results: Vec<String> = image
            .results
            .iter()
            .map(|r| format!("{}: {}", r.source, r.outcome))
            .collect();
        w.field(
            MARGIN,
            CONTENT_WIDTH,
            6.5,
            "Results:",
            &format!(
                "{} (the evidence in words is in the image's own report)",
                results.join("; ")
            ),
        );
    }
    if image.heatmap.is_some() {
        w.field(
            MARGIN,
            CONTENT_WIDTH,
            6.5,
            "Heatmap:",
            "kept with the analysis; shown in the image's own report",
        );
    }
    match &image.decision {
        Some(decision) => {
            let fired = if decision.fired.is_empty() {
                "none (the policy's default applied)".to_owned()
            } else {
                decision.fired.join(", ")
            };
            let mut text = format!(
                "{} (reason {}); fired rules: {fired}; policy {} version {}, SHA-256 {}",
                decision.action,
                decision.reason,
                decision.policy_id,
                decision.policy_version,
                decision.policy_sha256
            );
            if let Some(description) = &decision.description {
                text = format!("{text}. {description}");
            }
            w.field(MARGIN, CONTENT_WIDTH, size, "Decision:", &text);
        }
        None => w.field(
            MARGIN,
            CONTENT_WIDTH,
            size,
            "Decision:",
            "none: the image was analysed only",
        ),
    }
    for review in &image.reviews {
        w.field(
            MARGIN,
            CONTENT_WIDTH,
            size,
            &format!("Review ({}, {}):", review.queue, review.status),
            &review.outcome,
        );
    }
    if image.entries.is_empty() {
        w.field(
            MARGIN,
            CONTENT_WIDTH,
            size,
            "Audit entries:",
            "none recorded",
        );
    } else {
        w.paragraph(
            MARGIN,
            CONTENT_WIDTH,
            6.5,
            true,
            BLACK,
            "Audit entries (seq, event, entry_hash):",
        );
        for entry in &image.entries {
            w.paragraph(
                MARGIN + 8.0,
                CONTENT_WIDTH - 8.0,
                6.5,
                false,
                BLACK,
                &format!("{}  {}  {}", entry.seq, entry.event, entry.entry_hash),
            );
        }
    }
}

/// Each model's or provider's result: source, outcome, and the evidence wrapped beside them.
fn results_table(w: &mut Writer<'_>, results: &[ResultLine]) {
    let size = 7.5;
    let columns = [MARGIN, MARGIN + 110.0, MARGIN + 215.0];
    let widths = [105.0, 100.0, CONTENT_WIDTH - 215.0];
    w.room(size * LINE * 2.0);
    let baseline = w.y + size;
    for (i, title) in ["Model or provider", "Result", "Evidence"]
        .iter()
        .enumerate()
    {
        w.text_at(columns[i], baseline, size, true, GREY, title);
    }
    w.y += size * LINE;
    for result in results {
        let cells = [
            wrap(&w.fonts.regular, &result.source, size, widths[0]),
            wrap(&w.fonts.regular, &result.outcome, size, widths[1]),
            wrap(&w.fonts.regular, &result.evidence, size, widths[2]),
        ];
        let rows = cells.iter().map(Vec::len).max().unwrap_or(1);
        for row in 0..rows {
            w.room(size * LINE);
            let baseline = w.y + size;
            for (i, cell) in cells.iter().enumerate() {
                if let Some(line) = cell.get(row) {
                    w.text_at(columns[i], baseline, size, false, BLACK, line);
                }
            }
            w.y += size * LINE;
        }
        w.y += 1.5;
    }
}

fn decision_block(w: &mut Writer<'_>, decision: &DecisionSection) {
    w.field(
        MARGIN,
        CONTENT_WIDTH,
        8.5,
        "Decision:",
        &format!("{} (reason {})", decision.action, decision.reason),
    );
    if let Some(description) = &decision.description {
        w.paragraph(
            MARGIN + 8.0,
            CONTENT_WIDTH - 8.0,
            8.0,
            false,
            BLACK,
            description,
        );
    }
    let fired = if decision.fired.is_empty() {
        "none (the policy's default applied)".to_owned()
    } else {
        decision.fired.join(", ")
    };
    w.field(MARGIN, CONTENT_WIDTH, 8.0, "Fired rules:", &fired);
    w.field(
        MARGIN,
        CONTENT_WIDTH,
        8.0,
        "Policy:",
        &format!(
            "{} version {}, SHA-256 {}",
            decision.policy_id, decision.policy_version, decision.policy_sha256
        ),
    );
}

fn audit_block(w: &mut Writer<'_>, report: &Report) {
    w.heading("Checking this report against the audit log", 10.0);
    let audit = &report.audit;
    match &audit.checkpoint {
        Some(cp) => w.field(
            MARGIN,
            CONTENT_WIDTH,
            8.0,
            "Latest checkpoint covering these entries:",
            &format!(
                "size {} (entries 0 to {}), root hash {}, signed {}",
                cp.size,
                cp.size - 1,
                cp.root_hash,
                cp.issued_at
            ),
        ),
        None => w.field(
            MARGIN,
            CONTENT_WIDTH,
            8.0,
            "Checkpoint:",
            "no signed checkpoint covers these entries yet; a later export's checkpoint will",
        ),
    }
    w.field(
        MARGIN,
        CONTENT_WIDTH,
        8.0,
        "Verifier key:",
        &audit.verifier_key,
    );
    w.paragraph(
        MARGIN,
        CONTENT_WIDTH,
        7.5,
        false,
        GREY,
        "To check: take an audit export (GET /v1/audit/export or arbiter audit export) and verify it \
         with the verifier key above. Each entry listed here must appear in entries.jsonl with the \
         same seq and entry_hash, and checkpoints/cp-<size>.txt of the checkpoint named here must \
         carry the same root hash, signed under this key.",
    );
}

/// "page i of n" and the report's title at the foot of every page.
fn footers(layout: &mut Layout, fonts: &Fonts, title: &str) {
    let count = layout.pages.len();
    for (i, page) in layout.pages.iter_mut().enumerate() {
        let text = fonts.regular.drawable(&format!(
            "Arbiter report card - {title} - page {} of {count}",
            i + 1
        ));
        page.items.push(Item::Text {
            x: MARGIN,
            y: PAGE_HEIGHT - 28.0,
            size: 7.0,
            bold: false,
            colour: GREY,
            text,
        });
    }
}
