//! "Stealth pnginfo": generation parameters hidden in the least significant bits of the alpha
//! channel (AUTOMATIC1111's stealth extension, NovelAI's images).
//!
//! The bits are read column by column (x outer, y inner), most significant bit first: a
//! 15-byte signature (`stealth_pnginfo` plain, `stealth_pngcomp` gzip), a 32-bit length in bits,
//! then the data.

use crate::decode::Pixels;
use crate::metadata::MAX_TEXT;

/// What the alpha channel hides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StealthInfo {
    /// The signature found.
    pub signature: &'static str,
    /// The hidden text (at most [`MAX_TEXT`] bytes).
    pub text: String,
}

const SIGNATURES: [(&str, bool); 2] = [("stealth_pnginfo", false), ("stealth_pngcomp", true)];

/// Reads stealth generation data from the alpha channel, if there is any.
pub fn read_stealth(pixels: &Pixels) -> Option<StealthInfo> {
    let alpha = pixels.alpha.as_ref()?;
    let (w, h) = (pixels.width, pixels.height);
    let total = w.checked_mul(h)?;
    if alpha.len() < total {
        return None;
    }
    let bit = |i: usize| -> u8 {
        // Column-major order.
        let (x, y) = (i / h, i % h);
        alpha.get(y * w + x).map_or(0, |a| a & 1)
    };
    let byte = |at: usize| -> Option<u8> {
        if at + 8 > total {
            return None;
        }
        Some((0..8).fold(0u8, |acc, k| (acc << 1) | bit(at + k)))
    };
    let mut signature = [0u8; 15];
    for (k, slot) in signature.iter_mut().enumerate() {
        *slot = byte(k * 8)?;
    }
    let (name, compressed) = SIGNATURES
        .iter()
        .find(|(s, _)| s.as_bytes() == signature)
        .copied()?;
    let mut length_bits = 0u32;
    for k in 0..4 {
        length_bits = (length_bits << 8) | u32::from(byte(120 + k * 8)?);
    }
    let length = usize::try_from(length_bits / 8).ok()?.min(MAX_TEXT);
    let start = 120 + 32;
    let mut data = Vec::with_capacity(length.min(total / 8));
    for k in 0..length {
        data.push(byte(start + k * 8)?);
    }
    let data = if compressed {
        crate::metadata::gunzip(&data)?
    } else {
        data
    };
    Some(StealthInfo {
        signature: name,
        text: String::from_utf8_lossy(&data).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_a1111_stealth_fixture_hides_generation_parameters() {
        let bytes = std::fs::read(format!(
            "{}/../../tests/fixtures/genmeta/automatic1111_stealth.png",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let image = image::load_from_memory(&bytes).unwrap();
        let pixels = crate::decode::from_image(image);
        let info = read_stealth(&pixels).expect("stealth data");
        assert_eq!(info.signature, "stealth_pngcomp");
        assert!(info.text.contains("Steps: "), "{}", info.text);
    }

    #[test]
    fn an_opaque_image_hides_nothing() {
        let pixels = Pixels {
            width: 64,
            height: 64,
            luma: vec![0; 4096],
            alpha: Some(vec![255; 4096]),
        };
        assert_eq!(read_stealth(&pixels), None);
    }
}
