//! Batch bodies kept on disk while their batch is worked (SQLite, one node): each job of the
//! batch names its image's byte range in `<data_dir>/batches/<batch_id>.json` instead of a copy
//! of the image in the database. A body is spooled and parsed as it arrives
//! ([`crate::batch_body`]); the jobs read their images back from it here, and
//! the body is removed when its batch completes.

use arbiter_engine::EngineError;
use serde::Deserialize;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::NamedTempFile;

/// One image of a kept batch body, as the batch request gave it (checked when it was taken).
#[derive(Debug, Deserialize)]
pub struct KeptImage {
    /// A URL the image is fetched from.
    #[serde(default)]
    pub image_url: Option<String>,
    /// The image, base64-encoded.
    #[serde(default)]
    pub image_base64: Option<String>,
    /// The caller's identifier for this image.
    #[serde(default)]
    pub reference_id: Option<String>,
}

/// The directory of kept batch bodies in a data directory.
pub fn kept_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("batches")
}

/// Where a batch's body is kept while its images are worked.
pub fn kept_path(data_dir: &Path, batch_id: &str) -> PathBuf {
    kept_dir(data_dir).join(format!("{batch_id}.json"))
}

/// The bytes of the batch bodies on disk in a data directory: those kept for their batches and
/// those being received.
pub fn bodies_on_disk(data_dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(kept_dir(data_dir)) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.len())
        .sum()
}

/// Keeps a spooled body as the body of `batch_id`.
pub fn keep(spooled: NamedTempFile, data_dir: &Path, batch_id: &str) -> Result<(), EngineError> {
    spooled
        .persist(kept_path(data_dir, batch_id))
        .map(drop)
        .map_err(EngineError::internal)
}

/// Reads one image of a kept batch body: the JSON of the `images` element at `range`.
pub fn read_kept(
    data_dir: &Path,
    batch_id: &str,
    range: Range<u64>,
) -> Result<KeptImage, EngineError> {
    use std::os::unix::fs::FileExt;
    let path = kept_path(data_dir, batch_id);
    let len =
        usize::try_from(range.end.saturating_sub(range.start)).map_err(EngineError::internal)?;
    let mut bytes = vec![0; len];
    File::open(&path)
        .and_then(|file| file.read_exact_at(&mut bytes, range.start))
        .map_err(|err| EngineError::internal(format!("{}: {err}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(EngineError::internal)
}

/// Removes a batch's kept body, if it has one.
pub fn remove_kept(data_dir: &Path, batch_id: &str) {
    remove_body(&kept_path(data_dir, batch_id));
}

/// Removes a body file, if it is there.
pub fn remove_body(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => {
            tracing::warn!(path = %path.display(), error = %err, "cannot remove a batch body")
        }
    }
}

/// How long a body file with no batch is left alone: a submission in another process may still
/// be writing it.
const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// The kept bodies that are no longer needed: those of complete batches, and those without a
/// batch (a submission cut off) or not yet named (still being received) older than
/// [`ORPHAN_AGE`]. `batch` tells a batch's status by id, `None` when there is no such batch.
pub async fn stale_bodies<F, Fut>(data_dir: &Path, batch: F) -> Result<Vec<PathBuf>, EngineError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Option<String>, EngineError>>,
{
    let entries = match std::fs::read_dir(kept_dir(data_dir)) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(EngineError::internal(err)),
    };
    let mut stale = Vec::new();
    for entry in entries {
        let entry = entry.map_err(EngineError::internal)?;
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > ORPHAN_AGE);
        let name = entry.file_name().to_string_lossy().into_owned();
        let needed = match name.strip_suffix(".json") {
            Some(batch_id) => match batch(batch_id.to_owned()).await? {
                Some(status) => status != arbiter_db::jobs::BATCH_COMPLETE,
                None => !old,
            },
            None => !old,
        };
        if !needed {
            stale.push(path);
        }
    }
    Ok(stale)
}

/// Removes the kept bodies no longer needed ([`stale_bodies`]): a complete batch's left by a stop
/// between its last commit and the removal, and a submission's cut off by a stop. Run at start.
pub async fn remove_stale(db: &arbiter_db::Db, data_dir: &Path) {
    let conn = db.conn().clone();
    let stale = stale_bodies(data_dir, |batch_id| {
        let conn = conn.clone();
        async move {
            let batch = arbiter_db::jobs::find_batch(&conn, &batch_id).await?;
            Ok(batch.map(|batch| batch.status))
        }
    })
    .await;
    match stale {
        Ok(paths) => paths.iter().for_each(|path| remove_body(path)),
        Err(err) => tracing::warn!(error = %err, "cannot look for stale batch bodies"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_bodies_are_those_of_complete_batches_and_old_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let kept = kept_dir(dir.path());
        std::fs::create_dir_all(&kept).unwrap();
        let hours_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
        for (name, old) in [
            ("batch_done.json", false),
            ("batch_running.json", true),
            ("batch_gone.json", true),
            ("batch_arriving.json", false),
            (".tmpOld", true),
            (".tmpNew", false),
        ] {
            let file = File::create(kept.join(name)).unwrap();
            if old {
                file.set_modified(hours_ago).unwrap();
            }
        }
        let mut stale = stale_bodies(dir.path(), async |batch_id: String| {
            Ok(match batch_id.as_str() {
                "batch_done" => Some(arbiter_db::jobs::BATCH_COMPLETE.to_owned()),
                "batch_running" => Some(arbiter_db::jobs::BATCH_PROCESSING.to_owned()),
                _ => None,
            })
        })
        .await
        .unwrap();
        stale.sort();
        let names: Vec<_> = stale
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [".tmpOld", "batch_done.json", "batch_gone.json"]);
    }

    #[test]
    fn a_kept_body_gives_back_the_image_at_its_range_and_is_removed_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(kept_dir(dir.path())).unwrap();
        let body = br#"{"images": [{"image_url": "https://example.com/a.jpg"}, {"image_base64": "QUJD", "reference_id": "r"}]}"#;
        let spooled = NamedTempFile::new_in(kept_dir(dir.path())).unwrap();
        std::fs::write(spooled.path(), body).unwrap();
        keep(spooled, dir.path(), "batch_1").unwrap();
        assert_eq!(bodies_on_disk(dir.path()), body.len() as u64);
        let text = std::str::from_utf8(body).unwrap();
        let start = text.find(r#"{"image_base64""#).unwrap() as u64;
        let end = text.rfind(']').unwrap() as u64;
        let second = read_kept(dir.path(), "batch_1", start..end).unwrap();
        assert_eq!(second.image_base64.as_deref(), Some("QUJD"));
        assert_eq!(second.reference_id.as_deref(), Some("r"));
        assert!(read_kept(dir.path(), "batch_1", start..end - 1).is_err());
        remove_kept(dir.path(), "batch_1");
        assert!(!kept_path(dir.path(), "batch_1").exists());
        assert_eq!(bodies_on_disk(dir.path()), 0);
        // Removing it again is not an error.
        remove_kept(dir.path(), "batch_1");
    }
}
