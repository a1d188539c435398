//! Reading a `POST /v1/analyze/batch` body without holding it in memory, so a server's memory
//! does not grow with the size of the batches it takes.
//!
//! The body is spooled to an anonymous temporary file as it arrives (refused past
//! `jobs.max_batch_body_bytes`). A first pass reads everything but the images' contents (their
//! count, `options`, `webhook_url`, `batch_reference_id`), so the batch can be checked against
//! the plan before anything is written; a second pass hands the images over in chunks, which are
//! written as jobs inside one transaction while the next chunk is parsed.

use crate::error::ApiError;
use crate::jobs::NewImage;
use crate::routes::analyze::RequestOptions;
use crate::routes::batches::BatchImage;
use arbiter_core::ErrorCode;
use axum::body::Body;
use futures_util::StreamExt;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom, Write};
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

/// Writes the body to an anonymous temporary file, refusing it (413) past `limit` bytes.
pub async fn spool(body: Body, limit: u64) -> Result<File, ApiError> {
    let file = tempfile::tempfile().map_err(|err| ApiError::internal(&err))?;
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
        tokio::io::AsyncWriteExt::write_all(&mut writer, &chunk)
            .await
            .map_err(|err| ApiError::internal(&err))?;
    }
    let mut file = writer.into_std().await;
    file.flush().map_err(|err| ApiError::internal(&err))?;
    Ok(file)
}

/// A reader over the spooled body from its start.
fn reader(file: &File) -> Result<BufReader<File>, ApiError> {
    let mut file = file.try_clone().map_err(|err| ApiError::internal(&err))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|err| ApiError::internal(&err))?;
    Ok(BufReader::with_capacity(256 * 1024, file))
}

fn malformed(err: &serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("invalid JSON body: {err}"))
}

/// The first pass: the header, with the images counted but not kept.
pub async fn header(file: &File) -> Result<Header, ApiError> {
    let reader = reader(file)?;
    tokio::task::spawn_blocking(move || {
        let mut json = serde_json::Deserializer::from_reader(reader);
        let header = json
            .deserialize_map(HeaderVisitor)
            .map_err(|err| malformed(&err))?;
        json.end().map_err(|err| malformed(&err))?;
        Ok(header)
    })
    .await
    .map_err(|err| ApiError::internal(&err))?
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a batch request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut header = Header::default();
        let mut images = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "images" if images.is_none() => images = Some(map.next_value_seed(Count)?),
                "options" if header.options.is_none() => header.options = map.next_value()?,
                "webhook_url" if header.webhook_url.is_none() => {
                    header.webhook_url = map.next_value()?;
                }
                "batch_reference_id" if header.batch_reference_id.is_none() => {
                    header.batch_reference_id = map.next_value()?;
                }
                field if FIELDS.contains(&field) => {
                    return Err(de::Error::custom(format!("duplicate field `{field}`")));
                }
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        header.images = images.ok_or_else(|| de::Error::missing_field("images"))?;
        Ok(header)
    }
}

/// Counts the elements of the `images` array without keeping them.
struct Count;

impl<'de> DeserializeSeed<'de> for Count {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Count {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of images")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut count = 0;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            count += 1;
        }
        Ok(count)
    }
}

/// The chunks of images the second pass hands over; an error ends them.
pub type Chunks = mpsc::Receiver<Result<Vec<NewImage>, ApiError>>;

/// The second pass: each image checked by `check` (with its index) and handed over in chunks of
/// [`CHUNK`]. Parsing stops when the receiver is dropped.
pub fn images<F>(file: &File, check: F) -> Result<Chunks, ApiError>
where
    F: Fn(usize, BatchImage) -> Result<NewImage, ApiError> + Send + 'static,
{
    let reader = reader(file)?;
    let (tx, rx) = mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let mut failure = None;
        let mut json = serde_json::Deserializer::from_reader(reader);
        let visitor = ImagesVisitor {
            tx: &tx,
            check: &check,
            failure: &mut failure,
        };
        let result = json.deserialize_map(visitor).and_then(|()| json.end());
        if let Err(err) = result {
            // A closed channel means the receiver gave up; there is no one to tell.
            let _ = tx.blocking_send(Err(failure.unwrap_or_else(|| malformed(&err))));
        }
    });
    Ok(rx)
}

struct ImagesVisitor<'a, F> {
    tx: &'a mpsc::Sender<Result<Vec<NewImage>, ApiError>>,
    check: &'a F,
    failure: &'a mut Option<ApiError>,
}

impl<'de, F> Visitor<'de> for ImagesVisitor<'_, F>
where
    F: Fn(usize, BatchImage) -> Result<NewImage, ApiError>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a batch request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "images" {
                map.next_value_seed(ImagesSeed {
                    tx: self.tx,
                    check: self.check,
                    failure: &mut *self.failure,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct ImagesSeed<'a, F> {
    tx: &'a mpsc::Sender<Result<Vec<NewImage>, ApiError>>,
    check: &'a F,
    failure: &'a mut Option<ApiError>,
}

impl<'de, F> DeserializeSeed<'de> for ImagesSeed<'_, F>
where
    F: Fn(usize, BatchImage) -> Result<NewImage, ApiError>,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, F> Visitor<'de> for ImagesSeed<'_, F>
where
    F: Fn(usize, BatchImage) -> Result<NewImage, ApiError>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of images")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut chunk = Vec::with_capacity(CHUNK);
        let mut index = 0;
        let send = |chunk: Vec<NewImage>| {
            self.tx
                .blocking_send(Ok(chunk))
                .map_err(|_| de::Error::custom("the batch was abandoned"))
        };
        while let Some(image) = seq.next_element::<BatchImage>()? {
            match (self.check)(index, image) {
                Ok(image) => chunk.push(image),
                Err(err) => {
                    let message = err.message.clone();
                    *self.failure = Some(err);
                    return Err(de::Error::custom(message));
                }
            }
            index += 1;
            if chunk.len() == CHUNK {
                send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))?;
            }
        }
        if !chunk.is_empty() {
            send(chunk)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobSource;
    use serde_json::json;

    async fn spooled(body: &serde_json::Value) -> File {
        spool(Body::from(body.to_string()), 1 << 20).await.unwrap()
    }

    fn take(index: usize, image: BatchImage) -> Result<NewImage, ApiError> {
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
        let header = header(&file).await.unwrap();
        assert_eq!(header.images, 250);
        assert_eq!(header.batch_reference_id.as_deref(), Some("b-1"));
        assert_eq!(header.options.unwrap().models, Some(vec!["gan".to_owned()]));
        let mut chunks = images(&file, take).unwrap();
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

    #[tokio::test]
    async fn a_bad_image_ends_the_chunks_with_its_own_error() {
        let body = json!({"images": [{"image_url": "https://example.com/a.jpg"}, {"image_base64": "AAAA"}]});
        let file = spooled(&body).await;
        let mut chunks = images(&file, take).unwrap();
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
            let file = spool(Body::from(body), 1 << 20).await.unwrap();
            let err = header(&file).await.unwrap_err();
            assert!(
                err.message.starts_with("invalid JSON body: "),
                "{}",
                err.message
            );
            assert!(err.message.contains(expected), "{body}: {}", err.message);
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_as_too_large() {
        let err = spool(Body::from(vec![b' '; 2048]), 1024).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::FileSizeExceeded);
    }
}
