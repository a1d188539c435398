//! The splicing model (JPEG): the file's compression history, globally and block by block.
//!
//! 1. **Quantisation tables** (`DQT`): standard IJG tables scaled to a quality (what libjpeg
//!    and most software write) or custom tables (camera firmware, some encoders), and the
//!    estimated quality.
//! 2. **Aligned double compression**: the DCT coefficients of the decoded 8x8 blocks, divided by
//!    the file's luminance table, fall on integers; if the image was compressed before at a
//!    different quality, their histograms show periodic gaps (the "double quantisation" effect).
//! 3. **Per-block inconsistency**: when double compression is present, each block's chance of
//!    *not* sharing it (a region pasted in after the first compression) follows from where its
//!    coefficients fall in those histograms; otherwise the map is the strength of the 8x8
//!    blocking grid relative to the block's own texture (a pasted or resampled region has a
//!    weaker or misaligned grid). Blocks are pooled into regions for a thumbnail-sized map,
//!    returned as a PNG heatmap when asked for.
//!
//! At most [`MAX_BLOCKS`] blocks spread evenly over the image are measured. The score is uncalibrated:
//! it is reported, it never decides a verdict.

use crate::container::jpeg_segments;
use crate::decode::Pixels;
use arbiter_core::analysis::Heatmap;
use arbiter_core::{ModelLabel, ModelResult};
use base64::Engine;

/// The most 8x8 blocks measured.
pub const MAX_BLOCKS: usize = 32_768;
/// The longest side of the heatmap, in regions.
pub const HEATMAP_SIDE: usize = 64;

/// The IJG standard luminance table (JPEG Annex K), in natural (row-major) order.
const STD_LUMA: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/// Zig-zag position -> natural index.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// The low-frequency AC coefficients (u, v) whose histograms are read.
const FREQUENCIES: [(usize, usize); 6] = [(0, 1), (1, 0), (1, 1), (0, 2), (2, 0), (1, 2)];

/// The JPEG's quantisation tables: table id -> 64 values in natural order.
pub fn quantisation_tables(bytes: &[u8]) -> Vec<(u8, [u16; 64])> {
    let mut tables = Vec::new();
    for (marker, payload) in jpeg_segments(bytes) {
        if marker != 0xDB {
            continue;
        }
        let mut at = 0;
        while let Some(&pq_tq) = payload.get(at) {
            let (precision, id) = (pq_tq >> 4, pq_tq & 15);
            let size = if precision == 0 { 64 } else { 128 };
            let Some(values) = payload.get(at + 1..at + 1 + size) else {
                break;
            };
            let mut table = [0u16; 64];
            for (k, natural) in ZIGZAG.iter().enumerate() {
                table[*natural] = if precision == 0 {
                    u16::from(values[k])
                } else {
                    u16::from_be_bytes([values[2 * k], values[2 * k + 1]])
                };
            }
            tables.retain(|(t, _)| *t != id);
            tables.push((id, table));
            at += 1 + size;
            if tables.len() > 16 {
                break;
            }
        }
    }
    tables
}

/// The IJG quality whose scaled standard table is closest to `table`, and whether it matches
/// exactly.
pub fn estimate_quality(table: &[u16; 64]) -> (u8, bool) {
    let mut best = (50u8, u64::MAX);
    for quality in 1..=100u32 {
        let scale = if quality < 50 {
            5000 / quality
        } else {
            200 - 2 * quality
        };
        let distance: u64 = STD_LUMA
            .iter()
            .zip(table)
            .map(|(s, t)| {
                let scaled = ((u32::from(*s) * scale + 50) / 100).clamp(1, 255);
                u64::from(scaled.abs_diff(u32::from(*t)))
            })
            .sum();
        if distance < best.1 {
            best = (quality as u8, distance);
        }
    }
    (best.0, best.1 == 0)
}

/// Runs the splicing model on a JPEG; `heatmap` asks for the map as a PNG.
pub fn analyze(bytes: &[u8], pixels: &Pixels, heatmap: bool) -> ModelResult {
    let tables = quantisation_tables(bytes);
    let Some((_, luma_table)) = tables.iter().find(|(id, _)| *id == 0).or(tables.first()) else {
        return ModelResult::ran(
            0.0,
            ModelLabel::Inconclusive,
            "The JPEG has no quantisation table to read.",
        );
    };
    let (quality, standard) = estimate_quality(luma_table);
    let tables_said = if standard {
        format!("standard IJG quantisation tables at quality {quality} (typical of software)")
    } else {
        format!(
            "custom quantisation tables (camera firmware or a non-IJG encoder), closest IJG quality {quality}"
        )
    };
    let (bw, bh) = (pixels.width / 8, pixels.height / 8);
    if bw < 8 || bh < 8 {
        return ModelResult::ran(
            0.0,
            ModelLabel::Inconclusive,
            format!("The file uses {tables_said}; the image is too small for a block analysis."),
        );
    }
    let stride = ((bw * bh) as f64 / MAX_BLOCKS as f64)
        .sqrt()
        .ceil()
        .max(1.0) as usize;
    let basis = dct_basis();
    // Per measured block: its quantised coefficients at FREQUENCIES, and its grid strength.
    let mut blocks = Vec::new();
    for by in (0..bh).step_by(stride) {
        for bx in (0..bw).step_by(stride) {
            blocks.push(measure_block(pixels, bx * 8, by * 8, luma_table, &basis));
        }
    }
    let (gw, gh) = (bw.div_ceil(stride), bh.div_ceil(stride));

    // Double quantisation: gaps in the coefficient histograms.
    let mut histograms = vec![[0u32; 2 * RANGE + 1]; FREQUENCIES.len()];
    for block in &blocks {
        for (f, value) in block.coefficients.iter().enumerate() {
            if let Some(i) = bin(*value) {
                histograms[f][i] += 1;
            }
        }
    }
    let dq = double_quantisation(&histograms);

    // Per-block inconsistency, 0..1 (0.5 is neutral).
    let map: Vec<f64> = if dq >= DQ_THRESHOLD {
        let smooth: Vec<Vec<f64>> = histograms.iter().map(smoothed).collect();
        blocks
            .iter()
            .map(|b| {
                let mut sum = 0.0;
                let mut n = 0.0;
                for (f, value) in b.coefficients.iter().enumerate() {
                    if let Some(i) = bin(*value).filter(|i| *i != RANGE) {
                        let (h, s) = (f64::from(histograms[f][i]), smooth[f][i]);
                        sum += s / (s + h + 1e-9);
                        n += 1.0;
                    }
                }
                if n > 0.0 { sum / n } else { f64::NAN }
            })
            .collect()
    } else {
        let strengths: Vec<f64> = blocks.iter().filter_map(|b| b.grid).collect();
        let median = median_of(&strengths);
        blocks
            .iter()
            .map(|b| match b.grid {
                // A grid much weaker than the image's typical grid reads as inconsistent.
                Some(g) if median > 1.05 => {
                    (0.5 + 0.5 * (median - g) / (median - 1.0)).clamp(0.0, 1.0)
                }
                _ => f64::NAN,
            })
            .collect()
    };
    // Pool blocks into at most HEATMAP_SIDE regions per side.
    let pool = gw.max(gh).div_ceil(HEATMAP_SIDE).max(1);
    let (mw, mh) = (gw.div_ceil(pool), gh.div_ceil(pool));
    let mut cells = vec![(0.0f64, 0u32); mw * mh];
    for (i, value) in map.iter().enumerate().filter(|(_, v)| v.is_finite()) {
        let (gx, gy) = (i % gw, i / gw);
        if let Some(cell) = cells.get_mut((gy / pool) * mw + gx / pool) {
            cell.0 += value;
            cell.1 += 1;
        }
    }
    // Regions without an informative block (flat content) are neutral and not counted.
    let informative: Vec<f64> = cells
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| s / f64::from(*n))
        .collect();
    let cell_median = median_of(&informative);
    let cell_mad = median_of(
        &informative
            .iter()
            .map(|c| (c - cell_median).abs())
            .collect::<Vec<_>>(),
    );
    let outlying = informative
        .iter()
        .filter(|c| **c > 0.7 && (**c - cell_median) / (1.4826 * cell_mad + 0.02) > 4.0)
        .count();
    let share = outlying as f64 / informative.len().max(1) as f64;
    let cells: Vec<f64> = cells
        .iter()
        .map(|(s, n)| if *n > 0 { s / f64::from(*n) } else { 0.5 })
        .collect();
    let region_px = (8 * stride * pool) as u32;
    let compression = if dq >= DQ_THRESHOLD {
        format!(
            "its DCT histograms show the periodic gaps of an earlier compression at another quality (aligned double compression, strength {dq:.2})"
        )
    } else {
        format!("no sign of aligned double compression (strength {dq:.2})")
    };
    let regions = if outlying == 0 {
        "no region stands out from the rest of the image".to_owned()
    } else {
        format!(
            "{outlying} of {} regions of {region_px}x{region_px} px are inconsistent with the rest",
            informative.len()
        )
    };
    let label = if (0.02..=0.25).contains(&share) && outlying >= 3 {
        ModelLabel::Suspicious
    } else {
        ModelLabel::Inconclusive
    };
    let score = (share * 5.0).clamp(0.0, 1.0) * 0.8 + if dq >= DQ_THRESHOLD { 0.2 } else { 0.0 };
    let mut result = ModelResult::ran(
        score,
        label,
        format!(
            "The file uses {tables_said}; {compression}; {regions}. Double compression alone is common (any re-saved photo). An uncalibrated statistic: it does not decide the verdict."
        ),
    );
    if heatmap {
        result.heatmap = encode_heatmap(&cells, mw, mh, region_px);
    }
    result
}

const RANGE: usize = 24;
/// Double-quantisation strength above which the histograms count as periodic.
pub const DQ_THRESHOLD: f64 = 0.35;

fn bin(value: i32) -> Option<usize> {
    let i = value + RANGE as i32;
    (0..=2 * RANGE as i32).contains(&i).then_some(i as usize)
}

struct BlockMeasure {
    coefficients: [i32; FREQUENCIES.len()],
    /// Mean step across the block's left and top boundaries over the mean step inside it.
    grid: Option<f64>,
}

fn dct_basis() -> [[f32; 8]; 8] {
    let mut basis = [[0f32; 8]; 8];
    for (u, row) in basis.iter_mut().enumerate() {
        let c = if u == 0 { (0.125f32).sqrt() } else { 0.5 };
        for (x, value) in row.iter_mut().enumerate() {
            *value = c * ((2 * x + 1) as f32 * u as f32 * std::f32::consts::PI / 16.0).cos();
        }
    }
    basis
}

fn measure_block(
    pixels: &Pixels,
    x0: usize,
    y0: usize,
    table: &[u16; 64],
    basis: &[[f32; 8]; 8],
) -> BlockMeasure {
    let mut block = [[0f32; 8]; 8];
    for (y, row) in block.iter_mut().enumerate() {
        let start = (y0 + y) * pixels.width + x0;
        if let Some(src) = pixels.luma.get(start..start + 8) {
            for (value, p) in row.iter_mut().zip(src) {
                *value = f32::from(*p) - 128.0;
            }
        }
    }
    // Separable: the row transforms for the three horizontal frequencies used, then columns.
    let mut rows = [[0f32; 8]; 3];
    for (v, out) in rows.iter_mut().enumerate() {
        for (y, row) in block.iter().enumerate() {
            out[y] = row.iter().zip(&basis[v]).map(|(a, b)| a * b).sum();
        }
    }
    let mut coefficients = [0i32; FREQUENCIES.len()];
    for (slot, (u, v)) in coefficients.iter_mut().zip(FREQUENCIES) {
        // Row frequency u (vertical), column frequency v (horizontal).
        let sum: f32 = rows[v].iter().zip(&basis[u]).map(|(a, b)| a * b).sum();
        let q = f32::from(table[u * 8 + v].max(1));
        *slot = (sum / q).round() as i32;
    }
    let grid = if x0 >= 1 && y0 >= 1 {
        let mut boundary = 0u32;
        let mut inside = 0u32;
        for k in 0..8 {
            let d = |a: u8, b: u8| u32::from(a.abs_diff(b));
            boundary += d(pixels.at(x0 - 1, y0 + k), pixels.at(x0, y0 + k));
            boundary += d(pixels.at(x0 + k, y0 - 1), pixels.at(x0 + k, y0));
            inside += d(pixels.at(x0 + 3, y0 + k), pixels.at(x0 + 4, y0 + k));
            inside += d(pixels.at(x0 + k, y0 + 3), pixels.at(x0 + k, y0 + 4));
        }
        // Flat blocks say nothing about the grid.
        (inside >= 16 || boundary >= 16).then(|| f64::from(boundary + 4) / f64::from(inside + 4))
    } else {
        None
    };
    BlockMeasure { coefficients, grid }
}

/// Share of histogram bins (|n| in 1..12, with support) that are local dips: the periodic gaps of
/// double quantisation. A single compression gives a smooth, unimodal histogram.
fn double_quantisation(histograms: &[[u32; 2 * RANGE + 1]]) -> f64 {
    let mut dips = 0u32;
    let mut bins = 0u32;
    for h in histograms {
        for n in 1..=12usize {
            for i in [RANGE + n, RANGE - n] {
                let (left, mid, right) = (h[i - 1], h[i], h[i + 1]);
                let neighbours = f64::from(left + right) / 2.0;
                if neighbours < 20.0 {
                    continue;
                }
                bins += 1;
                if f64::from(mid) < 0.5 * neighbours {
                    dips += 1;
                }
            }
        }
    }
    if bins < 6 {
        0.0
    } else {
        f64::from(dips) / f64::from(bins)
    }
}

/// The histogram with its periodic gaps averaged out (a 5-bin moving average).
fn smoothed(h: &[u32; 2 * RANGE + 1]) -> Vec<f64> {
    (0..h.len())
        .map(|i| {
            let lo = i.saturating_sub(2);
            let hi = (i + 2).min(h.len() - 1);
            (lo..=hi).map(|j| f64::from(h[j])).sum::<f64>() / (hi - lo + 1) as f64
        })
        .collect()
}

fn median_of(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn encode_heatmap(cells: &[f64], width: usize, height: usize, region_px: u32) -> Option<Heatmap> {
    let gray: Vec<u8> = cells
        .iter()
        .map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let mut png = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new(&mut png);
    image::ImageEncoder::write_image(
        encoder,
        &gray,
        u32::try_from(width).ok()?,
        u32::try_from(height).ok()?,
        image::ExtendedColorType::L8,
    )
    .ok()?;
    Some(Heatmap {
        width: u32::try_from(width).ok()?,
        height: u32::try_from(height).ok()?,
        region_px,
        png_base64: base64::engine::general_purpose::STANDARD.encode(png),
    })
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

    fn encode(luma: &[u8], width: u32, height: u32, quality: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
        image::ImageEncoder::write_image(
            encoder,
            luma,
            width,
            height,
            image::ExtendedColorType::L8,
        )
        .unwrap();
        out
    }

    fn texture(width: usize, height: usize) -> Vec<u8> {
        (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .map(|(x, y)| {
                let mut h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
                h ^= h >> 31;
                let n = (h % 40) as f64;
                (60.0 + 50.0 * ((x as f64 / 23.0).sin() + (y as f64 / 17.0).cos()) + n) as u8
            })
            .collect()
    }

    #[test]
    fn quality_is_estimated_from_the_tables_the_encoder_wrote() {
        let jpeg = encode(&texture(256, 256), 256, 256, 75);
        let tables = quantisation_tables(&jpeg);
        assert!(!tables.is_empty());
        let (quality, standard) = estimate_quality(&tables[0].1);
        assert!(standard, "the image crate writes IJG tables");
        assert_eq!(quality, 75);
        let camera = quantisation_tables(&fixture("camera/DSCN0010.jpg"));
        assert!(!camera.is_empty());
    }

    #[test]
    fn a_recompressed_image_shows_double_quantisation_and_a_heatmap_is_a_png() {
        let (w, h) = (512u32, 512u32);
        let first = encode(&texture(512, 512), w, h, 50);
        let decoded = image::load_from_memory(&first).unwrap().into_luma8();
        let second = encode(decoded.as_raw(), w, h, 90);
        let pixels = crate::decode::from_image(image::load_from_memory(&second).unwrap());
        let result = analyze(&second, &pixels, true);
        let detail = result.detail.clone().unwrap();
        assert!(
            detail.contains("aligned double compression, strength"),
            "{detail}"
        );
        let map = result.heatmap.unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(&map.png_base64)
            .unwrap();
        let image = image::load_from_memory(&png).unwrap();
        assert_eq!((image.width(), image.height()), (map.width, map.height));
        assert!(map.width <= HEATMAP_SIDE as u32);

        let single = encode(&texture(512, 512), w, h, 90);
        let pixels = crate::decode::from_image(image::load_from_memory(&single).unwrap());
        let result = analyze(&single, &pixels, false);
        assert!(
            result
                .detail
                .unwrap()
                .contains("no sign of aligned double compression")
        );
        assert!(result.heatmap.is_none());
    }

    #[test]
    fn a_region_pasted_into_a_recompressed_image_is_flagged_where_it_was_pasted() {
        // A photo saved at quality 50, a never-compressed patch pasted at (256, 256)..(352, 352)
        // (on the 8x8 grid), and the result saved at quality 90: every block but the patch's
        // carries the earlier compression.
        let (w, h) = (512usize, 512usize);
        let first = encode(&texture(w, h), w as u32, h as u32, 50);
        let mut luma = image::load_from_memory(&first)
            .unwrap()
            .into_luma8()
            .into_raw();
        let patch = texture(w + 37, h + 11);
        for y in 256..352 {
            for x in 256..352 {
                luma[y * w + x] = patch[(y + 11) * (w + 37) + x + 37];
            }
        }
        let pasted = encode(&luma, w as u32, h as u32, 90);
        let pixels = crate::decode::from_image(image::load_from_memory(&pasted).unwrap());
        let result = analyze(&pasted, &pixels, true);
        let detail = result.detail.clone().unwrap();
        assert_eq!(result.label, ModelLabel::Suspicious, "{detail}");
        assert!(
            detail.contains("are inconsistent with the rest"),
            "{detail}"
        );
        let (inside, outside) = heat_inside_and_outside(&result);
        assert!(
            inside > outside + 0.3,
            "the pasted square is not hotter: {inside:.2} inside, {outside:.2} outside; {detail}"
        );

        // The same image without the paste: the square is no hotter than the rest.
        let decoded = image::load_from_memory(&first).unwrap().into_luma8();
        let second = encode(decoded.as_raw(), w as u32, h as u32, 90);
        let pixels = crate::decode::from_image(image::load_from_memory(&second).unwrap());
        let clean = analyze(&second, &pixels, true);
        let (inside, outside) = heat_inside_and_outside(&clean);
        assert!(
            (inside - outside).abs() < 0.1,
            "{inside:.2} inside, {outside:.2} outside; {:?}",
            clean.detail
        );
    }

    /// The mean heat of the heatmap's cells inside the square (256, 256)..(352, 352) px and
    /// outside it.
    fn heat_inside_and_outside(result: &ModelResult) -> (f64, f64) {
        let map = result.heatmap.as_ref().unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(&map.png_base64)
            .unwrap();
        let heat = image::load_from_memory(&png).unwrap().into_luma8();
        let region = map.region_px;
        let (mut inside, mut outside) = ((0.0, 0), (0.0, 0));
        for (x, y, p) in heat.enumerate_pixels() {
            let (px, py) = (x * region, y * region);
            let cell = if (256..352).contains(&px) && (256..352).contains(&py) {
                &mut inside
            } else {
                &mut outside
            };
            cell.0 += f64::from(p.0[0]) / 255.0;
            cell.1 += 1;
        }
        (
            inside.0 / f64::from(inside.1),
            outside.0 / f64::from(outside.1),
        )
    }
}
