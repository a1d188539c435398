//! The noise model: is the local noise level consistent across the image?
//!
//! A camera sensor leaves noise of a similar level everywhere (brighter and darker areas
//! differ a little); a region pasted from another image, or painted in, often has a different
//! level. Per block the noise is estimated with Immerkær's Laplacian-difference operator, made
//! robust to edges by taking the median absolute response (sigma = median / (0.6745 * 6)).
//! Blocks that are clipped (very dark or very bright) are left out. A block is an outlier when
//! its log noise level is more than [`OUTLIER_Z`] robust deviations from the image's median.
//! When most blocks have no measurable noise (rendered or flat content) nothing is compared.
//! SUSPICIOUS needs outliers in 2% to 25% of the blocks (a region, not the whole image).
//!
//! Large images are analysed on at most [`MAX_BLOCKS`] blocks spread evenly over the image. The
//! score is uncalibrated: it is reported, it never decides a verdict.

use crate::decode::Pixels;
use arbiter_core::{ModelLabel, ModelResult};

/// Side of a block, in pixels.
pub const BLOCK: usize = 32;
/// The most blocks measured.
pub const MAX_BLOCKS: usize = 2048;
/// Robust z-score beyond which a block's noise level stands out.
pub const OUTLIER_Z: f64 = 4.0;

/// Runs the noise model.
pub fn analyze(pixels: &Pixels) -> ModelResult {
    let (bw, bh) = (pixels.width / BLOCK, pixels.height / BLOCK);
    if bw * bh < 16 {
        return ModelResult::not_run("not run: the image has fewer than 16 blocks of 32x32 pixels");
    }
    // An even spread of at most MAX_BLOCKS blocks.
    let stride = ((bw * bh) as f64 / MAX_BLOCKS as f64)
        .sqrt()
        .ceil()
        .max(1.0) as usize;
    let mut blocks = Vec::new();
    let mut responses = Vec::with_capacity(BLOCK * BLOCK);
    for by in (0..bh).step_by(stride) {
        for bx in (0..bw).step_by(stride) {
            let (x0, y0) = (bx * BLOCK, by * BLOCK);
            responses.clear();
            let mut clipped = 0usize;
            for y in y0 + 1..y0 + BLOCK - 1 {
                let row = |dy: usize| {
                    let start = (y + dy - 1) * pixels.width + x0;
                    pixels.luma.get(start..start + BLOCK).unwrap_or(&[])
                };
                let (up, mid, down) = (row(0), row(1), row(2));
                if up.len() < BLOCK || mid.len() < BLOCK || down.len() < BLOCK {
                    continue;
                }
                for x in 1..BLOCK - 1 {
                    let p = |r: &[u8], dx: usize| i32::from(r[x + dx - 1]);
                    let v = p(mid, 1);
                    if !(4..=251).contains(&v) {
                        clipped += 1;
                    }
                    let r = p(up, 0) - 2 * p(up, 1) + p(up, 2) - 2 * p(mid, 0) + 4 * v
                        - 2 * p(mid, 2)
                        + p(down, 0)
                        - 2 * p(down, 1)
                        + p(down, 2);
                    responses.push(r.unsigned_abs());
                }
            }
            let n = responses.len();
            if clipped * 4 > n {
                continue;
            }
            let mid = n / 2;
            let (_, median, _) = responses.select_nth_unstable(mid);
            let sigma = f64::from(*median) / (0.6745 * 6.0);
            blocks.push(Block {
                x: x0,
                y: y0,
                sigma,
            });
        }
    }
    if blocks.len() < 16 {
        return ModelResult::ran(
            0.0,
            ModelLabel::Inconclusive,
            "Too few unclipped regions to compare noise levels.",
        );
    }
    let logs: Vec<f64> = blocks.iter().map(|b| (b.sigma + 0.25).ln()).collect();
    let median = median_of(&logs);
    let mad = median_of(&logs.iter().map(|l| (l - median).abs()).collect::<Vec<_>>());
    let scale = 1.4826 * mad + 0.05;
    let mut outliers: Vec<(f64, &Block)> = blocks
        .iter()
        .zip(&logs)
        .map(|(b, l)| ((l - median) / scale, b))
        .filter(|(z, _)| z.abs() > OUTLIER_Z)
        .collect();
    outliers.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
    let noiseless = blocks.iter().filter(|b| b.sigma < 0.3).count();
    let share = outliers.len() as f64 / blocks.len() as f64;
    let typical = median.exp() - 0.25;
    let score = (share * 5.0).clamp(0.0, 1.0);
    let mut detail = if outliers.is_empty() {
        format!(
            "Local noise level consistent across {} regions of {BLOCK}x{BLOCK} px (typical sigma {typical:.1} grey levels).",
            blocks.len()
        )
    } else {
        let regions = outliers
            .iter()
            .take(3)
            .map(|(z, b)| {
                let kind = if *z > 0.0 { "noisier" } else { "smoother" };
                format!("{kind} at x={} y={}", b.x, b.y)
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{} of {} regions of {BLOCK}x{BLOCK} px differ in noise level from the rest (typical sigma {typical:.1}): {regions}.",
            outliers.len(),
            blocks.len()
        )
    };
    detail.push_str(" An uncalibrated statistic: it does not decide the verdict.");
    let mostly_noiseless = noiseless * 2 > blocks.len();
    if mostly_noiseless {
        // With no noise to compare, "differs from the rest" says nothing about a region.
        return ModelResult::ran(
            0.0,
            ModelLabel::Inconclusive,
            format!(
                "{noiseless} of {} regions of {BLOCK}x{BLOCK} px have no measurable noise (rendered, heavily smoothed or flat content), so noise levels cannot be compared. No camera sensor noise pattern is visible; that alone does not show synthesis.",
                blocks.len()
            ),
        );
    }
    let label = if (0.02..=0.25).contains(&share) && outliers.len() >= 4 {
        ModelLabel::Suspicious
    } else {
        ModelLabel::Inconclusive
    };
    ModelResult::ran(score, label, detail)
}

struct Block {
    x: usize,
    y: usize,
    sigma: f64,
}

fn median_of(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(x: usize, y: usize, amplitude: u64) -> u8 {
        let mut h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 32;
        (128 + h % (2 * amplitude + 1) - amplitude) as u8
    }

    fn image(f: impl Fn(usize, usize) -> u8) -> Pixels {
        let (width, height) = (512, 384);
        Pixels {
            width,
            height,
            luma: (0..height)
                .flat_map(|y| (0..width).map(move |x| (x, y)))
                .map(|(x, y)| f(x, y))
                .collect(),
            alpha: None,
        }
    }

    #[test]
    fn uniform_noise_is_consistent_and_a_smooth_patch_stands_out() {
        let result = analyze(&image(|x, y| noise(x, y, 6)));
        assert_eq!(result.label, ModelLabel::Inconclusive, "{result:?}");
        assert!(result.detail.unwrap().contains("consistent"));

        let patched = analyze(&image(|x, y| {
            if (128..256).contains(&x) && (128..256).contains(&y) {
                noise(x, y, 0)
            } else {
                noise(x, y, 6)
            }
        }));
        assert_eq!(patched.label, ModelLabel::Suspicious, "{patched:?}");
        assert!(patched.detail.unwrap().contains("smoother at x="));
    }
}
