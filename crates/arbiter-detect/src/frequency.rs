//! The frequency model: periodic artefacts of upsampling in the spectrum of a luminance residual.
//!
//! A generator that upsamples by 2x, 4x or 8x (or stitches 64-pixel tiles) leaves a periodic
//! pattern in the high-pass residual of its output, which shows as a peak at that period in the
//! power spectrum. The model takes the central crop (at most 512x512, native resolution: a
//! resized copy would move the peaks), computes the magnitude of the residual `|p - (left + right) / 2|` along rows
//! and columns (interpolation makes the residual's variance periodic), averages the Hann-windowed row and column power spectra, and measures each
//! candidate period's peak against the median of its neighbourhood. In a JPEG the 8x8 block grid
//! produces peaks at periods 8, 4 and 2 by itself, so those periods are not counted for JPEG
//! files (the detail says so).
//!
//! The score is uncalibrated: it is reported, it never decides a verdict.

use crate::decode::Pixels;
use arbiter_core::{ModelLabel, ModelResult};

/// Periods (in pixels) whose peaks are measured.
const PERIODS: [usize; 9] = [2, 3, 4, 5, 6, 8, 16, 32, 64];
/// A peak this many times its neighbourhood's median power counts as an artefact (13 dB).
pub const PEAK_RATIO: f64 = 20.0;
/// The largest crop side analysed.
const MAX_SIDE: usize = 512;

/// Runs the frequency model.
pub fn analyze(pixels: &Pixels, is_jpeg: bool) -> ModelResult {
    let side = largest_power_of_two(pixels.width.min(pixels.height).min(MAX_SIDE));
    if side < 64 {
        return ModelResult::not_run("not run: the image is too small for a spectrum");
    }
    let (x0, y0) = ((pixels.width - side) / 2, (pixels.height - side) / 2);
    let window: Vec<f32> = (0..side)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / side as f32).cos())
        .collect();
    let twiddles = Twiddles::new(side);
    let mut power = vec![0f64; side / 2 + 1];
    let mut re = vec![0f32; side];
    let mut im = vec![0f32; side];
    let mut line = vec![0u8; side + 2];
    // Lines are taken two at a time: one as the real part, one as the imaginary part of a single
    // complex FFT, their spectra separated afterwards.
    for direction in 0..2 {
        for pair in (0..side).step_by(2) {
            for (slot, offset) in [(0usize, 0usize), (1, 1)] {
                let index = pair + offset;
                // The line with one pixel of context on each side (clamped at the image edge).
                for (i, value) in line.iter_mut().enumerate() {
                    let along = (i as isize - 1).max(0) as usize;
                    *value = if direction == 0 {
                        let x = (x0 + along).min(pixels.width - 1);
                        pixels.at(x, y0 + index)
                    } else {
                        let y = (y0 + along).min(pixels.height - 1);
                        pixels.at(x0 + index, y)
                    };
                }
                let target = if slot == 0 { &mut re } else { &mut im };
                // The magnitude of the residual: interpolation makes its *variance* periodic
                // (a signed residual of random content has a flat spectrum).
                let mut sum = 0f32;
                for (i, t) in target.iter_mut().enumerate() {
                    let (l, c, r) = (line[i], line[i + 1], line[i + 2]);
                    *t = (f32::from(c) - 0.5 * (f32::from(l) + f32::from(r))).abs();
                    sum += *t;
                }
                let mean = sum / side as f32;
                for (t, w) in target.iter_mut().zip(&window) {
                    *t = (*t - mean) * w;
                }
            }
            fft(&mut re, &mut im, &twiddles);
            for (k, p) in power.iter_mut().enumerate() {
                let j = (side - k) % side;
                let (zr, zi, cr, ci) = (re[k], im[k], re[j], -im[j]);
                // A = (Z(k) + conj Z(N-k)) / 2, B = (Z(k) - conj Z(N-k)) / 2i.
                let (ar, ai) = (0.5 * (zr + cr), 0.5 * (zi + ci));
                let (br, bi) = (0.5 * (zi - ci), -0.5 * (zr - cr));
                *p += f64::from(ar * ar + ai * ai + br * br + bi * bi);
            }
        }
    }
    let mut strongest: Option<(usize, f64)> = None;
    let mut measured = Vec::new();
    for period in PERIODS {
        if is_jpeg && 8 % period == 0 {
            continue;
        }
        if period * 4 > side {
            continue;
        }
        let k = side / period;
        let ratio = peak_ratio(&power, k);
        measured.push(period);
        if strongest.is_none_or(|(_, r)| ratio > r) {
            strongest = Some((period, ratio));
        }
    }
    let Some((period, ratio)) = strongest else {
        return ModelResult::not_run("not run: no period could be measured");
    };
    let score = ((ratio.max(1.0).log10() - 0.5) / 1.5).clamp(0.0, 1.0);
    let grid = if is_jpeg {
        "; periods 2, 4 and 8 px are left out because the JPEG 8x8 grid produces them"
    } else {
        ""
    };
    let list = measured
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let db = 10.0 * ratio.max(1e-9).log10();
    if ratio >= PEAK_RATIO {
        ModelResult::ran(
            score,
            ModelLabel::Suspicious,
            format!(
                "Periodic frequency artifacts detected at {period}px intervals ({db:.0} dB above the neighbouring spectrum, in the central {side}x{side} crop){grid}. Upsampling leaves such peaks; so do some textures and resizing. An uncalibrated statistic: it does not decide the verdict."
            ),
        )
    } else {
        ModelResult::ran(
            score,
            ModelLabel::Inconclusive,
            format!(
                "No periodic frequency artifacts at {list} px periods (strongest {period}px at {db:.0} dB, below the {:.0} dB threshold; central {side}x{side} crop){grid}. Not evidence of a capture either.",
                10.0 * PEAK_RATIO.log10()
            ),
        )
    }
}

fn largest_power_of_two(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

/// Power at bin `k` (its strongest neighbour within one bin) over the median of the bins 3 to
/// 12 away.
fn peak_ratio(power: &[f64], k: usize) -> f64 {
    let peak = (k.saturating_sub(1)..=k + 1)
        .filter_map(|i| power.get(i).copied())
        .fold(0.0, f64::max);
    let mut neighbours: Vec<f64> = (3..=12)
        .flat_map(|d| [k.checked_sub(d), Some(k + d)])
        .flatten()
        .filter(|i| *i > 0)
        .filter_map(|i| power.get(i).copied())
        .collect();
    if neighbours.is_empty() {
        return 1.0;
    }
    neighbours.sort_by(f64::total_cmp);
    let median = neighbours[neighbours.len() / 2];
    peak / median.max(1e-9)
}

/// The twiddle factors of an `n`-point FFT.
pub(crate) struct Twiddles {
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Twiddles {
    pub(crate) fn new(n: usize) -> Self {
        let angle = |k: usize| -2.0 * std::f64::consts::PI * k as f64 / n as f64;
        Self {
            cos: (0..n / 2).map(|k| angle(k).cos() as f32).collect(),
            sin: (0..n / 2).map(|k| angle(k).sin() as f32).collect(),
        }
    }
}

/// In-place iterative radix-2 FFT; `re.len()` is a power of two matching `twiddles`.
pub(crate) fn fft(re: &mut [f32], im: &mut [f32], twiddles: &Twiddles) {
    let n = re.len();
    if n < 2 || im.len() != n || twiddles.cos.len() != n / 2 {
        return;
    }
    let bits = n.trailing_zeros();
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if j > i {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let step = n / len;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let (c, s) = (twiddles.cos[k * step], twiddles.sin[k * step]);
                let (a, b) = (start + k, start + k + len / 2);
                let (tr, ti) = (re[b] * c - im[b] * s, re[b] * s + im[b] * c);
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
        }
        len <<= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixels(width: usize, height: usize, f: impl Fn(usize, usize) -> u8) -> Pixels {
        let luma = (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .map(|(x, y)| f(x, y))
            .collect();
        Pixels {
            width,
            height,
            luma,
            alpha: None,
        }
    }

    fn noise(x: usize, y: usize) -> u8 {
        // A deterministic hash: white-ish noise.
        let mut h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 32;
        (h % 64) as u8 + 96
    }

    #[test]
    fn the_fft_finds_a_pure_tone() {
        let mut re: Vec<f32> = (0..64)
            .map(|i| (2.0 * std::f32::consts::PI * 8.0 * i as f32 / 64.0).cos())
            .collect();
        let mut im = vec![0.0; 64];
        fft(&mut re, &mut im, &Twiddles::new(64));
        let peak = (0..32)
            .max_by(|a, b| re[*a].abs().total_cmp(&re[*b].abs()))
            .unwrap();
        assert_eq!(peak, 8);
    }

    #[test]
    fn a_4x_nearest_upsampled_image_shows_a_peak_and_noise_does_not() {
        let up = pixels(512, 512, |x, y| noise(x / 4, y / 4));
        let result = analyze(&up, false);
        assert_eq!(result.label, ModelLabel::Suspicious, "{result:?}");
        assert!(result.detail.as_deref().unwrap().contains("px intervals"));

        let plain = pixels(512, 512, noise);
        let result = analyze(&plain, false);
        assert_eq!(result.label, ModelLabel::Inconclusive, "{result:?}");
    }

    #[test]
    fn a_64px_tiling_is_reported_at_64px() {
        let tiled = pixels(512, 512, |x, y| {
            noise(x, y) / 2 + if x % 64 == 0 || y % 64 == 0 { 100 } else { 0 }
        });
        let result = analyze(&tiled, true);
        assert_eq!(result.label, ModelLabel::Suspicious, "{result:?}");
        let detail = result.detail.unwrap();
        assert!(detail.contains("JPEG 8x8 grid"), "{detail}");
        assert!(detail.contains("at 64px intervals"), "{detail}");
    }
}
