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
//! not copied into the database (the kept bodies are `arbiter_jobs::kept_bodies`, where the jobs
//! read them back). On PostgreSQL, whose replicas share the jobs but not a disk, the images are
//! written into the database.
//!
//! The parsing stays here, beside the HTTP body it reads: it answers with the API's errors and
//! reads the request types of `POST /v1/analyze/batch`.

use crate::error::ApiError;
use crate::routes::analyze::RequestOptions;
use crate::routes::batches::BatchImage;
use arbiter_core::ErrorCode;
use arbiter_jobs::NewImage;
use arbiter_jobs::kept_bodies::{bodies_on_disk, kept_dir};
use axum::body::Body;
use futures_util::StreamExt;
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

/// How long a caller is asked to wait when the batch bodies on disk take all their room.
const FULL_RETRY_SECS: u64 = 30;

/// 503 with `Retry-After`: the batch bodies on disk take all the room they may
/// (`jobs.max_spooled_bytes`).
fn no_room(room: u64) -> ApiError {
    ApiError {
        retry_after: Some(FULL_RETRY_SECS),
        ..ApiError::new(
            ErrorCode::ServiceUnavailable,
            format!(
                "the batches waiting to be analysed take all the room for batch bodies \
                 (jobs.max_spooled_bytes: {room}); try again in {FULL_RETRY_SECS} s"
            ),
        )
    }
}

/// Writes the body to a temporary file in the kept bodies' directory of the data directory,
/// refusing it past `limit` bytes (413), or when the bodies on disk there would pass `room`
/// bytes (503 with `Retry-After`). The file is removed when dropped unless kept with
/// `arbiter_jobs::kept_bodies::keep`.
pub async fn spool(
    body: Body,
    limit: u64,
    data_dir: &Path,
    room: u64,
) -> Result<NamedTempFile, ApiError> {
    let used = bodies_on_disk(data_dir);
    if used >= room {
        return Err(no_room(room));
    }
    let left = room - used;
    let dir = kept_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|err| ApiError::internal(&err))?;
    let spooled = NamedTempFile::new_in(dir).map_err(|err| ApiError::internal(&err))?;
    let file = spooled
        .as_file()
        .try_clone()
        .map_err(|err| ApiError::internal(&err))?;
    let mut writer = tokio::fs::File::from_std(file);
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|err| ApiError::bad_request(format!("cannot read the request body: {err}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::new(
                ErrorCode::FileSizeExceeded,
                format!(
                    "the request body is larger than the {limit}-byte limit \
                     (jobs.max_batch_body_bytes); split the batch or send image_url"
                ),
            ));
        }
        if size > left {
            return Err(no_room(room));
        }
        tokio::io::AsyncWriteExt::write_all(&mut writer, &chunk)
            .await
            .map_err(|err| ApiError::internal(&err))?;
    }
    let mut file = writer.into_std().await;
    file.flush().map_err(|err| ApiError::internal(&err))?;
    Ok(spooled)
}

fn malformed(what: impl fmt::Display, at: u64) -> ApiError {
    ApiError::bad_request(format!("invalid JSON body: {what} (at byte {at})"))
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
    fn new(file: &File) -> Result<Self, ApiError> {
        let mut file = file.try_clone().map_err(|err| ApiError::internal(&err))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|err| ApiError::internal(&err))?;
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
    fn fill(&mut self) -> Result<bool, ApiError> {
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
            .map_err(|err| ApiError::internal(&err))?;
        self.end += read;
        Ok(read > 0)
    }

    /// The next byte that is not whitespace, left unconsumed; `None` at the end of the body.
    fn peek(&mut self) -> Result<Option<u8>, ApiError> {
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
    fn expect(&mut self, byte: u8, expected: &str) -> Result<(), ApiError> {
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
    fn take(&mut self) -> Result<&[u8], ApiError> {
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
    ) -> Result<T, ApiError> {
        let at = self.position();
        serde_json::from_slice(self.take()?)
            .map_err(|err| malformed(format_args!("{what}: {err}"), at))
    }

    /// Walks an array, calling `each` to consume each element.
    fn array(
        &mut self,
        expected: &str,
        mut each: impl FnMut(&mut Self) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        if self.peek()? != Some(b'[') {
            return Err(malformed(
                format_args!("invalid type: expected {expected}"),
                self.position(),
            ));
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
                _ => return Err(malformed("expected `,` or `]`", self.position())),
            }
        }
    }

    /// Walks the body's top-level object, calling `field` with each name to consume its value,
    /// and checks nothing follows it.
    fn object(
        &mut self,
        mut field: impl FnMut(&str, &mut Self) -> Result<(), ApiError>,
    ) -> Result<(), ApiError> {
        if self.peek()? != Some(b'{') {
            return Err(malformed(
                "invalid type: expected a batch request object",
                self.position(),
            ));
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
                    _ => return Err(malformed("expected `,` or `}`", self.position())),
                }
            }
        }
        match self.peek()? {
            None => Ok(()),
            Some(_) => Err(malformed("trailing characters", self.position())),
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
    fn ended_by_eof(&self, scanned: usize, at: u64) -> Result<usize, ApiError> {
        if self.scalar {
            Ok(scanned)
        } else {
            Err(malformed("EOF while parsing a value", at))
        }
    }
}

/// The first pass: the header, with the images counted but not kept (nor parsed: the second
/// pass parses each one).
pub async fn header(file: &File) -> Result<Header, ApiError> {
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
        header.images = images
            .ok_or_else(|| ApiError::bad_request("invalid JSON body: missing field `images`"))?;
        Ok(header)
    })
    .await
    .map_err(|err| ApiError::internal(&err))?
}

/// The chunks of images the second pass hands over; an error ends them.
pub type Chunks = arbiter_jobs::Chunks<ApiError>;

/// The second pass: each image parsed, checked by `check` (with its index and its byte range in
/// the body) and handed over in chunks of [`CHUNK`]. Parsing stops when the receiver is dropped.
pub fn images<F>(file: &File, check: F) -> Result<Chunks, ApiError>
where
    F: Fn(usize, BatchImage, Range<u64>) -> Result<NewImage, ApiError> + Send + 'static,
{
    let mut window = Window::new(file)?;
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut index = 0;
        let result = window.object(|name, window| {
            if name != "images" {
                return window.take().map(drop);
            }
            window.array("an array of images", |window| {
                let start = window.position();
                let image = window.parse(format_args!("images[{index}]"))?;
                chunk.push(check(index, image, start..window.position())?);
                index += 1;
                if chunk.len() == CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    tx.blocking_send(Ok(full))
                        .map_err(|_| ApiError::bad_request("the batch was abandoned"))?;
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
    use arbiter_jobs::JobSource;
    use arbiter_jobs::kept_bodies::{keep, kept_path, read_kept, remove_kept};
    use serde_json::json;
    use std::path::PathBuf;

    /// A data directory for bodies that are not kept (each removed when dropped).
    fn scratch() -> PathBuf {
        std::env::temp_dir().join("arbiter-batch-body-tests")
    }

    async fn spooled(body: &serde_json::Value) -> NamedTempFile {
        spool(Body::from(body.to_string()), 1 << 20, &scratch(), u64::MAX)
            .await
            .unwrap()
    }

    fn take(index: usize, image: BatchImage, _: Range<u64>) -> Result<NewImage, ApiError> {
        match (image.image_url, image.image_base64) {
            (Some(url), None) => Ok(NewImage {
                source: JobSource::Url(url),
                reference_id: image.reference_id,
            }),
            _ => Err(ApiError::bad_request(format!("images[{index}]: no url"))),
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
        let file = spool(Body::from(body), 1 << 24, &scratch(), u64::MAX)
            .await
            .unwrap();
        assert_eq!(header(file.as_file()).await.unwrap().images, 7);
        let mut chunks = images(file.as_file(), |_, image, _| {
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
        assert_eq!(err.message, "images[1]: no url");
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
            let file = spool(Body::from(body), 1 << 20, &scratch(), u64::MAX)
                .await
                .unwrap();
            let err = header(file.as_file()).await.unwrap_err();
            assert!(
                err.message.starts_with("invalid JSON body: "),
                "{}",
                err.message
            );
            assert!(err.message.contains(expected), "{body}: {}", err.message);
        }
    }

    #[tokio::test]
    async fn a_kept_body_gives_back_each_image_by_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let body = json!({"images": [{"image_url": "https://example.com/a.jpg"}, {"image_base64": "QUJD", "reference_id": "r"}]});
        let file = spool(Body::from(body.to_string()), 1 << 20, dir.path(), u64::MAX)
            .await
            .unwrap();
        let mut ranges = Vec::new();
        let mut chunks = images(file.as_file(), |_, image, range| {
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
        let err = spool(Body::from(vec![b' '; 2048]), 1024, &scratch(), u64::MAX)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::FileSizeExceeded);
    }

    #[tokio::test]
    async fn bodies_are_refused_when_those_on_disk_take_all_their_room() {
        let dir = tempfile::tempdir().unwrap();
        let first = spool(Body::from(vec![b' '; 3000]), 1 << 20, dir.path(), 4096)
            .await
            .unwrap();
        keep(first, dir.path(), "batch_1").unwrap();
        assert_eq!(bodies_on_disk(dir.path()), 3000);
        // 1,096 bytes of room left: a body that would pass it is refused as it arrives...
        let err = spool(Body::from(vec![b' '; 2000]), 1 << 20, dir.path(), 4096)
            .await
            .unwrap_err();
        assert_eq!(
            (err.code, err.retry_after),
            (ErrorCode::ServiceUnavailable, Some(FULL_RETRY_SECS))
        );
        assert!(
            err.message.contains("jobs.max_spooled_bytes"),
            "{}",
            err.message
        );
        assert_eq!(bodies_on_disk(dir.path()), 3000, "the refused body is gone");
        // ... one that fits is taken ...
        let fits = spool(Body::from(vec![b' '; 1000]), 1 << 20, dir.path(), 4096)
            .await
            .unwrap();
        keep(fits, dir.path(), "batch_2").unwrap();
        // ... and with the room full, the next is refused at once.
        let err = spool(Body::from(vec![b' '; 10]), 1 << 20, dir.path(), 4000)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ServiceUnavailable);
        // A completed batch's body is removed, and its room is free again.
        remove_kept(dir.path(), "batch_1");
        assert!(
            spool(Body::from(vec![b' '; 10]), 1 << 20, dir.path(), 4000)
                .await
                .is_ok()
        );
    }
}
