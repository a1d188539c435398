//! Exporting one tenant's chain as a bundle a third party verifies: `entries.jsonl`,
//! `checkpoints/cp-<size>.txt`, `vkey.txt`, `SHA256SUMS`.
//!
//! The entries are written exactly as stored (never re-encoded), with `entry_hash` added. A range
//! starts at a checkpoint boundary: at seq 0, or at the size of a stored checkpoint, which the
//! bundle includes so that the first entry's `prev_hash` is anchored by a signature.

use crate::canonical;
use crate::checkpoint::checkpoints;
use crate::entry::format_ts;
use crate::keys::VerifierKey;
use crate::verify::bundle;
use arbiter_db::entity::audit_entry;
use arbiter_db::sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Entries read per query.
const PAGE: u64 = 10_000;

/// Which part of the chain to export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportRange {
    /// Start at this seq, which must be 0 or a checkpoint's size.
    pub from_seq: Option<u64>,
    /// Start at the checkpoint boundary at or before the first entry at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// End with the last entry at or before this time.
    pub until: Option<DateTime<Utc>>,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The first seq exported.
    pub first_seq: u64,
    /// The last seq exported.
    pub last_seq: u64,
    /// The checkpoint sizes included.
    pub checkpoints: Vec<u64>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The output directory exists and is not empty.
    #[error("{0}: the output directory is not empty")]
    NotEmpty(PathBuf),
    /// The range does not start at a checkpoint boundary.
    #[error(
        "seq {seq} is not a checkpoint boundary; a range starts at seq 0 or at a checkpoint's size ({available})"
    )]
    NotABoundary {
        /// The requested start.
        seq: u64,
        /// The boundaries there are.
        available: String,
    },
    /// Nothing to export.
    #[error("tenant {tenant:?} has no entries in the range")]
    Empty {
        /// The tenant.
        tenant: String,
    },
    /// Both `from_seq` and `since`.
    #[error("give either a start seq or a start time, not both")]
    TwoStarts,
    /// As many exports as allowed are under way (`audit.max_concurrent_exports`).
    #[error("as many audit exports as allowed are under way")]
    Busy,
    /// The temporary directory the bundle is written in could not be made.
    #[error("cannot make an export directory: {0}")]
    TempDir(std::io::Error),
    /// A stored entry is not canonical JSON.
    #[error(
        "stored entry {tenant}/{seq} is not canonical JSON ({source}); run `arbiter audit verify`"
    )]
    Corrupt {
        /// The tenant.
        tenant: String,
        /// The seq.
        seq: i64,
        /// Why.
        source: canonical::NotCanonical,
    },
}

/// A file being written, hashed as it goes.
struct HashedFile {
    path: PathBuf,
    name: String,
    out: std::io::BufWriter<std::fs::File>,
    hasher: Sha256,
}

impl HashedFile {
    fn create(dir: &Path, name: &str) -> Result<Self, ExportError> {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).map_err(|source| ExportError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            path,
            name: name.to_owned(),
            out: std::io::BufWriter::new(file),
            hasher: Sha256::new(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        self.hasher.update(bytes);
        self.out.write_all(bytes).map_err(|source| ExportError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Flushes and returns the `SHA256SUMS` line.
    fn finish(mut self) -> Result<String, ExportError> {
        self.out.flush().map_err(|source| ExportError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(format!(
            "{}  {}\n",
            hex::encode(self.hasher.finalize()),
            self.name
        ))
    }
}

/// Writes the bundle of `tenant`'s chain over `range` into `out` (created if needed, must be
/// empty).
pub async fn export(
    conn: &impl ConnectionTrait,
    tenant: &str,
    range: &ExportRange,
    vkey: &VerifierKey,
    out: &Path,
) -> Result<ExportSummary, ExportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExportError::Io { path, source }
    };
    if range.from_seq.is_some() && range.since.is_some() {
        return Err(ExportError::TwoStarts);
    }
    let stored = checkpoints(conn, Some(tenant)).await?;
    let boundaries: Vec<u64> = std::iter::once(0)
        .chain(stored.iter().filter_map(|cp| u64::try_from(cp.size).ok()))
        .collect();

    let first_seq = match (range.from_seq, range.since) {
        (Some(seq), _) => {
            if !boundaries.contains(&seq) {
                let available = boundaries
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ExportError::NotABoundary { seq, available });
            }
            seq
        }
        (None, Some(since)) => {
            let first = audit_entry::Entity::find()
                .select_only()
                .column(audit_entry::Column::Seq)
                .filter(audit_entry::Column::Tenant.eq(tenant))
                .filter(audit_entry::Column::Ts.gte(format_ts(since)))
                .order_by_asc(audit_entry::Column::Seq)
                .into_tuple::<i64>()
                .one(conn)
                .await?
                .and_then(|seq| u64::try_from(seq).ok())
                .ok_or_else(|| ExportError::Empty {
                    tenant: tenant.to_owned(),
                })?;
            boundaries
                .iter()
                .copied()
                .filter(|&b| b <= first)
                .max()
                .unwrap_or(0)
        }
        (None, None) => 0,
    };
    let mut last = audit_entry::Entity::find()
        .select_only()
        .column(audit_entry::Column::Seq)
        .filter(audit_entry::Column::Tenant.eq(tenant))
        .order_by_desc(audit_entry::Column::Seq);
    if let Some(until) = range.until {
        last = last.filter(audit_entry::Column::Ts.lte(format_ts(until)));
    }
    let last_seq = last
        .into_tuple::<i64>()
        .one(conn)
        .await?
        .and_then(|seq| u64::try_from(seq).ok())
        .filter(|&last| last >= first_seq)
        .ok_or_else(|| ExportError::Empty {
            tenant: tenant.to_owned(),
        })?;

    if out.exists() {
        let mut listing = std::fs::read_dir(out).map_err(io(out))?;
        if listing.next().is_some() {
            return Err(ExportError::NotEmpty(out.to_path_buf()));
        }
    }
    let cp_dir = out.join(bundle::CHECKPOINTS);
    std::fs::create_dir_all(&cp_dir).map_err(io(&cp_dir))?;

    let mut sums = Vec::new();
    let mut entries = HashedFile::create(out, bundle::ENTRIES)?;
    let mut from = i64::try_from(first_seq).unwrap_or(i64::MAX);
    let until = i64::try_from(last_seq).unwrap_or(i64::MAX);
    while from <= until {
        let rows = audit_entry::Entity::find()
            .filter(audit_entry::Column::Tenant.eq(tenant))
            .filter(audit_entry::Column::Seq.gte(from))
            .filter(audit_entry::Column::Seq.lte(until))
            .order_by_asc(audit_entry::Column::Seq)
            .limit(PAGE)
            .all(conn)
            .await?;
        let Some(last_row) = rows.last() else { break };
        from = last_row.seq + 1;
        for row in rows {
            let line = canonical::insert_entry_hash(&row.canonical, &row.entry_hash).map_err(
                |source| ExportError::Corrupt {
                    tenant: tenant.to_owned(),
                    seq: row.seq,
                    source,
                },
            )?;
            entries.write(line.as_bytes())?;
            entries.write(b"\n")?;
        }
    }
    sums.push(entries.finish()?);

    let mut included = Vec::new();
    for cp in &stored {
        let Ok(size) = u64::try_from(cp.size) else {
            continue;
        };
        if size < first_seq || size > last_seq + 1 || size == 0 {
            continue;
        }
        let name = format!("{}/cp-{size}.txt", bundle::CHECKPOINTS);
        let mut file = HashedFile::create(out, &name)?;
        file.write(cp.note.as_bytes())?;
        sums.push(file.finish()?);
        included.push(size);
    }
    let mut file = HashedFile::create(out, bundle::VKEY)?;
    file.write(format!("{vkey}\n").as_bytes())?;
    sums.push(file.finish()?);

    sums.sort_by(|a, b| a.split_at(66).1.cmp(b.split_at(66).1));
    let path = out.join(bundle::SHA256SUMS);
    std::fs::write(&path, sums.concat()).map_err(io(&path))?;
    Ok(ExportSummary {
        first_seq,
        last_seq,
        checkpoints: included,
    })
}

/// The bundle's files, in the order an archive holds them: `entries.jsonl`, the checkpoints by
/// size, `vkey.txt`, `SHA256SUMS`.
fn bundle_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut checkpoints: Vec<(u64, String)> = Vec::new();
    let cp_dir = dir.join(bundle::CHECKPOINTS);
    if cp_dir.is_dir() {
        for item in std::fs::read_dir(&cp_dir)? {
            let name = item?.file_name().to_string_lossy().into_owned();
            let size = checkpoint_size(&name).unwrap_or(u64::MAX);
            checkpoints.push((size, format!("{}/{name}", bundle::CHECKPOINTS)));
        }
    }
    checkpoints.sort();
    let mut files = vec![bundle::ENTRIES.to_owned()];
    files.extend(checkpoints.into_iter().map(|(_, name)| name));
    files.extend([bundle::VKEY.to_owned(), bundle::SHA256SUMS.to_owned()]);
    Ok(files)
}

/// The size in a checkpoint file name `cp-<size>.txt`.
fn checkpoint_size(name: &str) -> Option<u64> {
    name.strip_prefix("cp-")?.strip_suffix(".txt")?.parse().ok()
}

/// Writes the bundle in `dir` (as [`export`] made it) to `out` as a tar archive whose members
/// are the bundle's files at the top level: `tar -xf` into an empty directory gives the bundle.
pub fn write_tar(dir: &Path, out: impl std::io::Write) -> std::io::Result<()> {
    let mut archive = tar::Builder::new(out);
    archive.mode(tar::HeaderMode::Deterministic);
    archive.follow_symlinks(false);
    archive.append_dir(bundle::CHECKPOINTS, dir.join(bundle::CHECKPOINTS))?;
    for name in bundle_files(dir)? {
        let path = dir.join(&name);
        if path.is_file() {
            archive.append_path_with_name(&path, &name)?;
        }
    }
    archive.into_inner()?.flush()
}

/// Unpacks a bundle archive made by [`write_tar`] into `dir` (created if needed). Only the
/// bundle's own file names are accepted: `entries.jsonl`, `vkey.txt`, `SHA256SUMS` and
/// `checkpoints/cp-<size>.txt`; anything else (links, other paths) is refused.
pub fn unpack_tar(input: impl std::io::Read, dir: &Path) -> std::io::Result<()> {
    let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidData, message);
    std::fs::create_dir_all(dir.join(bundle::CHECKPOINTS))?;
    let mut archive = tar::Archive::new(input);
    for member in archive.entries()? {
        let mut member = member?;
        let name = member.path()?.to_string_lossy().into_owned();
        let name = name.trim_end_matches('/');
        let kind = member.header().entry_type();
        if kind.is_dir() && name == bundle::CHECKPOINTS {
            continue;
        }
        let known = [bundle::ENTRIES, bundle::VKEY, bundle::SHA256SUMS].contains(&name)
            || name
                .strip_prefix("checkpoints/")
                .and_then(checkpoint_size)
                .is_some_and(|size| name == format!("checkpoints/cp-{size}.txt"));
        if !kind.is_file() || !known {
            return Err(invalid(format!("{name}: not a file of an audit bundle")));
        }
        let path = dir.join(name);
        let mut file = std::fs::File::create_new(&path)?;
        std::io::copy(&mut member, &mut file)?;
    }
    Ok(())
}
