//! Intake: the checks every image passes before a detector sees it.
//!
//! The exact bytes are hashed (SHA-256), the format is sniffed from magic bytes, and the
//! dimensions are read from the header without decoding pixels. Size and dimension limits are
//! enforced here, so every detector can rely on them.

use crate::sniff::{SniffError, dimensions, sniff_format};
use arbiter_core::{DetectError, ErrorCode, ImageInfo, MediaInput};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// The limits intake enforces. Operators tune these in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeLimits {
    /// The largest accepted file, in bytes (the guide: 20 MB).
    pub max_bytes: u64,
    /// The smallest accepted width and height, in pixels (the guide: 100x100).
    pub min_dimension: u32,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024,
            min_dimension: 100,
        }
    }
}

/// Why an image was refused at intake.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The file is larger than the limit.
    #[error("file is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not an accepted format.
    #[error(transparent)]
    Unsupported(SniffError),
    /// The header is truncated or corrupt.
    #[error(transparent)]
    Corrupt(SniffError),
    /// The image is smaller than the minimum.
    #[error("image is {width}x{height}; dimensions must be at least {min}x{min} pixels")]
    TooSmall {
        /// Width read from the header.
        width: u32,
        /// Height read from the header.
        height: u32,
        /// The minimum.
        min: u32,
    },
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
}

impl IntakeError {
    /// The API error code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            IntakeError::TooLarge { .. } => ErrorCode::FileSizeExceeded,
            IntakeError::Unsupported(_) => ErrorCode::UnsupportedFormat,
            IntakeError::Corrupt(_) => ErrorCode::InvalidImage,
            IntakeError::TooSmall { .. } => ErrorCode::ImageTooSmall,
            IntakeError::Io(_) => ErrorCode::InvalidRequest,
        }
    }
}

impl From<IntakeError> for DetectError {
    fn from(err: IntakeError) -> Self {
        DetectError::input(err.code(), err.to_string())
    }
}

/// Checks an image's bytes and returns them with what intake read from them.
pub fn intake(
    bytes: impl Into<Arc<[u8]>>,
    limits: &IntakeLimits,
) -> Result<MediaInput, IntakeError> {
    let bytes: Arc<[u8]> = bytes.into();
    let size = bytes.len() as u64;
    if size > limits.max_bytes {
        return Err(IntakeError::TooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    let format = sniff_format(&bytes).map_err(IntakeError::Unsupported)?;
    let (width, height) = dimensions(format, &bytes).map_err(IntakeError::Corrupt)?;
    if width < limits.min_dimension || height < limits.min_dimension {
        return Err(IntakeError::TooSmall {
            width,
            height,
            min: limits.min_dimension,
        });
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let info = ImageInfo {
        width,
        height,
        format,
        file_size_bytes: size,
        sha256,
    };
    Ok(MediaInput { bytes, info })
}

/// Reads a file and runs [`intake`] on it; a file over the size limit is refused before it is read.
pub async fn intake_file(path: &Path, limits: &IntakeLimits) -> Result<MediaInput, IntakeError> {
    let size = tokio::fs::metadata(path).await?.len();
    if size > limits.max_bytes {
        return Err(IntakeError::TooLarge {
            size,
            limit: limits.max_bytes,
        });
    }
    let bytes = tokio::fs::read(path).await?;
    intake(bytes, limits)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PNG signature and IHDR of the given size (enough for intake; not decodable).
    pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend(width.to_be_bytes());
        b.extend(height.to_be_bytes());
        b.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
        // An empty IDAT chunk: intake needs the chunks up to the image data.
        b.extend(b"\0\0\0\0IDAT\0\0\0\0");
        b
    }

    #[test]
    fn accepts_a_valid_image_and_hashes_its_exact_bytes() {
        let bytes = png(640, 480);
        let input = intake(bytes.clone(), &IntakeLimits::default()).unwrap();
        assert_eq!(input.info.width, 640);
        assert_eq!(input.info.height, 480);
        assert_eq!(input.info.file_size_bytes, bytes.len() as u64);
        assert_eq!(input.info.sha256, hex::encode(Sha256::digest(&bytes)));
    }

    #[test]
    fn each_refusal_has_its_api_code() {
        let limits = IntakeLimits {
            max_bytes: 64,
            min_dimension: 100,
        };
        let code = |bytes: Vec<u8>| intake(bytes, &limits).unwrap_err().code();
        assert_eq!(code(vec![0; 65]), ErrorCode::FileSizeExceeded);
        assert_eq!(code(b"GIF89a".to_vec()), ErrorCode::UnsupportedFormat);
        assert_eq!(code(Vec::new()), ErrorCode::UnsupportedFormat);
        assert_eq!(code(png(99, 400)), ErrorCode::ImageTooSmall);
        assert_eq!(code(png(640, 480)[..18].to_vec()), ErrorCode::InvalidImage);
    }

    #[test]
    fn the_size_message_names_both_numbers() {
        let err = intake(png(10, 10), &IntakeLimits::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image is 10x10; dimensions must be at least 100x100 pixels"
        );
    }
}
