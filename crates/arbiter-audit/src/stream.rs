//! Streaming a tenant's bundle as a tar archive without holding it in memory: the bundle is
//! written by [`export`](crate::export::export) into a private temporary directory, then sent as
//! [`write_tar`](crate::export::write_tar) makes it, in chunks, and the directory is removed
//! once the archive has been sent. At most as many exports run at once as the semaphore given
//! (`audit.max_concurrent_exports`) has places: each holds its place until its archive is sent.

use crate::export::{ExportError, ExportRange, export, write_tar};
use crate::keys::VerifierKey;
use arbiter_db::sea_orm::ConnectionTrait;
use bytes::Bytes;
use futures_util::Stream;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};

/// Seconds a caller is asked to wait when every export place is taken.
pub const BUSY_RETRY_SECS: u64 = 10;

/// The tenant's bundle over `range` as a stream of tar archive chunks. Refused with
/// [`ExportError::Busy`] when every place of `exports` is taken; the range's errors
/// ([`ExportError::Empty`], [`ExportError::NotABoundary`], [`ExportError::TwoStarts`]) come
/// before any byte is sent. A failure while sending ends the stream with its error.
pub async fn stream<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    range: &ExportRange,
    vkey: &VerifierKey,
    exports: &Arc<Semaphore>,
) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static, ExportError> {
    let Ok(place) = exports.clone().try_acquire_owned() else {
        return Err(ExportError::Busy);
    };
    let dir = ExportDir::new().map_err(ExportError::TempDir)?;
    export(conn, tenant, range, vkey, &dir.path).await?;
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx,
            buffer: Vec::with_capacity(ChannelWriter::CHUNK),
        };
        let written = write_tar(&dir.path, &mut out).and_then(|()| std::io::Write::flush(&mut out));
        if let Err(err) = written {
            tracing::warn!(error = %err, "the audit export stream stopped");
            out.tx.blocking_send(Err(err)).ok();
        }
        drop(dir);
        drop(place);
    });
    Ok(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }))
}

/// The archive's file name for a tenant: `arbiter-audit-<tenant>.tar`, with any character of
/// the tenant other than letters, digits, `-` and `_` as `_`.
pub fn file_name(tenant: &str) -> String {
    let safe = tenant.replace(
        |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
        "_",
    );
    format!("arbiter-audit-{safe}.tar")
}

/// A temporary directory, removed when dropped.
struct ExportDir {
    path: std::path::PathBuf,
}

impl ExportDir {
    fn new() -> std::io::Result<Self> {
        let mut suffix = [0u8; 16];
        getrandom::fill(&mut suffix).map_err(std::io::Error::other)?;
        let path = std::env::temp_dir().join(format!("arbiter-export-{}", hex::encode(suffix)));
        std::fs::create_dir(&path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self { path })
    }
}

impl Drop for ExportDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %err, "cannot remove an export directory");
        }
    }
}

/// Sends what is written to the stream in chunks.
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    const CHUNK: usize = 64 * 1024;

    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(Self::CHUNK),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client stopped reading the export",
            )
        })
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= Self::CHUNK {
            self.send()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_name_keeps_only_safe_characters() {
        assert_eq!(file_name("acme-1_b"), "arbiter-audit-acme-1_b.tar");
        assert_eq!(file_name("a/b \"c\""), "arbiter-audit-a_b__c_.tar");
    }

    #[tokio::test]
    async fn an_export_past_the_places_is_refused_as_busy() {
        let dir = tempfile::tempdir().unwrap();
        let target = arbiter_db::DbTarget::DataDir(dir.path().to_path_buf());
        let db = arbiter_db::Db::connect(&target).await.unwrap();
        let exports = Arc::new(Semaphore::new(0));
        let signer = crate::Signer::new(crate::SigningKey::from_seed([7; 32]), "test").unwrap();
        let vkey = signer.verifier_key();
        let refused = stream(db.conn(), "t", &ExportRange::default(), &vkey, &exports).await;
        assert!(matches!(refused, Err(ExportError::Busy)));
    }
}
