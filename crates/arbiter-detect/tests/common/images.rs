//! Image files written byte by byte for tests: PNG chunks and TIFF structures (strips or tiles,
//! interleaved or separate colour planes, 8 or 16 bits), so that layouts no encoder in the
//! dependency tree writes can be tested without sample files.
#![allow(dead_code)]

/// Appends one PNG chunk (the CRC is not checked by any reader here, and is left zero).
pub fn png_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend((data.len() as u32).to_be_bytes());
    png.extend(kind);
    png.extend(data);
    png.extend([0; 4]);
}

/// The chunks of a PNG file: (type, data).
pub fn png_chunks(png: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut chunks = Vec::new();
    let mut at = 8;
    while at + 8 <= png.len() {
        let length = u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]) as usize;
        let kind = [png[at + 4], png[at + 5], png[at + 6], png[at + 7]];
        let end = (at + 8 + length).min(png.len());
        chunks.push((kind, png[at + 8..end].to_vec()));
        at = end + 4;
    }
    chunks
}

/// `png` with `extra` chunks inserted before its first IDAT.
pub fn png_with_chunks_before_idat(png: &[u8], extra: &[([u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut out = png[..8].to_vec();
    let mut inserted = false;
    for (kind, data) in png_chunks(png) {
        if &kind == b"IDAT" && !inserted {
            for (k, d) in extra {
                png_chunk(&mut out, k, d);
            }
            inserted = true;
        }
        png_chunk(&mut out, &kind, &data);
    }
    out
}

/// A TIFF file's layout, written uncompressed.
#[derive(Debug, Clone, Copy)]
pub struct Tiff {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bits per sample: 8 or 16.
    pub bits: u16,
    /// Samples per pixel: 1 (grey) or 3 (RGB).
    pub samples: u16,
    /// PlanarConfiguration: 1 (interleaved) or 2 (separate planes).
    pub planar: u16,
    /// Square tiles of this size, or one strip per plane when `None`.
    pub tile: Option<u32>,
    /// Big-endian ("MM") instead of little-endian ("II").
    pub big_endian: bool,
}

impl Tiff {
    /// An 8-bit RGB image of this size, in strips, interleaved.
    pub fn rgb(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            bits: 8,
            samples: 3,
            planar: 1,
            tile: None,
            big_endian: false,
        }
    }

    /// The sample value of channel `c` at (x, y), at full scale for the bit depth.
    pub fn sample(&self, x: u32, y: u32, c: u32) -> u16 {
        let v8 = ((x * 3 + y * 5 + c * 60) % 256) as u16;
        if self.bits == 16 { v8 * 257 } else { v8 }
    }

    /// The file.
    pub fn write(&self) -> Vec<u8> {
        let bytes_per_sample = usize::from(self.bits / 8);
        let planes = if self.planar == 2 {
            u32::from(self.samples)
        } else {
            1
        };
        let per_chunk_samples = if self.planar == 2 {
            1
        } else {
            u32::from(self.samples)
        };
        // Chunks, plane by plane: (x0, y0, width, height) of each region.
        let (cw, ch) = match self.tile {
            Some(t) => (t, t),
            None => (self.width, self.height),
        };
        let across = self.width.div_ceil(cw);
        let down = self.height.div_ceil(ch);
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        for plane in 0..planes {
            for ty in 0..down {
                for tx in 0..across {
                    let mut data = Vec::new();
                    // Tiles are always full size (padded); strips end with the image.
                    let rows = if self.tile.is_some() {
                        ch
                    } else {
                        ch.min(self.height - ty * ch)
                    };
                    for row in 0..rows {
                        for col in 0..cw {
                            let (x, y) = (tx * cw + col, ty * ch + row);
                            for s in 0..per_chunk_samples {
                                let c = if self.planar == 2 { plane } else { s };
                                let v = if x < self.width && y < self.height {
                                    self.sample(x, y, c)
                                } else {
                                    0
                                };
                                if bytes_per_sample == 2 {
                                    data.extend(self.u16(v));
                                } else {
                                    data.push(v as u8);
                                }
                            }
                        }
                    }
                    chunks.push(data);
                }
            }
        }

        let tiled = self.tile.is_some();
        let n = chunks.len() as u32;
        // Entries: (tag, type, values).
        let mut entries: Vec<(u16, u16, Vec<u32>)> = vec![
            (256, 4, vec![self.width]),
            (257, 4, vec![self.height]),
            (
                258,
                3,
                vec![u32::from(self.bits); usize::from(self.samples)],
            ),
            (259, 3, vec![1]),
            (262, 3, vec![if self.samples >= 3 { 2 } else { 1 }]),
        ];
        if !tiled {
            entries.push((273, 4, vec![0; n as usize]));
        }
        entries.push((277, 3, vec![u32::from(self.samples)]));
        if !tiled {
            entries.push((278, 4, vec![ch]));
            entries.push((279, 4, chunks.iter().map(|c| c.len() as u32).collect()));
        }
        entries.push((284, 3, vec![u32::from(self.planar)]));
        if let Some(t) = self.tile {
            entries.push((322, 4, vec![t]));
            entries.push((323, 4, vec![t]));
            entries.push((324, 4, vec![0; n as usize]));
            entries.push((325, 4, chunks.iter().map(|c| c.len() as u32).collect()));
        }

        // Layout: header, IFD, out-of-line values, then the chunks.
        let ifd_len = 2 + entries.len() * 12 + 4;
        let value_len = |(_, ty, values): &(u16, u16, Vec<u32>)| {
            let size = if *ty == 3 { 2 } else { 4 } * values.len();
            if size > 4 { size } else { 0 }
        };
        let values_len: usize = entries.iter().map(value_len).sum();
        let data_start = (8 + ifd_len + values_len) as u32;
        let mut offsets = Vec::new();
        let mut at = data_start;
        for c in &chunks {
            offsets.push(at);
            at += c.len() as u32;
        }
        for entry in &mut entries {
            if entry.0 == 273 || entry.0 == 324 {
                entry.2 = offsets.clone();
            }
        }

        let mut out = if self.big_endian {
            b"MM\0*".to_vec()
        } else {
            b"II*\0".to_vec()
        };
        out.extend(self.u32(8));
        out.extend(self.u16(entries.len() as u16));
        let mut extra = Vec::new();
        let extra_start = 8 + ifd_len;
        for (tag, ty, values) in &entries {
            out.extend(self.u16(*tag));
            out.extend(self.u16(*ty));
            out.extend(self.u32(values.len() as u32));
            let mut encoded = Vec::new();
            for v in values {
                if *ty == 3 {
                    encoded.extend(self.u16(*v as u16));
                } else {
                    encoded.extend(self.u32(*v));
                }
            }
            if encoded.len() <= 4 {
                encoded.resize(4, 0);
                out.extend(encoded);
            } else {
                out.extend(self.u32((extra_start + extra.len()) as u32));
                extra.extend(encoded);
            }
        }
        out.extend([0; 4]);
        out.extend(extra);
        assert_eq!(out.len() as u32, data_start);
        for c in chunks {
            out.extend(c);
        }
        out
    }

    fn u16(&self, v: u16) -> [u8; 2] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
}
