//! Reading a `POST /v1/analyze/batch` body without holding it in memory, so a server's memory
//! does not grow with the size of the batches it takes.
//!
//! The body is spooled to a temporary file in `<data_dir>/batches/` as it arrives (refused past
//! `jobs.max_batch_body_bytes`, and with 503 while the bodies there take
//! `jobs.max_spooled_bytes`). A first pass reads everything but the images (`options`,
//! `webhook_url`, `batch_reference_id`, and how many images there are, found without parsing
//! them), so the batch can be checked against the plan before anything is written; a second pass
//! parses the images one at a time and hands them over in chunks, which are written as jobs
//! inside one transaction while the next chunk is parsed.
//!
//! On SQLite (one node) the body file is kept in the data directory (`batches/<batch_id>.json`)
//! while the batch is worked, and each job names its image's byte range in it: the images are
//! not copied into the database (the kept bodies are [`crate::kept_bodies`], where the jobs
//! read them back). On PostgreSQL, whose replicas share the jobs but not a disk, the images are
//! written into the database.
//!
//! Nothing here knows HTTP: the body comes as a stream of byte chunks, and the refusals are a
//! [`BodyError`], which the server turns into its error body.

use crate::kept_bodies::{bodies_on_disk, kept_dir};
use crate::queue::{BatchSubmission, Chunks, JobSource, NewImage};
use arbiter_core::ErrorCode;
use arbiter_engine::EngineError;
use arbiter_engine::analyze::{RequestOptions, check_reference_id, parse_options};
use arbiter_engine::intake::{RequestLimits, check_encoded_size};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;
use tempfile::NamedTempFile;
use tokio::sync::mpsc;

/// Images handed over at a time by the second pass.
pub const CHUNK: usize = 16;

/// The top-level fields of a batch request, besides its images.
const FIELDS: &[&str] = &["images", "options", "webhook_url", "batch_reference_id"];

/// How long a caller is asked to wait when the batch bodies on disk take all their room.
pub const FULL_RETRY_SECS: u64 = 30;

/// Why a batch body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body could not be read, or is not a batch request (400 `INVALID_REQUEST`); the
    /// message names what is wrong and where.
    #[error("{0}")]
    Invalid(String),
    /// The body is larger than `jobs.max_batch_body_bytes` (413 `FILE_SIZE_EXCEEDED`).
    #[error(
        "the request body is larger than the {limit}-byte limit \
         (jobs.max_batch_body_bytes); split the batch or send image_url"
    )]
    TooLarge {
        /// `jobs.max_batch_body_bytes`.
        limit: u64,
    },
    /// The batch bodies on disk take all the room they may (`jobs.max_spooled_bytes`): 503,
    /// with `Retry-After` of [`FULL_RETRY_SECS`].
    #[error(
        "the batches waiting to be analysed take all the room for batch bodies \
         (jobs.max_spooled_bytes: {room}); try again in {FULL_RETRY_SECS} s"
    )]
    Full {
        /// `jobs.max_spooled_bytes`.
        room: u64,
    },
    /// The spooled body could not be written or read back (500; the cause is logged, never
    /// shown).
    #[error("batch body: {0}")]
    Internal(String),
}

impl BodyError {
    /// The stable code the refusal is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::InvalidRequest,
            Self::TooLarge { .. } => ErrorCode::FileSizeExceeded,
            Self::Full { .. } => ErrorCode::ServiceUnavailable,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }

    /// Seconds the caller is asked to wait before trying again, when there are any.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Full { .. } => Some(FULL_RETRY_SECS),
            _ => None,
        }
    }

    fn internal(cause: impl fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }
}

/// One image of a batch: exactly one of `image_url` and `image_base64`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchImage {
    /// A URL Arbiter fetches the image from (http or https).
    #[serde(default)]
    #[schema(nullable = false, pattern = "^https?://[^/?#]+")]
    pub image_url: Option<String>,
    /// The image, base64-encoded (standard alphabet, padded; a `data:` URL prefix is allowed).
    #[serde(default)]
    #[schema(
        nullable = false,
        pattern = "^(data:[^;,]*;base64,)?([A-Za-z0-9+/]{4})*([A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$"
    )]
    pub image_base64: Option<String>,
    /// Your identifier for this image, echoed in its result: 1 to 128 letters, digits and
    /// `. _ - : / @ #`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._\\-:/@#]+$")]
    pub reference_id: Option<String>,
}

/// Everything in a batch request but the images themselves.
#[derive(Debug, Default)]
pub struct Header {
    /// How many images there are.
    pub images: usize,
    /// `options`.
    pub options: Option<RequestOptions>,
    /// `webhook_url`.
    pub webhook_url: Option<String>,
    /// `batch_reference_id`.
    pub batch_reference_id: Option<String>,
}

impl Header {
    /// Checks the header against the caller's plan (at most `batch_size` images, `plan` naming
    /// it in the refusal) and the request rules. Whether `webhook_url` may be reached is the
    /// caller's to check.
    pub fn submission(
        self,
        batch_size: usize,
        plan: &str,
        max_reference_id_len: usize,
    ) -> Result<BatchSubmission, EngineError> {
        if self.images == 0 {
            return Err(EngineError::invalid(
                "images is empty; send 1 or more images",
            ));
        }
        if self.images > batch_size {
            return Err(EngineError::invalid(format!(
                "the batch has {} images; this key's plan ({plan}) allows at most {batch_size} per batch",
                self.images
            )));
        }
        let options = self.options.unwrap_or_default();
        if options.webhook_url.is_some() {
            return Err(EngineError::invalid(
                "give a batch's webhook_url at the top level, not in options",
            ));
        }
        let options = parse_options(options)?;
        if let Some(reference) = &self.batch_reference_id {
            check_reference_id(reference, max_reference_id_len)
                .map_err(|err| EngineError::invalid(format!("batch_reference_id: {err}")))?;
        }
        Ok(BatchSubmission {
            images: self.images,
            options,
            webhook_url: self.webhook_url,
            batch_reference_id: self.batch_reference_id,
        })
    }
}

/// Checks one image of a batch, a base64 image's size before it is decoded (413, as
/// `POST /v1/analyze`). With the image's byte range in a kept body, the job reads it from there.
pub fn check_image(
    index: usize,
    image: BatchImage,
    limits: RequestLimits,
    kept: Option<Range<u64>>,
) -> Result<NewImage, EngineError> {
    if let Some(encoded) = &image.image_base64 {
        check_encoded_size(encoded, limits.max_image_bytes).map_err(|err| {
            EngineError::refused(
                err.code(),
                format!("images[{index}]: {}", err.caller_message()),
            )
        })?;
    }
    let source = match (image.image_url, image.image_base64, kept) {
        (Some(_), None, Some(range)) | (None, Some(_), Some(range)) => JobSource::Kept {
            start: range.start,
            end: range.end,
        },
        (Some(url), None, None) => JobSource::Url(url),
        (None, Some(encoded), None) => JobSource::Base64(encoded),
        _ => {
            return Err(EngineError::invalid(format!(
                "images[{index}]: send exactly one of image_url and image_base64"
            )));
        }
    };
    if let Some(reference) = &image.reference_id {
        check_reference_id(reference, limits.max_reference_id_len)
            .map_err(|err| EngineError::invalid(format!("images[{index}].reference_id: {err}")))?;
    }
    Ok(NewImage {
        source,
        reference_id: image.reference_id,
    })
}

/// Writes the body, a stream of byte chunks, to a temporary file in the kept bodies' directory
/// of the data directory, refusing it past `limit` bytes ([`BodyError::TooLarge`]), or when the
/// bodies on disk there would pass `room` bytes ([`BodyError::Full`]). The file is removed when
/// dropped unless kept with [`crate::kept_bodies::keep`].
pub async fn spool<S, B, E>(
    body: S,
    limit: u64,
    data_dir: &Path,
    room: u64,
) -> Result<NamedTempFile, BodyError>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: fmt::Display,
{
    let used = bodies_on_disk(data_dir);
    if used >= room {
        return Err(BodyError::Full { room });
    }
    let left = room - used;
    let dir = kept_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(BodyError::internal)?;
    let spooled = NamedTempFile::new_in(dir).map_err(BodyError::internal)?;
    let file = spooled.as_file().try_clone().map_err(BodyError::internal)?;
    let mut writer = tokio::fs::File::from_std(file);
    let mut stream = std::pin::pin!(body);
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|err| BodyError::Invalid(format!("cannot read the request body: {err}")))?;
        let chunk = chunk.as_ref();
        size += chunk.len() as u64;
        if size > limit {
            return Err(BodyError::TooLarge { limit });
        }
        if size > left {
            return Err(BodyError::Full { room });
        }
        tokio::io::AsyncWriteExt::write_all(&mut writer, chunk)
            .await
            .map_err(BodyError::internal)?;
    }
    let mut file = writer.into_std().await;
    file.flush().map_err(BodyError::internal)?;
    Ok(spooled)
}

fn malformed(what: impl fmt::Display, at: u64) -> BodyError {
    BodyError::Invalid(format!("invalid JSON body: {what} (at byte {at})"))
}

/// Bytes read from the spooled body at a time.
const BLOCK: usize = 256 * 1024;

/// A window over the spooled body: it is read in blocks, and the value being looked at is kept
/// whole in memory (one image at most), so memory does not grow with the body.
///
/// The window only finds where each value ends (strings, nesting); the values themselves are
/// parsed, and so checked, by `serde_json`.
struct Window {
    file: File,
    buf: Vec<u8>,
    /// The first byte not yet consumed.
    start: usize,
    /// The end of the bytes read.
    end: usize,
    /// The body offset of `buf[0]`.
    offset: u64,
}

impl Window {
    fn new(file: &File) -> Result<Self, BodyError> {
        let mut file = file.try_clone().map_err(BodyError::internal)?;
        file.seek(SeekFrom::Start(0)).map_err(BodyError::internal)?;
        Ok(Self {
            file,
            buf: Vec::new(),
            start: 0,
            end: 0,
            offset: 0,
        })
    }

    /// Where the next byte is in the body.
    fn position(&self) -> u64 {
        self.offset + self.start as u64
    }

    /// Reads another block, keeping the bytes not yet consumed; `false` at the end of the body.
    fn fill(&mut self) -> Result<bool, BodyError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.offset += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < self.end + BLOCK {
            self.buf.resize(self.end + BLOCK, 0);
        }
        let read = self
            .file
            .read(&mut self.buf[self.end..])
            .map_err(BodyError::internal)?;
        self.end += read;
        Ok(read > 0)
    }

    /// The next byte that is not whitespace, left unconsumed; `None` at the end of the body.
    fn peek(&mut self) -> Result<Option<u8>, BodyError> {
        loop {
            while self.start < self.end {
                let byte = self.buf[self.start];
                if !matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
                    return Ok(Some(byte));
                }
                self.start += 1;
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Consumes `byte`, the next one that is not whitespace, or fails naming `expected`.
    fn expect(&mut self, byte: u8, expected: &str) -> Result<(), BodyError> {
        if self.peek()? == Some(byte) {
            self.start += 1;
            Ok(())
        } else {
            Err(malformed(
                format_args!("expected {expected}"),
                self.position(),
            ))
        }
    }

    /// Consumes the next value and returns its bytes.
    fn take(&mut self) -> Result<&[u8], BodyError> {
        self.peek()?;
        let mut scan = Scan::default();
        let mut scanned = 0;
        let len = loop {
            if let Some(len) = scan.feed(&self.buf[self.start + scanned..self.end]) {
                break scanned + len;
            }
            scanned = self.end - self.start;
            if !self.fill()? {
                break scan.ended_by_eof(scanned, self.position())?;
            }
        };
        let value = self.start..self.start + len;
        self.start += len;
        Ok(&self.buf[value])
    }

    /// Parses the next value as a `T`.
    fn parse<T: serde::de::DeserializeOwned>(
        &mut self,
        what: impl fmt::Display,
    ) -> Result<T, BodyError> {
        let at = self.position();
        serde_json::from_slice(self.take()?)
            .map_err(|err| malformed(format_args!("{what}: {err}"), at))
    }

    /// Walks an array, calling `each` to consume each element.
    fn array<X: From<BodyError>>(
        &mut self,
        expected: &str,
        mut each: impl FnMut(&mut Self) -> Result<(), X>,
    ) -> Result<(), X> {
        if self.peek()? != Some(b'[') {
            return Err(malformed(
                format_args!("invalid type: expected {expected}"),
                self.position(),
            )
            .into());
        }
        self.start += 1;
        if self.peek()? == Some(b']') {
            self.start += 1;
            return Ok(());
        }
        loop {
            each(self)?;
            match self.peek()? {
                Some(b',') => self.start += 1,
                Some(b']') => {
                    self.start += 1;
                    return Ok(());
                }
                _ => return Err(malformed("expected `,` or `]`", self.position()).into()),
            }
        }
    }

    /// Walks the body's top-level object, calling `field` with each name to consume its value,
    /// and checks nothing follows it.
    fn object<X: From<BodyError>>(
        &mut self,
        mut field: impl FnMut(&str, &mut Self) -> Result<(), X>,
    ) -> Result<(), X> {
        if self.peek()? != Some(b'{') {
            return Err(malformed(
                "invalid type: expected a batch request object",
                self.position(),
            )
            .into());
        }
        self.start += 1;
        if self.peek()? == Some(b'}') {
            self.start += 1;
        } else {
            loop {
                let name: String = self.parse("a field name")?;
                self.expect(b':', "`:`")?;
                field(&name, self)?;
                match self.peek()? {
                    Some(b',') => self.start += 1,
                    Some(b'}') => {
                        self.start += 1;
                        break;
                    }
                    _ => return Err(malformed("expected `,` or `}`", self.position()).into()),
                }
            }
        }
        match self.peek()? {
            None => Ok(()),
            Some(_) => Err(malformed("trailing characters", self.position()).into()),
        }
    }
}

/// Finds where a JSON value ends, fed its bytes a block at a time.
#[derive(Debug, Default)]
struct Scan {
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// Inside a number, `true`, `false` or `null`.
    scalar: bool,
}

impl Scan {
    /// Scans the next bytes of the value; `Some(n)` when it ends after `n` of them.
    fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                i += memchr::memchr2(b'"', b'\\', &bytes[i..])?;
                if bytes[i] == b'\\' {
                    self.escaped = true;
                } else {
                    self.in_string = false;
                    if self.depth == 0 {
                        return Some(i + 1);
                    }
                }
                i += 1;
                continue;
            }
            let byte = bytes[i];
            if self.scalar {
                if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    return Some(i);
                }
            } else {
                match byte {
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    // A closing bracket where a value should start ends an empty value, which
                    // the parser then refuses.
                    b'}' | b']' if self.depth == 0 => return Some(i),
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ if self.depth == 0 => self.scalar = true,
                    _ => {}
                }
            }
            i += 1;
        }
        None
    }

    /// The value's length when the body ends after `scanned` bytes of it: only a scalar may end
    /// there.
    fn ended_by_eof(&self, scanned: usize, at: u64) -> Result<usize, BodyError> {
        if self.scalar {
            Ok(scanned)
        } else {
            Err(malformed("EOF while parsing a value", at))
        }
    }
}

/// The first pass: the header, with the images counted but not kept (nor parsed: the second
/// pass parses each one).
pub async fn header(file: &File) -> Result<Header, BodyError> {
    let mut window = Window::new(file)?;
    tokio::task::spawn_blocking(move || {
        let mut header = Header::default();
        let mut images = None;
        let mut seen = Vec::new();
        window.object(|name, window| {
            if seen.iter().any(|seen| seen == name) {
                return Err(malformed(
                    format_args!("duplicate field `{name}`"),
                    window.position(),
                ));
            }
            seen.push(name.to_owned());
            match name {
                "images" => {
                    let mut count = 0;
                    window.array("an array of images", |window| {
                        count += 1;
                        window.take().map(drop)
                    })?;
                    images = Some(count);
                }
                "options" => header.options = window.parse("options")?,
                "webhook_url" => header.webhook_url = window.parse("webhook_url")?,
                "batch_reference_id" => {
                    header.batch_reference_id = window.parse("batch_reference_id")?;
                }
                other => {
                    return Err(malformed(
                        format_args!(
                            "unknown field `{other}`, expected one of {}",
                            FIELDS.join(", ")
                        ),
                        window.position(),
                    ));
                }
            }
            Ok(())
        })?;
        header.images = images.ok_or_else(|| {
            BodyError::Invalid("invalid JSON body: missing field `images`".into())
        })?;
        Ok(header)
    })
    .await
    .map_err(BodyError::internal)?
}

/// The second pass: each image parsed, checked by `check` (with its index and its byte range in
/// the body) and handed over in chunks of [`CHUNK`]; an error, `check`'s own or the parser's
/// (as an `E`), ends them. Parsing stops when the receiver is dropped.
pub fn images<E, F>(file: &File, check: F) -> Result<Chunks<E>, BodyError>
where
    E: From<BodyError> + Send + 'static,
    F: Fn(usize, BatchImage, Range<u64>) -> Result<NewImage, E> + Send + 'static,
{
    let mut window = Window::new(file)?;
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut index = 0;
        let result = window.object::<E>(|name, window| {
            if name != "images" {
                return window.take().map(drop).map_err(E::from);
            }
            window.array::<E>("an array of images", |window| {
                let start = window.position();
                let image = window.parse(format_args!("images[{index}]"))?;
                chunk.push(check(index, image, start..window.position())?);
                index += 1;
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    tx.blocking_send(Ok(full)).map_err(|_| {
                        E::from(BodyError::Invalid("the batch was abandoned".into()))
                    })?;
                }
                Ok(())
            })
        });
        let last = match result {
            Ok(()) if chunk.is_empty() => return,
            Ok(()) => Ok(chunk),
            Err(err) => Err(err),
        };
        // A closed channel means the receiver gave up; there is no one to tell.
        let _ = tx.blocking_send(last);
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kept_bodies::{keep, kept_path, read_kept, remove_kept};
    use serde_json::json;
    use std::convert::Infallible;
    use std::path::PathBuf;

    /// A body arriving whole, in one chunk.
    fn whole(body: impl Into<Vec<u8>>) -> impl Stream<Item = Result<Vec<u8>, Infallible>> {
        futures_util::stream::iter([Ok(body.into())])
    }

    /// A body arriving in chunks cut at `cuts`.
    fn cut(body: &[u8], cuts: &[usize]) -> impl Stream<Item = Result<Vec<u8>, Infallible>> {
        let mut chunks = Vec::new();
        let mut from = 0;
        for &at in cuts.iter().chain([&body.len()]) {
            chunks.push(Ok(body[from..at].to_vec()));
            from = at;
        }
        futures_util::stream::iter(chunks)
    }

    /// A data directory for bodies that are not kept (each removed when dropped).
    fn scratch() -> PathBuf {
        std::env::temp_dir().join("arbiter-batch-body-tests")
    }

    async fn spooled(body: &serde_json::Value) -> NamedTempFile {
        spool(whole(body.to_string()), 1 << 20, &scratch(), u64::MAX)
            .await
            .unwrap()
    }

    fn take(index: usize, image: BatchImage, _: Range<u64>) -> Result<NewImage, BodyError> {
        match (image.image_url, image.image_base64) {
            (Some(url), None) => Ok(NewImage {
                source: JobSource::Url(url),
                reference_id: image.reference_id,
            }),
            _ => Err(BodyError::Invalid(format!("images[{index}]: no url"))),
        }
    }

    #[tokio::test]
    async fn the_header_counts_the_images_and_the_images_come_in_chunks() {
        let list: Vec<_> = (0..250)
            .map(|i| json!({"image_url": format!("https://example.com/{i}.jpg"), "reference_id": format!("r-{i}")}))
            .collect();
        let body =
            json!({"batch_reference_id": "b-1", "images": list, "options": {"models": ["gan"]}});
        let file = spooled(&body).await;
        let header = header(file.as_file()).await.unwrap();
        assert_eq!(header.images, 250);
        assert_eq!(header.batch_reference_id.as_deref(), Some("b-1"));
        assert_eq!(header.options.unwrap().models, Some(vec!["gan".to_owned()]));
        let mut chunks = images(file.as_file(), take).unwrap();
        let mut sizes = Vec::new();
        let mut last = None;
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk.unwrap();
            sizes.push(chunk.len());
            last = chunk.last().and_then(|i| i.reference_id.clone());
        }
        assert_eq!(sizes.iter().sum::<usize>(), 250);
        assert!(sizes.iter().all(|&n| n <= CHUNK));
        assert_eq!(sizes.len(), 250usize.div_ceil(CHUNK));
        assert_eq!(last.as_deref(), Some("r-249"));
    }

    #[test]
    fn a_value_is_found_whole_however_it_is_cut() {
        for (value, after) in [
            (
                r#"{"a": ["x\"]}", {"b": [1, 2.5e3]}, "\\"], "c": true}"#,
                " , ",
            ),
            (r#""a \" string""#, "]"),
            ("-12.5e3", ", "),
            ("null", "}"),
            ("[[], {}]", ""),
        ] {
            let body = format!("{value}{after}");
            let body = body.as_bytes();
            for cut in 0..=body.len() {
                let mut scan = Scan::default();
                let found = scan
                    .feed(&body[..cut])
                    .or_else(|| scan.feed(&body[cut..]).map(|len| len + cut));
                assert_eq!(found, Some(value.len()), "{value} cut at {cut}");
            }
        }
    }

    #[tokio::test]
    async fn images_larger_than_a_block_come_whole() {
        let list: Vec<_> = (0..7)
            .map(|i| json!({"reference_id": format!("r-{i}"), "image_base64": "QUJD".repeat(BLOCK / 3 + i)}))
            .collect();
        let body =
            serde_json::to_string_pretty(&json!({"images": list, "batch_reference_id": "b"}))
                .unwrap();
        let file = spool(whole(body), 1 << 24, &scratch(), u64::MAX)
            .await
            .unwrap();
        assert_eq!(header(file.as_file()).await.unwrap().images, 7);
        let mut chunks = images::<BodyError, _>(file.as_file(), |_, image, _| {
            Ok(NewImage {
                source: JobSource::Base64(image.image_base64.unwrap_or_default()),
                reference_id: image.reference_id,
            })
        })
        .unwrap();
        let chunk = chunks.recv().await.unwrap().unwrap();
        assert!(chunks.recv().await.is_none());
        for (i, image) in chunk.iter().enumerate() {
            assert_eq!(image.reference_id, Some(format!("r-{i}")));
            let JobSource::Base64(encoded) = &image.source else {
                panic!("not base64")
            };
            assert_eq!(encoded.len(), (BLOCK / 3 + i) * 4);
        }
    }

    #[tokio::test]
    async fn a_bad_image_ends_the_chunks_with_its_own_error() {
        let body = json!({"images": [{"image_url": "https://example.com/a.jpg"}, {"image_base64": "AAAA"}]});
        let file = spooled(&body).await;
        let mut chunks = images(file.as_file(), take).unwrap();
        let err = chunks.recv().await.unwrap().unwrap_err();
        assert_eq!(err, BodyError::Invalid("images[1]: no url".into()));
        assert!(chunks.recv().await.is_none());
    }

    #[tokio::test]
    async fn malformed_bodies_are_named() {
        for (body, expected) in [
            ("{\"images\": [], \"colour\": 1}", "unknown field `colour`"),
            ("{\"options\": {}}", "missing field `images`"),
            (
                "{\"images\": [], \"images\": []}",
                "duplicate field `images`",
            ),
            ("{\"images\": [] } trailing", "trailing characters"),
            ("[1, 2]", "invalid type"),
        ] {
            let file = spool(whole(body), 1 << 20, &scratch(), u64::MAX)
                .await
                .unwrap();
            let err = header(file.as_file()).await.unwrap_err();
            let message = err.to_string();
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
            assert!(message.starts_with("invalid JSON body: "), "{message}");
            assert!(message.contains(expected), "{body}: {message}");
        }
    }

    #[tokio::test]
    async fn a_kept_body_gives_back_each_image_by_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let body = json!({"images": [{"image_url": "https://example.com/a.jpg"}, {"image_base64": "QUJD", "reference_id": "r"}]});
        let file = spool(whole(body.to_string()), 1 << 20, dir.path(), u64::MAX)
            .await
            .unwrap();
        let mut ranges = Vec::new();
        let mut chunks = images::<BodyError, _>(file.as_file(), |_, image, range| {
            Ok(NewImage {
                source: JobSource::Kept {
                    start: range.start,
                    end: range.end,
                },
                reference_id: image.reference_id,
            })
        })
        .unwrap();
        while let Some(chunk) = chunks.recv().await {
            for image in chunk.unwrap() {
                let JobSource::Kept { start, end } = image.source else {
                    panic!("not kept")
                };
                ranges.push(start..end);
            }
        }
        keep(file, dir.path(), "batch_1").unwrap();
        let second = read_kept(dir.path(), "batch_1", ranges[1].clone()).unwrap();
        assert_eq!(second.image_base64.as_deref(), Some("QUJD"));
        assert_eq!(second.reference_id.as_deref(), Some("r"));
        let first = read_kept(dir.path(), "batch_1", ranges[0].clone()).unwrap();
        assert_eq!(
            first.image_url.as_deref(),
            Some("https://example.com/a.jpg")
        );
        remove_kept(dir.path(), "batch_1");
        assert!(!kept_path(dir.path(), "batch_1").exists());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_as_too_large() {
        let err = spool(whole(vec![b' '; 2048]), 1024, &scratch(), u64::MAX)
            .await
            .unwrap_err();
        assert_eq!(err, BodyError::TooLarge { limit: 1024 });
        assert_eq!(err.code(), ErrorCode::FileSizeExceeded);
    }

    #[tokio::test]
    async fn bodies_are_refused_when_those_on_disk_take_all_their_room() {
        let dir = tempfile::tempdir().unwrap();
        let first = spool(whole(vec![b' '; 3000]), 1 << 20, dir.path(), 4096)
            .await
            .unwrap();
        keep(first, dir.path(), "batch_1").unwrap();
        assert_eq!(bodies_on_disk(dir.path()), 3000);
        // 1,096 bytes of room left: a body that would pass it is refused as it arrives...
        let err = spool(whole(vec![b' '; 2000]), 1 << 20, dir.path(), 4096)
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.retry_after()),
            (ErrorCode::ServiceUnavailable, Some(FULL_RETRY_SECS))
        );
        assert!(err.to_string().contains("jobs.max_spooled_bytes"), "{err}");
        assert_eq!(bodies_on_disk(dir.path()), 3000, "the refused body is gone");
        // ... one that fits is taken ...
        let fits = spool(whole(vec![b' '; 1000]), 1 << 20, dir.path(), 4096)
            .await
            .unwrap();
        keep(fits, dir.path(), "batch_2").unwrap();
        // ... and with the room full, the next is refused at once.
        let err = spool(whole(vec![b' '; 10]), 1 << 20, dir.path(), 4000)
            .await
            .unwrap_err();
        assert_eq!(err, BodyError::Full { room: 4000 });
        // A completed batch's body is removed, and its room is free again.
        remove_kept(dir.path(), "batch_1");
        assert!(
            spool(whole(vec![b' '; 10]), 1 << 20, dir.path(), 4000)
                .await
                .is_ok()
        );
    }

    /// Every image of a spooled body, as the second pass hands them over, or its error.
    async fn all_images(file: &NamedTempFile) -> Result<Vec<NewImage>, BodyError> {
        let mut chunks = images(file.as_file(), take)?;
        let mut all = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            all.extend(chunk?);
        }
        Ok(all)
    }

    #[tokio::test]
    async fn a_body_cut_into_chunks_anywhere_reads_as_the_whole_one() {
        let body = json!({"batch_reference_id": "b-\"1\"", "images": [
            {"image_url": "https://example.com/a.jpg", "reference_id": "r-0"},
            {"image_url": "https://example.com/b,]}.jpg"}],
            "options": {"models": ["noise"]}})
        .to_string();
        let bytes = body.as_bytes();
        let whole_file = spool(whole(body.clone()), 1 << 20, &scratch(), u64::MAX)
            .await
            .unwrap();
        let expected = std::fs::read(whole_file.path()).unwrap();
        for at in 0..=bytes.len() {
            for cuts in [vec![at], vec![at / 2, at]] {
                let file = spool(cut(bytes, &cuts), 1 << 20, &scratch(), u64::MAX)
                    .await
                    .unwrap();
                assert_eq!(std::fs::read(file.path()).unwrap(), expected, "{cuts:?}");
                let header = header(file.as_file()).await.unwrap();
                assert_eq!(header.images, 2, "{cuts:?}");
                assert_eq!(header.batch_reference_id.as_deref(), Some("b-\"1\""));
                let images = all_images(&file).await.unwrap();
                let JobSource::Url(url) = &images[1].source else {
                    panic!("not a url")
                };
                assert_eq!(url, "https://example.com/b,]}.jpg");
            }
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_in_any_chunk_is_refused_and_one_at_it_taken() {
        let body = vec![b' '; 1000];
        for cuts in [vec![], vec![1], vec![500], vec![999], vec![10, 20, 990]] {
            let err = spool(cut(&body, &cuts), 999, &scratch(), u64::MAX)
                .await
                .unwrap_err();
            assert_eq!(err, BodyError::TooLarge { limit: 999 }, "{cuts:?}");
            assert!(
                spool(cut(&body, &cuts), 1000, &scratch(), u64::MAX)
                    .await
                    .is_ok()
            );
        }
    }

    #[tokio::test]
    async fn a_stream_that_fails_is_a_body_that_cannot_be_read() {
        let chunks =
            futures_util::stream::iter([Ok(b"{\"images\"".to_vec()), Err("reset by peer")]);
        let err = spool(chunks, 1 << 20, &scratch(), u64::MAX)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            BodyError::Invalid("cannot read the request body: reset by peer".into())
        );
    }

    #[tokio::test]
    async fn truncated_bodies_are_refused_as_malformed_in_either_pass() {
        let body =
            json!({"images": [{"image_url": "https://example.com/a.jpg", "reference_id": "r"}],
            "options": {"return_heatmap": true}})
            .to_string();
        for end in 0..body.len() {
            let file = spool(
                whole(&body.as_bytes()[..end]),
                1 << 20,
                &scratch(),
                u64::MAX,
            )
            .await
            .unwrap();
            let err = match header(file.as_file()).await {
                Err(err) => err,
                Ok(_) => all_images(&file).await.unwrap_err(),
            };
            assert_eq!(err.code(), ErrorCode::InvalidRequest, "cut at {end}: {err}");
        }
    }

    #[tokio::test]
    async fn bad_json_names_the_place_it_goes_wrong() {
        for (body, expected) in [
            ("{\"images\": [}", "expected `,` or `]`"),
            ("{\"images\": [{\"image_url\": 1}]}", "images[0]"),
            ("{\"images\" [1]}", "expected `:`"),
            ("{\"images\": [] \"options\": {}}", "expected `,` or `}`"),
            (
                "{\"options\": {\"models\": \"gan\"}, \"images\": []}",
                "options",
            ),
            ("", "invalid type"),
        ] {
            let file = spool(whole(body), 1 << 20, &scratch(), u64::MAX)
                .await
                .unwrap();
            let err = match header(file.as_file()).await {
                Err(err) => err,
                Ok(_) => all_images(&file).await.unwrap_err(),
            };
            let message = err.to_string();
            assert!(
                message.starts_with("invalid JSON body: "),
                "{body}: {message}"
            );
            assert!(message.contains(expected), "{body}: {message}");
            assert!(message.contains("(at byte "), "{body}: {message}");
        }
    }

    #[test]
    fn an_image_is_one_source_within_the_limits() {
        let limits = RequestLimits {
            max_image_bytes: 3,
            max_reference_id_len: 4,
        };
        let image =
            |url: Option<&str>, encoded: Option<&str>, reference: Option<&str>| BatchImage {
                image_url: url.map(str::to_owned),
                image_base64: encoded.map(str::to_owned),
                reference_id: reference.map(str::to_owned),
            };
        let taken = check_image(0, image(None, Some("QUJD"), Some("r-1")), limits, None).unwrap();
        assert!(matches!(taken.source, JobSource::Base64(ref e) if e == "QUJD"));
        let kept = check_image(
            0,
            image(Some("https://a/b"), None, None),
            limits,
            Some(5..9),
        )
        .unwrap();
        assert!(matches!(kept.source, JobSource::Kept { start: 5, end: 9 }));
        let err =
            check_image(2, image(None, Some("QUJDQUJDQUJD"), None), limits, None).unwrap_err();
        assert_eq!(err.code(), ErrorCode::FileSizeExceeded);
        assert!(err.to_string().starts_with("images[2]: "), "{err}");
        let err = check_image(
            1,
            image(Some("https://a/b"), Some("QUJD"), None),
            limits,
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "images[1]: send exactly one of image_url and image_base64"
        );
        let err = check_image(
            3,
            image(Some("https://a/b"), None, Some("toolong")),
            limits,
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("images[3].reference_id: "),
            "{err}"
        );
    }

    #[test]
    fn a_header_is_held_to_the_plan_and_the_request_rules() {
        let header = |images, webhook_in_options: bool, reference: &str| Header {
            images,
            options: Some(RequestOptions {
                webhook_url: webhook_in_options.then(|| "https://example.com".to_owned()),
                ..RequestOptions::default()
            }),
            webhook_url: None,
            batch_reference_id: Some(reference.to_owned()),
        };
        let ok = header(3, false, "b-1")
            .submission(3, "starter", 64)
            .unwrap();
        assert_eq!(
            (ok.images, ok.batch_reference_id.as_deref()),
            (3, Some("b-1"))
        );
        for (header, expected) in [
            (header(0, false, "b"), "images is empty"),
            (
                header(4, false, "b"),
                "this key's plan (starter) allows at most 3 per batch",
            ),
            (header(1, true, "b"), "at the top level"),
            (header(1, false, "b c"), "batch_reference_id: "),
        ] {
            let err = header.submission(3, "starter", 64).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
            assert!(err.to_string().contains(expected), "{err}");
        }
    }
}
