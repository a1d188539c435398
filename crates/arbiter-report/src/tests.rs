//! Reports laid out and written: wrapping, pagination, pictures, and text that is not Latin.

use super::*;
use crate::fonts::Fonts;
use crate::layout::{Item, Picture, png_size, wrap};

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode a PNG");
    out.into_inner()
}

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn image_section(n: usize) -> ImageSection {
    ImageSection {
        heading: Some(format!("Image {n} of 3 (damage)")),
        request_id: format!("req_01JEXAMPLE{n:014}"),
        reference_id: Some(format!("claim-78234-photo-{n}")),
        sha256: SHA.to_owned(),
        image_line: "JPEG, 1024 x 768 px, 245 KB".to_owned(),
        recorded_at: "2026-12-05T21:00:00Z".to_owned(),
        thumbnail_png: Some(png(256, 192)),
        verdict: VerdictSection {
            label: "AI_GENERATED".to_owned(),
            confidence: 0.94,
            risk_level: "HIGH".to_owned(),
        },
        detector: "local".to_owned(),
        results: [
            "gan_detection",
            "diffusion_detection",
            "noise_analysis",
            "metadata_analysis",
        ]
        .iter()
        .map(|source| ResultLine {
            source: (*source).to_owned(),
            outcome: "SYNTHETIC, score 0.91".to_owned(),
            evidence: "The sensor noise is uniform across the frame, as a generator leaves \
                           it; no camera wrote EXIF data and the file names a diffusion tool."
                .to_owned(),
        })
        .collect(),
        heatmap: Some(HeatmapSection {
            png: png(8, 6),
            caption: "Each square is a 128 px region of the image; brighter regions agree less \
                      with the rest."
                .to_owned(),
        }),
        decision: Some(DecisionSection {
            action: "siu_escalation".to_owned(),
            reason: "HIGH_RISK_IMAGE".to_owned(),
            description: Some("AI_GENERATED at 0.94 on a 12000 claim".to_owned()),
            fired: vec!["siu-high-risk".to_owned()],
            policy_id: "insurance.fnol".to_owned(),
            policy_version: 3,
            policy_sha256: SHA.to_owned(),
        }),
        reviews: vec![ReviewLine {
            queue: "siu".to_owned(),
            status: "resolved".to_owned(),
            outcome: "confirmed_fake by alice at 2026-12-05T21:10:00Z; action siu_escalation"
                .to_owned(),
        }],
        entries: vec![
            EntryLine {
                seq: 41,
                event: "decision.recorded".to_owned(),
                entry_hash: SHA.to_owned(),
            },
            EntryLine {
                seq: 57,
                event: "review.resolved".to_owned(),
                entry_hash: SHA.to_owned(),
            },
        ],
    }
}

fn report(images: usize) -> Report {
    Report {
        title: "Insurance claim CLM-78234".to_owned(),
        tenant: "acme".to_owned(),
        generated_at: "2026-12-05T21:30:00Z".to_owned(),
        case: Some(CaseSection {
            kind: "claim".to_owned(),
            case_id: "CLM-78234".to_owned(),
            complete: true,
            decision: image_section(1).decision,
        }),
        images: (1..=images).map(image_section).collect(),
        audit: AuditSection {
            checkpoint: Some(CheckpointLine {
                size: 64,
                root_hash: SHA.to_owned(),
                issued_at: "2026-12-05T21:20:00Z".to_owned(),
            }),
            verifier_key: "arbiter+1a2b3c4d+AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefgh"
                .to_owned(),
        },
    }
}

fn all_text(layout: &Layout) -> String {
    layout
        .pages
        .iter()
        .map(Page::text)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn long_text_wraps_within_its_column_and_loses_nothing() {
    let fonts = Fonts::load().expect("fonts");
    let text = format!(
        "The file names {SHA} as its parent and says nothing else about where it came from."
    );
    let lines = wrap(&fonts.regular, &text, 8.0, 120.0);
    assert!(lines.len() > 3, "{lines:?}");
    for line in &lines {
        assert!(
            fonts.regular.width(line, 8.0) <= 120.0,
            "{line:?} is too wide"
        );
    }
    // Only the breaks differ: every character is kept.
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    assert_eq!(squeeze(&lines.concat()), squeeze(&text));
    assert_eq!(wrap(&fonts.regular, "", 8.0, 120.0), vec![String::new()]);
}

#[test]
fn a_request_and_a_three_image_case_fit_on_two_pages() {
    let mut one = report(1);
    one.case = None;
    one.images[0].heading = None;
    let layout = lay_out(&one).expect("layout");
    assert_eq!(layout.pages.len(), 1, "a request fits on one page");
    let layout = lay_out(&report(3)).expect("layout");
    assert!(layout.pages.len() <= 2, "{} pages", layout.pages.len());
    let last = layout.pages.last().expect("a page").text();
    assert!(last.contains(&format!(
        "page {} of {}",
        layout.pages.len(),
        layout.pages.len()
    )));
    // Nothing is drawn below the footer line or off the page.
    for page in &layout.pages {
        for item in &page.items {
            if let Item::Text { x, y, .. } = item {
                assert!(*x >= 0.0 && *x < 595.0 && *y > 0.0 && *y < 842.0);
            }
        }
    }
}

#[test]
fn a_case_of_six_images_is_laid_out_compactly_on_two_pages_and_keeps_every_id() {
    let r = report(6);
    let layout = lay_out(&r).expect("layout");
    assert!(layout.pages.len() <= 2, "{} pages", layout.pages.len());
    let text = all_text(&layout);
    for image in &r.images {
        assert!(text.contains(&image.request_id), "{}", image.request_id);
    }
    // Every image keeps its thumbnail, drawn smaller.
    let thumbnails: Vec<f32> = layout
        .pages
        .iter()
        .flat_map(|page| &page.items)
        .filter_map(|item| match item {
            Item::Image {
                w,
                picture: Picture::Thumbnail(_),
                ..
            } => Some(*w),
            _ => None,
        })
        .collect();
    assert_eq!(thumbnails.len(), 6);
    assert!(thumbnails.iter().all(|w| *w <= 58.0), "{thumbnails:?}");
    // A case that fits in full is not made compact.
    let small = lay_out(&report(2)).expect("layout");
    let full = small.pages.iter().flat_map(|page| &page.items).any(
        |item| matches!(item, Item::Image { w, picture: Picture::Thumbnail(_), .. } if *w > 58.0),
    );
    assert!(full, "two images keep their full-size thumbnails");
}

#[test]
fn the_report_says_what_a_reader_checks_it_against() {
    let text = all_text(&lay_out(&report(1)).expect("layout"));
    for needle in [
        SHA,
        "claim-78234-photo-1",
        "AI-generated",
        "Verdict AI_GENERATED, confidence 0.94, risk HIGH",
        "siu-high-risk",
        "insurance.fnol version 3",
        "decision.recorded",
        "size 64 (entries 0 to 63)",
        "arbiter+1a2b3c4d+",
        "confirmed_fake by alice",
        "Manipulation heatmap",
    ] {
        assert!(text.contains(needle), "{needle:?} is missing from:\n{text}");
    }
}

#[test]
fn an_image_without_a_thumbnail_says_so_and_a_bad_one_is_not_drawn() {
    let mut r = report(2);
    r.images[0].thumbnail_png = None;
    r.images[1].thumbnail_png = Some(b"not a png".to_vec());
    let layout = lay_out(&r).expect("layout");
    let text = all_text(&layout).replace('\n', " ");
    assert!(
        text.contains("No thumbnail was kept of this image."),
        "{text}"
    );
    assert!(
        text.contains("The kept thumbnail could not be read."),
        "{text}"
    );
    let thumbnails = layout
        .pages
        .iter()
        .flat_map(|p| &p.items)
        .filter(|item| {
            matches!(
                item,
                Item::Image {
                    picture: Picture::Thumbnail(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(thumbnails, 0);
    render(&r).expect("a PDF all the same");
}

#[test]
fn reference_ids_in_any_script_are_drawn_or_replaced_never_dropped() {
    let mut r = report(1);
    r.images[0].reference_id = Some("réf-Ωmega-東京-😀\u{7}\u{202e}end".to_owned());
    let text = all_text(&lay_out(&r).expect("layout"));
    // Latin, Greek: DejaVu Sans has them; CJK and emoji: replaced; controls: spaces.
    let line = text
        .lines()
        .find(|l| l.starts_with("réf-"))
        .unwrap_or_else(|| panic!("no reference line in:\n{text}"));
    assert!(line.starts_with("réf-Ωmega-??-"), "{line:?}");
    assert!(line.ends_with(" end"), "{line:?}");
    assert!(
        !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{line:?}"
    );
    let pdf = render(&r).expect("a PDF");
    assert!(pdf.starts_with(b"%PDF-"));
}

#[test]
fn the_pdf_embeds_its_fonts_and_pictures() {
    let pdf = render(&report(1)).expect("a PDF");
    let has = |needle: &[u8]| pdf.windows(needle.len()).any(|w| w == needle);
    assert!(pdf.starts_with(b"%PDF-"));
    assert!(
        has(b"/FontFile2") || has(b"/FontFile3"),
        "no embedded font program"
    );
    assert!(has(b"/ToUnicode"), "text would not be extractable");
    assert!(
        has(b"/Subtype /Image") || has(b"/Subtype/Image"),
        "no image"
    );
    assert!(pdf.len() < 200_000, "{} bytes", pdf.len());
}

#[test]
fn png_sizes_are_read_from_the_header() {
    assert_eq!(png_size(&png(7, 3)), Some((7, 3)));
    assert_eq!(png_size(b"\x89PNG\r\n\x1a\n"), None);
    assert_eq!(png_size(b""), None);
}

#[test]
fn verdicts_have_their_own_colours() {
    let colours: std::collections::BTreeSet<_> =
        ["AUTHENTIC", "AI_GENERATED", "MANIPULATED", "INCONCLUSIVE"]
            .iter()
            .map(|l| verdict_colour(l))
            .collect();
    assert_eq!(colours.len(), 4);
    assert_eq!(
        verdict_colour("SOMETHING_ELSE"),
        verdict_colour("INCONCLUSIVE")
    );
}
