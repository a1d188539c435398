//! Verifying chains: the live database ([`verify_database`]) and an export bundle
//! ([`verify_bundle`]). Each problem says what is wrong and where (file, line, tenant, seq).
//!
//! Checked: every entry is canonical JSON and hashes to its `entry_hash`; `seq` runs gapless
//! from the first entry; each `prev_hash` is the previous `entry_hash` (64 zeros at seq 0); each
//! checkpoint is signed by the verifier key and states the hash the log has at its size; and
//! the log reaches every checkpoint it comes with.

use crate::canonical::{self, TopLevel};
use crate::checkpoint::{Checkpoint, checkpoints};
use crate::entry::GENESIS_HASH;
use crate::keys::VerifierKey;
use arbiter_db::entity::{audit_entry, audit_head};
use arbiter_db::sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// Entries read from the database per query.
const PAGE: u64 = 10_000;

/// One thing wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (`entries.jsonl`, `checkpoints/cp-3.txt`) or `database`.
    pub file: String,
    /// 1-based line in `file`, when it is about a line.
    pub line: Option<usize>,
    /// The tenant.
    pub tenant: Option<String>,
    /// The entry's seq.
    pub seq: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        match (&self.tenant, self.seq) {
            (Some(tenant), Some(seq)) => write!(f, " (tenant {tenant}, seq {seq})")?,
            (Some(tenant), None) => write!(f, " (tenant {tenant})")?,
            (None, Some(seq)) => write!(f, " (seq {seq})")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.message)
    }
}

/// What a verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Entries checked.
    pub entries: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// Everything wrong; empty when the log verifies.
    pub problems: Vec<Problem>,
    /// Things worth knowing that are not wrong (entries not yet signed, signatures not checked).
    pub notes: Vec<String>,
}

impl Report {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Why verification could not run at all (as opposed to finding problems).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// The bundle could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A checkpoint to meet while walking a chain.
#[derive(Debug, Clone)]
struct Expected {
    root_hash: String,
    file: String,
}

/// The part of checking an entry that needs no other entry: whether it is canonical, and the
/// hash of its bytes without `entry_hash`. Computed in parallel for bundles.
struct Scanned<'t> {
    top: Result<TopLevel<'t>, canonical::NotCanonical>,
    actual: [u8; 64],
}

fn scan_entry(text: &str) -> Scanned<'_> {
    let mut actual = [0u8; 64];
    let top = canonical::scan(text);
    if let Ok(top) = &top {
        let (head, tail) = top.without_entry_hash(text);
        let mut hasher = Sha256::new();
        hasher.update(head.as_bytes());
        hasher.update(tail.as_bytes());
        // 32 bytes always fit 64 hex digits.
        hex::encode_to_slice(hasher.finalize(), &mut actual).ok();
    }
    Scanned { top, actual }
}

/// One line of `entries.jsonl`, scanned.
enum ScannedLine<'t> {
    /// The line is valid UTF-8.
    Text(Scanned<'t>),
    /// The line is not UTF-8; the offset of the first bad byte in the file.
    NotUtf8(usize),
}

/// The lines of one slice of `entries.jsonl`, scanned.
struct ScannedChunk<'t> {
    lines: Vec<ScannedLine<'t>>,
}

/// Splits `bytes` (whole lines, each ending in `\n`) at line ends into about `parts` slices.
fn split_at_lines(bytes: &[u8], parts: usize) -> Vec<(usize, &[u8])> {
    let mut slices = Vec::with_capacity(parts);
    let target = bytes.len().div_ceil(parts.max(1)).max(1);
    let mut start = 0;
    while start < bytes.len() {
        let guess = (start + target).min(bytes.len());
        let end = match bytes[guess..].iter().position(|&b| b == b'\n') {
            Some(at) => guess + at + 1,
            None => bytes.len(),
        };
        slices.push((start, &bytes[start..end]));
        start = end;
    }
    slices
}

/// Scans every complete line of one slice (its lines end in `\n`; a last line without one is
/// left out). `offset` is where the slice starts in the file.
fn scan_chunk(offset: usize, bytes: &[u8]) -> ScannedChunk<'_> {
    let bytes = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(last) => &bytes[..last],
        None => return ScannedChunk { lines: Vec::new() },
    };
    let mut lines = Vec::new();
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            for line in text.split('\n') {
                lines.push(ScannedLine::Text(scan_entry(line)));
            }
        }
        Err(_) => {
            let mut at = offset;
            for line in bytes.split(|&b| b == b'\n') {
                lines.push(match std::str::from_utf8(line) {
                    Ok(text) => ScannedLine::Text(scan_entry(text)),
                    Err(err) => ScannedLine::NotUtf8(at + err.valid_up_to()),
                });
                at += line.len() + 1;
            }
        }
    }
    ScannedChunk { lines }
}

/// Scans the complete lines of `bytes` on every available core, in order.
fn scan_lines(bytes: &[u8]) -> Vec<ScannedChunk<'_>> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
    if workers == 1 || bytes.len() < (1 << 20) {
        return vec![scan_chunk(0, bytes)];
    }
    // Several slices per worker, taken in turn, so that a slow worker delays nobody.
    let slices = split_at_lines(bytes, workers * 8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, ScannedChunk<'_>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(offset, slice)) = slices.get(i) else {
                            break;
                        };
                        mine.push((i, scan_chunk(offset, slice)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, chunk)| chunk).collect()
}

/// Walks one tenant's chain in order, entry by entry.
struct ChainWalk<'c> {
    tenant: Option<String>,
    file: String,
    next_seq: Option<u64>,
    prev_hash: [u8; 64],
    checkpoints: &'c BTreeMap<u64, Expected>,
    met: BTreeSet<u64>,
    problems: Vec<Problem>,
    entries: u64,
}

impl<'c> ChainWalk<'c> {
    fn new(tenant: Option<String>, file: &str, checkpoints: &'c BTreeMap<u64, Expected>) -> Self {
        Self {
            tenant,
            file: file.to_owned(),
            next_seq: None,
            prev_hash: [0; 64],
            checkpoints,
            met: BTreeSet::new(),
            problems: Vec::new(),
            entries: 0,
        }
    }

    fn problem(&mut self, line: Option<usize>, seq: Option<u64>, message: String) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line,
            tenant: self.tenant.clone(),
            seq,
            message,
        });
    }

    /// Checks one entry. `text` is the line (with `entry_hash`) or, when `stored_hash` is given,
    /// the stored canonical JSON without it.
    fn push(&mut self, line: Option<usize>, text: &str, stored_hash: Option<&str>) {
        self.push_scanned(line, scan_entry(text), stored_hash);
    }

    /// Checks one entry already scanned by [`scan_entry`].
    fn push_scanned(
        &mut self,
        line: Option<usize>,
        scanned: Scanned<'_>,
        stored_hash: Option<&str>,
    ) {
        self.entries += 1;
        let Scanned { top, actual } = scanned;
        let top = match top {
            Ok(top) => top,
            Err(err) => {
                let seq = self.next_seq;
                self.problem(line, seq, format!("the entry is not canonical JSON: {err}"));
                self.next_seq = self.next_seq.map(|s| s + 1);
                return;
            }
        };
        let TopLevel {
            v,
            seq,
            prev_hash,
            ref entry_hash,
            ref tenant,
            ..
        } = top;
        let claimed = match (stored_hash, entry_hash) {
            (Some(stored), None) => stored,
            (None, Some((claimed, _))) => claimed,
            (Some(_), Some(_)) => {
                self.problem(
                    line,
                    seq,
                    "a stored entry carries its own entry_hash".into(),
                );
                return;
            }
            (None, None) => {
                self.problem(line, seq, "the entry has no entry_hash".into());
                return;
            }
        };
        let Some(seq) = seq else {
            self.problem(line, None, "the entry has no integer seq".into());
            return;
        };
        if v != Some(1) {
            self.problem(line, Some(seq), "the entry is not format version 1".into());
        }
        match (&self.tenant, tenant) {
            (_, None) => self.problem(line, Some(seq), "the entry has no tenant".into()),
            (None, Some(tenant)) => self.tenant = Some(tenant.to_string()),
            (Some(expected), Some(tenant)) if expected != tenant => {
                let message = format!("the entry is in tenant {tenant:?}'s chain");
                self.problem(line, Some(seq), message);
            }
            _ => {}
        }

        // The entry's own hash.
        if actual != claimed.as_bytes() {
            let message = format!(
                "the entry was altered: its content hashes to {}, not to its entry_hash {claimed}",
                String::from_utf8_lossy(&actual)
            );
            self.problem(line, Some(seq), message);
        }

        // Its place in the chain.
        let prev = prev_hash.unwrap_or("");
        match self.next_seq {
            None => {
                if seq == 0 && prev != GENESIS_HASH {
                    self.problem(line, Some(0), "seq 0 must have prev_hash 0000…".into());
                } else if seq > 0 {
                    // A range starts at a checkpoint boundary: cp-<seq> anchors its prev_hash.
                    match self.checkpoints.get(&seq) {
                        Some(anchor) if anchor.root_hash == prev => {
                            self.met.insert(seq);
                        }
                        Some(anchor) => {
                            let message = format!(
                                "the first entry's prev_hash {prev} is not the hash {} that {} signs",
                                anchor.root_hash, anchor.file
                            );
                            self.problem(line, Some(seq), message);
                        }
                        None => {
                            let message = format!(
                                "the log starts at seq {seq}, which is not a checkpoint boundary \
                                 (no cp-{seq}.txt signs the entries before it)"
                            );
                            self.problem(line, Some(seq), message);
                        }
                    }
                }
            }
            Some(expected) if seq != expected => {
                let message = if seq > expected {
                    format!(
                        "seq {seq} where {expected} was expected: {} entr{} missing (removed lines?)",
                        seq - expected,
                        if seq - expected == 1 {
                            "y is"
                        } else {
                            "ies are"
                        }
                    )
                } else {
                    format!(
                        "seq {seq} where {expected} was expected: lines are out of order or repeated"
                    )
                };
                self.problem(line, Some(seq), message);
            }
            Some(_) => {
                if prev.as_bytes() != self.prev_hash {
                    let message = format!(
                        "chain break: prev_hash {prev} is not the previous entry's hash {}",
                        String::from_utf8_lossy(&self.prev_hash)
                    );
                    self.problem(line, Some(seq), message);
                }
            }
        }
        if let Some(size) = seq.checked_add(1)
            && let Some(cp) = self.checkpoints.get(&size)
        {
            self.met.insert(size);
            if cp.root_hash.as_bytes() != claimed.as_bytes() {
                let message = format!(
                    "{} does not match the log: it signs hash {} for size {size}, the log has {claimed}",
                    cp.file, cp.root_hash
                );
                self.problem(line, Some(seq), message);
            }
        }
        self.next_seq = seq.checked_add(1);
        if let Ok(claimed) = <[u8; 64]>::try_from(claimed.as_bytes()) {
            self.prev_hash = claimed;
        }
    }

    /// Problems with checkpoints the walk never reached; returns the walk's problems.
    fn finish(mut self, report: &mut Report) {
        let last_size = self.next_seq.unwrap_or(0);
        let unmet: Vec<(u64, Expected)> = self
            .checkpoints
            .iter()
            .filter(|(size, _)| !self.met.contains(size))
            .map(|(size, cp)| (*size, cp.clone()))
            .collect();
        for (size, cp) in unmet {
            let message = if size > last_size {
                format!(
                    "the log stops at size {last_size} but {} signs size {size}: entries were removed from the end (truncated)",
                    cp.file
                )
            } else {
                format!(
                    "{} signs size {size}, before the first entry of this log, and cannot be checked",
                    cp.file
                )
            };
            self.problem(None, None, message);
        }
        let newest = self.checkpoints.keys().next_back().copied();
        match newest {
            Some(newest) if newest < last_size => report.notes.push(format!(
                "tenant {}: entries {newest}..{} are chained but not yet covered by a signed checkpoint",
                self.tenant.as_deref().unwrap_or("?"),
                last_size - 1
            )),
            None if last_size > 0 => report.notes.push(format!(
                "tenant {}: no checkpoint signs this chain yet; only its internal links were checked",
                self.tenant.as_deref().unwrap_or("?")
            )),
            _ => {}
        }
        report.entries += self.entries;
        report.problems.append(&mut self.problems);
    }
}

/// Verifies every chain in the database, and the stored checkpoints against them. Without a
/// verifier key the checkpoints' contents are still compared with the log, but not their
/// signatures.
pub async fn verify_database(
    conn: &impl ConnectionTrait,
    vkey: Option<&VerifierKey>,
) -> Result<Report, VerifyError> {
    let mut report = Report::default();
    if vkey.is_none() {
        report
            .notes
            .push("no verifier key given: checkpoint signatures were not checked".into());
    }
    let heads: BTreeMap<String, audit_head::Model> = audit_head::Entity::find()
        .all(conn)
        .await?
        .into_iter()
        .map(|head| (head.tenant.clone(), head))
        .collect();
    let mut tenants: BTreeSet<String> = audit_entry::Entity::find()
        .select_only()
        .column(audit_entry::Column::Tenant)
        .distinct()
        .into_tuple::<String>()
        .all(conn)
        .await?
        .into_iter()
        .collect();
    tenants.extend(heads.keys().cloned());
    let stored = checkpoints(conn, None).await?;
    tenants.extend(stored.iter().map(|cp| cp.tenant.clone()));

    for tenant in tenants {
        let mut expected = BTreeMap::new();
        for row in stored.iter().filter(|cp| cp.tenant == tenant) {
            report.checkpoints += 1;
            let file = format!("checkpoint {tenant}/{}", row.size);
            let problem = |message: String| Problem {
                file: "database".into(),
                line: None,
                tenant: Some(tenant.clone()),
                seq: None,
                message,
            };
            if let Some(vkey) = vkey {
                match Checkpoint::open(&row.note, vkey) {
                    Ok(cp) => {
                        let columns = (row.size, row.root_hash.as_str(), row.issued_at.as_str());
                        let note = (
                            i64::try_from(cp.size).unwrap_or(-1),
                            cp.root_hash.as_str(),
                            cp.issued_at.as_str(),
                        );
                        if cp.tenant != tenant || columns != note {
                            report.problems.push(problem(format!(
                                "{file}: the row's columns differ from its signed note"
                            )));
                        }
                    }
                    Err(err) => report.problems.push(problem(format!("{file}: {err}"))),
                }
            }
            if let Ok(size) = u64::try_from(row.size) {
                expected.insert(
                    size,
                    Expected {
                        root_hash: row.root_hash.clone(),
                        file,
                    },
                );
            }
        }

        let mut walk = ChainWalk::new(Some(tenant.clone()), "database", &expected);
        let mut from = 0i64;
        loop {
            let rows = audit_entry::Entity::find()
                .filter(audit_entry::Column::Tenant.eq(tenant.as_str()))
                .filter(audit_entry::Column::Seq.gte(from))
                .order_by_asc(audit_entry::Column::Seq)
                .limit(PAGE)
                .all(conn)
                .await?;
            let Some(last) = rows.last() else { break };
            from = last.seq + 1;
            for row in &rows {
                let before = walk.problems.len();
                walk.push(None, &row.canonical, Some(&row.entry_hash));
                let seq = u64::try_from(row.seq).ok();
                let inside = canonical::scan(&row.canonical).ok();
                if inside.as_ref().and_then(|top| top.seq) != seq
                    || inside.as_ref().and_then(|top| top.prev_hash) != Some(row.prev_hash.as_str())
                {
                    walk.problem(
                        None,
                        seq,
                        "the row's seq or prev_hash columns differ from the entry".into(),
                    );
                }
                // Name the row's own seq when the entry itself could not say.
                for problem in &mut walk.problems[before..] {
                    problem.seq = problem.seq.or(seq);
                }
            }
            if (rows.len() as u64) < PAGE {
                break;
            }
        }
        let size = walk.next_seq.unwrap_or(0);
        let head_hash = String::from_utf8_lossy(&walk.prev_hash).into_owned();
        match heads.get(&tenant) {
            Some(head) if u64::try_from(head.size).ok() != Some(size) => walk.problem(
                None,
                None,
                format!(
                    "the chain head says {} entries, the table holds {size}",
                    head.size
                ),
            ),
            Some(head) if size > 0 && head.head_hash != head_hash => walk.problem(
                None,
                None,
                "the chain head's hash is not the last entry's hash".into(),
            ),
            None if size > 0 => walk.problem(None, None, "the chain has no head row".into()),
            _ => {}
        }
        walk.finish(&mut report);
    }
    Ok(report)
}

/// The files of an export bundle.
pub mod bundle {
    /// One canonical entry with `entry_hash` per line.
    pub const ENTRIES: &str = "entries.jsonl";
    /// The directory of signed checkpoints, `cp-<size>.txt`.
    pub const CHECKPOINTS: &str = "checkpoints";
    /// The verifier key, for reference only: auditors take theirs from an independent channel.
    pub const VKEY: &str = "vkey.txt";
    /// `sha256sum`-style digests of every other file.
    pub const SHA256SUMS: &str = "SHA256SUMS";
}

/// Verifies an export bundle against a verifier key obtained independently of the bundle.
pub fn verify_bundle(dir: &Path, vkey: &VerifierKey) -> Result<Report, VerifyError> {
    let read = |name: &str| {
        std::fs::read(dir.join(name)).map_err(|source| VerifyError::Io {
            path: dir.join(name).display().to_string(),
            source,
        })
    };
    let mut report = Report::default();
    let problem = |file: &str, message: String| Problem {
        file: file.to_owned(),
        line: None,
        tenant: None,
        seq: None,
        message,
    };

    // Every file, and SHA256SUMS over them.
    let mut files = vec![bundle::ENTRIES.to_owned()];
    if dir.join(bundle::VKEY).exists() {
        files.push(bundle::VKEY.to_owned());
    }
    let cp_dir = dir.join(bundle::CHECKPOINTS);
    if cp_dir.is_dir() {
        let listing = std::fs::read_dir(&cp_dir).map_err(|source| VerifyError::Io {
            path: cp_dir.display().to_string(),
            source,
        })?;
        for item in listing {
            let item = item.map_err(|source| VerifyError::Io {
                path: cp_dir.display().to_string(),
                source,
            })?;
            files.push(format!(
                "{}/{}",
                bundle::CHECKPOINTS,
                item.file_name().to_string_lossy()
            ));
        }
    }
    files.sort();
    let entries_bytes = read(bundle::ENTRIES)?;
    // The file's digest (for SHA256SUMS) and the entries' own checks, side by side.
    let (entries_digest, chunks) = std::thread::scope(|scope| {
        let digest = scope.spawn(|| Sha256::digest(&entries_bytes));
        let chunks = scan_lines(&entries_bytes);
        let digest = digest
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (digest, chunks)
    });
    match std::fs::read_to_string(dir.join(bundle::SHA256SUMS)) {
        Err(_) => report.problems.push(problem(
            bundle::SHA256SUMS,
            "missing: the bundle's file list cannot be checked".into(),
        )),
        Ok(sums) => {
            let mut listed = BTreeSet::new();
            for (n, line) in sums.lines().enumerate() {
                let Some((digest, name)) = line.split_once("  ") else {
                    report.problems.push(Problem {
                        line: Some(n + 1),
                        ..problem(bundle::SHA256SUMS, "not `<sha256>  <file>`".into())
                    });
                    continue;
                };
                listed.insert(name.to_owned());
                let digest_of = if name == bundle::ENTRIES {
                    Ok(entries_digest)
                } else {
                    read(name).map(|bytes| Sha256::digest(&bytes))
                };
                match digest_of {
                    Ok(actual) if hex::encode(actual) == digest => {}
                    Ok(_) => report.problems.push(problem(
                        name,
                        "its SHA-256 differs from SHA256SUMS (the file was changed)".into(),
                    )),
                    Err(_) => report.problems.push(problem(
                        name,
                        "listed in SHA256SUMS but missing (a file was removed)".into(),
                    )),
                }
            }
            for name in files.iter().filter(|name| !listed.contains(*name)) {
                report.problems.push(problem(
                    name,
                    "not listed in SHA256SUMS (a file was added)".into(),
                ));
            }
        }
    }
    if let Ok(bytes) = read(bundle::VKEY)
        && String::from_utf8_lossy(&bytes).trim() != vkey.to_string()
    {
        report.problems.push(problem(
            bundle::VKEY,
            format!("the bundle names another verifier key than the one given ({vkey})"),
        ));
    }

    // Checkpoints.
    let mut expected = BTreeMap::new();
    let mut tenant: Option<String> = None;
    for file in files.iter().filter(|f| f.starts_with(bundle::CHECKPOINTS)) {
        report.checkpoints += 1;
        let note = String::from_utf8(read(file)?).unwrap_or_default();
        match Checkpoint::open(&note, vkey) {
            Err(err) => report.problems.push(problem(file, err.to_string())),
            Ok(cp) => {
                if *file != format!("{}/cp-{}.txt", bundle::CHECKPOINTS, cp.size) {
                    report.problems.push(problem(
                        file,
                        format!("the file name does not match its size {}", cp.size),
                    ));
                }
                if tenant.get_or_insert_with(|| cp.tenant.clone()) != &cp.tenant {
                    report.problems.push(problem(
                        file,
                        format!("a checkpoint of another tenant ({})", cp.tenant),
                    ));
                }
                expected.insert(
                    cp.size,
                    Expected {
                        root_hash: cp.root_hash,
                        file: file.clone(),
                    },
                );
            }
        }
    }

    if expected.is_empty() {
        report.problems.push(problem(
            bundle::CHECKPOINTS,
            "no checkpoint signed by the verifier key: nothing in this bundle is signed".into(),
        ));
    }

    // Entries.
    let mut walk = ChainWalk::new(tenant, bundle::ENTRIES, &expected);
    let mut number = 0;
    for line in chunks.into_iter().flat_map(|chunk| chunk.lines) {
        number += 1;
        match line {
            ScannedLine::Text(scanned) => walk.push_scanned(Some(number), scanned, None),
            ScannedLine::NotUtf8(at) => {
                walk.entries += 1;
                let seq = walk.next_seq;
                walk.problem(Some(number), seq, format!("not UTF-8 (byte {at})"));
                walk.next_seq = seq.map(|s| s + 1);
            }
        }
    }
    let tail_start = entries_bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    let tail = &entries_bytes[tail_start..];
    if !tail.is_empty() {
        walk.problem(
            Some(number + 1),
            None,
            format!(
                "the last line is not terminated by a newline (cut off?): {}",
                String::from_utf8_lossy(tail)
                    .chars()
                    .take(40)
                    .collect::<String>()
            ),
        );
    }
    if number == 0 {
        walk.problem(None, None, "no entries".into());
    }
    walk.finish(&mut report);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_file_line_tenant_and_seq() {
        let problem = Problem {
            file: "entries.jsonl".into(),
            line: Some(3),
            tenant: Some("acme".into()),
            seq: Some(2),
            message: "chain break".into(),
        };
        assert_eq!(
            problem.to_string(),
            "entries.jsonl:3 (tenant acme, seq 2): chain break"
        );
    }
}
