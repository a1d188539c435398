//! The embedded fonts (DejaVu Sans and DejaVu Sans Bold, from Debian's `fonts-dejavu-core`; see
//! `fonts/LICENSE-DejaVu.txt`): their glyphs and advances, for laying text out without a shaper.

use crate::ReportError;
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::{FontRef, GlyphId, MetadataProvider};

static REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

/// The character drawn for one the fonts have no glyph for.
const MISSING: char = '?';

/// One face: its glyph map and advances, and the font the PDF embeds.
pub(crate) struct Face {
    pub(crate) pdf: krilla::text::Font,
    charmap: skrifa::charmap::Charmap<'static>,
    metrics: GlyphMetrics<'static>,
    units_per_em: f32,
}

impl Face {
    fn load(name: &'static str, data: &'static [u8]) -> Result<Self, ReportError> {
        let font = FontRef::new(data).map_err(|_| ReportError::Font(name))?;
        let units_per_em = f32::from(
            font.metrics(Size::unscaled(), LocationRef::default())
                .units_per_em,
        );
        let pdf = krilla::text::Font::new(data.into(), 0).ok_or(ReportError::Font(name))?;
        Ok(Self {
            pdf,
            charmap: font.charmap(),
            metrics: font.glyph_metrics(Size::unscaled(), LocationRef::default()),
            units_per_em,
        })
    }

    /// The glyph of a character, if the font has one.
    pub(crate) fn glyph(&self, c: char) -> Option<GlyphId> {
        self.charmap.map(c).filter(|gid| gid.to_u32() != 0)
    }

    /// A glyph's advance, as a fraction of the font size.
    pub(crate) fn advance(&self, glyph: GlyphId) -> f32 {
        self.metrics.advance_width(glyph).unwrap_or(0.0) / self.units_per_em
    }

    /// The width of a line of text at a font size, in points.
    pub(crate) fn width(&self, text: &str, size: f32) -> f32 {
        text.chars()
            .filter_map(|c| self.glyph(c))
            .map(|g| self.advance(g))
            .sum::<f32>()
            * size
    }

    /// The text as it can be drawn: control characters and bidirectional overrides (which
    /// would reorder what a reader sees) become spaces, and characters the font has no glyph
    /// for become `?`.
    pub(crate) fn drawable(&self, text: &str) -> String {
        text.chars()
            .map(|c| {
                if c.is_control() || is_bidi_control(c) {
                    ' '
                } else if self.glyph(c).is_some() {
                    c
                } else {
                    MISSING
                }
            })
            .collect()
    }
}

/// Marks and overrides of bidirectional text (U+200E, U+200F, U+202A..U+202E, U+2066..U+2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The two faces a report uses.
pub(crate) struct Fonts {
    pub(crate) regular: Face,
    pub(crate) bold: Face,
}

impl Fonts {
    pub(crate) fn load() -> Result<Self, ReportError> {
        Ok(Self {
            regular: Face::load("DejaVuSans.ttf", REGULAR)?,
            bold: Face::load("DejaVuSans-Bold.ttf", BOLD)?,
        })
    }

    pub(crate) fn face(&self, bold: bool) -> &Face {
        if bold { &self.bold } else { &self.regular }
    }
}
