//! Writing a laid-out report as a PDF with krilla: text as real glyphs of the embedded fonts
//! (subset, with their Unicode mapping, so the text can be selected and extracted), boxes as
//! paths, pictures as images.

use crate::fonts::{Face, Fonts};
use crate::layout::{Item, Layout, PAGE_HEIGHT, PAGE_WIDTH, Picture};
use crate::{Report, ReportError};
use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect, Size, Transform};
use krilla::image::Image;
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{GlyphId, KrillaGlyph};

fn paint(colour: [u8; 3]) -> krilla::paint::Paint {
    rgb::Color::new(colour[0], colour[1], colour[2]).into()
}

fn fill(colour: [u8; 3]) -> Fill {
    Fill {
        paint: paint(colour),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }
}

/// Writes the layout's pages; pictures the PDF writer cannot read are left out.
pub(crate) fn write(
    layout: &Layout,
    fonts: &Fonts,
    report: &Report,
) -> Result<Vec<u8>, ReportError> {
    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title(format!("Arbiter report card - {}", report.title))
            .creator("Arbiter".to_owned()),
    );
    let settings = PageSettings::from_wh(PAGE_WIDTH, PAGE_HEIGHT)
        .ok_or_else(|| ReportError::Pdf("the page size is not valid".to_owned()))?;
    for page in &layout.pages {
        let mut pdf_page = document.start_page_with(settings.clone());
        let mut surface = pdf_page.surface();
        for item in &page.items {
            draw(&mut surface, item, fonts, report);
        }
        surface.finish();
        pdf_page.finish();
    }
    document
        .finish()
        .map_err(|err| ReportError::Pdf(format!("{err:?}")))
}

fn draw(surface: &mut Surface<'_>, item: &Item, fonts: &Fonts, report: &Report) {
    match item {
        Item::Text {
            x,
            y,
            size,
            bold,
            colour,
            text,
        } => {
            surface.set_stroke(None);
            surface.set_fill(Some(fill(*colour)));
            text_line(
                surface,
                fonts.face(*bold),
                Point::from_xy(*x, *y),
                *size,
                text,
            );
        }
        Item::Fill { x, y, w, h, colour } => {
            if let Some(rect) = Rect::from_xywh(*x, *y, *w, *h) {
                let mut builder = PathBuilder::new();
                builder.push_rect(rect);
                if let Some(path) = builder.finish() {
                    surface.set_stroke(None);
                    surface.set_fill(Some(fill(*colour)));
                    surface.draw_path(&path);
                }
            }
        }
        Item::Frame { x, y, w, h, colour } => {
            if let Some(rect) = Rect::from_xywh(*x, *y, *w, *h) {
                let mut builder = PathBuilder::new();
                builder.push_rect(rect);
                if let Some(path) = builder.finish() {
                    surface.set_fill(None);
                    surface.set_stroke(Some(Stroke {
                        paint: paint(*colour),
                        width: 0.8,
                        ..Default::default()
                    }));
                    surface.draw_path(&path);
                    surface.set_stroke(None);
                }
            }
        }
        Item::Image {
            x,
            y,
            w,
            h,
            picture,
        } => {
            let png = match picture {
                Picture::Thumbnail(i) => report
                    .images
                    .get(*i)
                    .and_then(|im| im.thumbnail_png.clone()),
                Picture::Heatmap(i) => report
                    .images
                    .get(*i)
                    .and_then(|im| im.heatmap.as_ref().map(|h| h.png.clone())),
            };
            let Some(png) = png else { return };
            // A heatmap is a few pixels a side: drawn without smoothing, each region a square.
            let interpolate = matches!(picture, Picture::Thumbnail(_));
            let (Ok(image), Some(size)) = (
                Image::from_png(png.into(), interpolate),
                Size::from_wh(*w, *h),
            ) else {
                return;
            };
            surface.push_transform(&Transform::from_translate(*x, *y));
            surface.draw_image(image, size);
            surface.pop();
        }
    }
}

/// One line of text, a glyph per character (the fonts' own advances, no kerning): the glyphs
/// carry their characters, so the line reads back as it was written.
fn text_line(surface: &mut Surface<'_>, face: &Face, start: Point, size: f32, text: &str) {
    let glyphs: Vec<KrillaGlyph> = text
        .char_indices()
        .filter_map(|(at, c)| {
            let glyph = face.glyph(c)?;
            Some(KrillaGlyph::new(
                GlyphId::new(glyph.to_u32()),
                face.advance(glyph),
                0.0,
                0.0,
                0.0,
                at..at + c.len_utf8(),
                None,
            ))
        })
        .collect();
    surface.draw_glyphs(start, &glyphs, face.pdf.clone(), text, size, false);
}
