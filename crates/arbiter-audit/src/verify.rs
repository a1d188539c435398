//! Verifying chains: the live database ([`verify_database`]) and an export bundle
//! ([`verify_bundle`]). Each problem says what is wrong and where (file, line, tenant, seq).
//!
//! Checked: every entry is canonical JSON and hashes to its `entry_hash`; `seq` runs gapless
//! from the first entry; each `prev_hash` is the previous `entry_hash` (64 zeros at seq 0); each
//! checkpoint is signed by the verifier key and states the hash the log has at its size; and
//! the log reaches every checkpoint it comes with. In the database, the columns served beside
//! each entry (the trail's and the filters') agree with the hashed entry.
//!
//! A bundle is not trusted: only its own files are opened (never a name `SHA256SUMS` gives),
//! only regular files inside its folder and never through a link, and no more than
//! [`MAX_FILE_BYTES`] of a file or [`MAX_LINE_BYTES`] of a line is read.

use crate::canonical::{self, TopLevel};
use crate::checkpoint::{Checkpoint, checkpoints};
use crate::entry::{Entry, GENESIS_HASH};
use crate::keys::VerifierKey;
use arbiter_db::entity::{audit_entry, audit_head};
use arbiter_db::sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

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

/// Bytes of `entries.jsonl` read at a time.
const BLOCK: usize = 1 << 20;

/// The longest line of `entries.jsonl` read, in bytes; a longer one stops verification.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// The most bytes read of any other file of a bundle (`SHA256SUMS`, a checkpoint, `vkey.txt`).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Opens a file of a bundle, named by the verifier (never by the bundle): only a regular file
/// in the bundle's folder, reached without following a link, so a bundle cannot lead the
/// verifier to a device, a pipe or a file elsewhere.
fn open_member(dir: &Path, name: &str) -> std::io::Result<std::fs::File> {
    let path = dir.join(name);
    if !std::fs::symlink_metadata(&path)?.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a link, a device or a folder): not read",
        ));
    }
    std::fs::File::open(path)
}

/// Reads a file of a bundle ([`open_member`]), at most `limit` bytes of it.
fn read_member(dir: &Path, name: &str, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_member(dir, name)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes: not read further"),
        ));
    }
    Ok(bytes)
}

/// Whole lines of `entries.jsonl`, each ending in `\n`.
struct Block {
    /// Where the block starts in the file.
    offset: usize,
    /// The lines.
    bytes: Vec<u8>,
}

/// Where a part of a line is in its block, so that what a worker found can travel with the block.
type Span = Range<usize>;

fn span(block: &[u8], part: &str) -> Span {
    let start = (part.as_ptr() as usize).saturating_sub(block.as_ptr() as usize);
    start..start + part.len()
}

fn text_at<'b>(block: &'b [u8], span: &Span) -> &'b str {
    // Spans are cut from text already checked to be UTF-8.
    block
        .get(span.clone())
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .unwrap_or_default()
}

/// [`TopLevel`] as spans of the block.
struct TopSpans {
    v: Option<u64>,
    seq: Option<u64>,
    prev_hash: Option<Span>,
    entry_hash: Option<Span>,
    /// The span, or the decoded tenant when it has escapes.
    tenant: Option<Result<Span, String>>,
}

/// One line of `entries.jsonl`, scanned by a worker.
enum LineFacts {
    /// The line is valid UTF-8.
    Text {
        top: Result<TopSpans, canonical::NotCanonical>,
        actual: [u8; 64],
    },
    /// The line is not UTF-8; the offset of the first bad byte in the file.
    NotUtf8(usize),
}

fn line_facts(block: &[u8], line: &str) -> LineFacts {
    let Scanned { top, actual } = scan_entry(line);
    let top = top.map(|top| TopSpans {
        v: top.v,
        seq: top.seq,
        prev_hash: top.prev_hash.map(|hash| span(block, hash)),
        entry_hash: top.entry_hash.map(|(hash, _)| span(block, hash)),
        tenant: top.tenant.map(|tenant| match tenant {
            Cow::Borrowed(tenant) => Ok(span(block, tenant)),
            Cow::Owned(tenant) => Err(tenant),
        }),
    });
    LineFacts::Text { top, actual }
}

/// Scans every line of a block.
fn scan_block(block: &Block) -> Vec<LineFacts> {
    let bytes = &block.bytes;
    let lines = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(last) => &bytes[..last],
        None => return Vec::new(),
    };
    let mut facts = Vec::with_capacity(lines.len() / 512 + 1);
    match std::str::from_utf8(lines) {
        Ok(text) => facts.extend(text.split('\n').map(|line| line_facts(bytes, line))),
        Err(_) => {
            let mut at = block.offset;
            for line in lines.split(|&b| b == b'\n') {
                facts.push(match std::str::from_utf8(line) {
                    Ok(text) => line_facts(bytes, text),
                    Err(err) => LineFacts::NotUtf8(at + err.valid_up_to()),
                });
                at += line.len() + 1;
            }
        }
    }
    facts
}

/// Rebuilds what [`scan_entry`] found from a worker's spans.
fn scanned<'b>(block: &'b [u8], facts: LineFacts) -> Result<Scanned<'b>, usize> {
    match facts {
        LineFacts::NotUtf8(at) => Err(at),
        LineFacts::Text { top, actual } => Ok(Scanned {
            top: top.map(|top| TopLevel {
                v: top.v,
                seq: top.seq,
                prev_hash: top.prev_hash.map(|span| text_at(block, &span)),
                entry_hash: top.entry_hash.map(|span| (text_at(block, &span), span)),
                tenant: top.tenant.map(|tenant| match tenant {
                    Ok(span) => Cow::Borrowed(text_at(block, &span)),
                    Err(tenant) => Cow::Owned(tenant),
                }),
                after_entry_hash_key: None,
            }),
            actual,
        }),
    }
}

/// What streaming `entries.jsonl` leaves besides the walk.
struct Streamed {
    /// SHA-256 of the whole file.
    digest: [u8; 32],
    /// The bytes after the last `\n` (empty when the file ends with one).
    tail: Vec<u8>,
}

/// Reads `entries.jsonl` a block at a time without holding the whole file: one thread reads,
/// one hashes the file (for SHA256SUMS), the others scan the blocks' lines, and `walk` is given
/// each block and its lines' facts in file order.
fn stream_entries(
    mut file: impl Read + Send,
    path: &Path,
    block_size: usize,
    mut walk: impl FnMut(&[u8], Vec<LineFacts>),
) -> Result<Streamed, VerifyError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
    let (work_tx, work_rx) = mpsc::sync_channel::<(usize, Arc<Block>)>(workers * 2);
    // Shared by the workers, and dropped with the last of them, so that the reader stops too.
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (digest_tx, digest_rx) = mpsc::sync_channel::<Arc<Block>>(workers * 4);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Arc<Block>, Vec<LineFacts>)>();
    // Buffers come back to the reader once both the hash and the walk are done with them.
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<u8>>();
    let recycle = |block: Arc<Block>, spare: &mpsc::Sender<Vec<u8>>| {
        if let Some(block) = Arc::into_inner(block) {
            spare.send(block.bytes).ok();
        }
    };

    std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> std::io::Result<Vec<u8>> {
            let mut offset = 0;
            let mut index = 0;
            let mut carry = Vec::new();
            loop {
                let mut bytes = std::mem::take(&mut carry);
                let read = (&mut file)
                    .take(block_size as u64)
                    .read_to_end(&mut bytes)?;
                if read == 0 {
                    // The end: whatever follows the last newline.
                    let tail = Block { offset, bytes };
                    let bytes = tail.bytes.clone();
                    digest_tx.send(Arc::new(tail)).ok();
                    return Ok(bytes);
                }
                // Only the first line can have begun in an earlier block.
                let first_line = bytes
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(bytes.len());
                if first_line > MAX_LINE_BYTES {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!(
                            "a line longer than {MAX_LINE_BYTES} bytes, from byte {offset}: \
                             not read further"
                        ),
                    ));
                }
                let Some(last) = bytes.iter().rposition(|&b| b == b'\n') else {
                    carry = bytes; // a line longer than a block: read on
                    continue;
                };
                carry = spare_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(block_size + block_size / 4));
                carry.clear();
                carry.extend_from_slice(&bytes[last + 1..]);
                bytes.truncate(last + 1);
                let len = bytes.len();
                let block = Arc::new(Block { offset, bytes });
                offset += len;
                if digest_tx.send(Arc::clone(&block)).is_err()
                    || work_tx.send((index, block)).is_err()
                {
                    return Ok(Vec::new());
                }
                index += 1;
            }
        });
        let digest_spare = spare_tx.clone();
        let digest = scope.spawn(move || {
            let mut hasher = Sha256::new();
            for block in digest_rx {
                hasher.update(&block.bytes);
                recycle(block, &digest_spare);
            }
            <[u8; 32]>::from(hasher.finalize())
        });
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let work_rx = Arc::clone(&work_rx);
            scope.spawn(move || {
                loop {
                    let next = work_rx
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .recv();
                    let Ok((index, block)) = next else { break };
                    let facts = scan_block(&block);
                    if done_tx.send((index, block, facts)).is_err() {
                        break;
                    }
                }
            });
        }
        drop((done_tx, work_rx));

        // The walk, in file order.
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        for (index, block, facts) in done_rx {
            waiting.insert(index, (block, facts));
            while let Some((block, facts)) = waiting.remove(&next) {
                walk(&block.bytes, facts);
                recycle(block, &spare_tx);
                next += 1;
            }
        }
        let tail = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            .map_err(|source| VerifyError::Io {
                path: path.display().to_string(),
                source,
            })?;
        let digest = digest
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok(Streamed { digest, tail })
    })
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

    /// Checks one entry already scanned by [`scan_entry`]: a line (with `entry_hash`) or, when
    /// `stored_hash` is given, the stored canonical JSON without it.
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

/// The columns the trail and the entry filters read (`event`, `ts`, `request_id`,
/// `reference_id`, `image_sha256`) that differ from the hashed entry, named; `None` when all
/// agree.
fn served_columns_differ(row: &audit_entry::Model) -> Option<String> {
    let Ok(entry) = serde_json::from_str::<Entry>(&row.canonical) else {
        return Some("the entry cannot be read to check the row's columns against it".into());
    };
    let differ: Vec<&str> = [
        (
            "event",
            Some(row.event.as_str()) == Some(entry.event.name()),
        ),
        ("ts", row.ts == entry.ts),
        (
            "request_id",
            row.request_id.as_deref() == entry.event.request_id(),
        ),
        (
            "reference_id",
            row.reference_id.as_deref() == entry.event.reference_id(),
        ),
        (
            "image_sha256",
            row.image_sha256.as_deref() == entry.event.image_sha256(),
        ),
    ]
    .into_iter()
    .filter_map(|(column, same)| (!same).then_some(column))
    .collect();
    (!differ.is_empty()).then(|| {
        format!(
            "the row's {} column{} differ{} from the entry",
            differ.join(", "),
            if differ.len() == 1 { "" } else { "s" },
            if differ.len() == 1 { "s" } else { "" },
        )
    })
}

/// Verifies every chain in the database, and the stored checkpoints against them, and checks
/// that the columns served beside each entry (its seq, prev_hash, event, ts, request_id,
/// reference_id and image_sha256) say what the hashed entry says. Without a verifier key the
/// checkpoints' contents are still compared with the log, but not their signatures.
pub async fn verify_database(
    conn: &impl ConnectionTrait,
    vkey: Option<&VerifierKey>,
) -> Result<Report, VerifyError> {
    verify_chains(conn, vkey, None).await
}

/// [`verify_database`] for one tenant's chain only: its entries, head and checkpoints.
pub async fn verify_tenant(
    conn: &impl ConnectionTrait,
    tenant: &str,
    vkey: Option<&VerifierKey>,
) -> Result<Report, VerifyError> {
    verify_chains(conn, vkey, Some(tenant)).await
}

async fn verify_chains(
    conn: &impl ConnectionTrait,
    vkey: Option<&VerifierKey>,
    only: Option<&str>,
) -> Result<Report, VerifyError> {
    let mut report = Report::default();
    if vkey.is_none() {
        report
            .notes
            .push("no verifier key given: checkpoint signatures were not checked".into());
    }
    let mut heads_query = audit_head::Entity::find();
    if let Some(tenant) = only {
        heads_query = heads_query.filter(audit_head::Column::Tenant.eq(tenant));
    }
    let heads: BTreeMap<String, audit_head::Model> = heads_query
        .all(conn)
        .await?
        .into_iter()
        .map(|head| (head.tenant.clone(), head))
        .collect();
    let mut tenants: BTreeSet<String> = match only {
        Some(tenant) => BTreeSet::from([tenant.to_owned()]),
        None => audit_entry::Entity::find()
            .select_only()
            .column(audit_entry::Column::Tenant)
            .distinct()
            .into_tuple::<String>()
            .all(conn)
            .await?
            .into_iter()
            .collect(),
    };
    tenants.extend(heads.keys().cloned());
    let stored = checkpoints(conn, only).await?;
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
                let seq = u64::try_from(row.seq).ok();
                // One scan serves the entry's checks and the comparison with its columns.
                let scanned = scan_entry(&row.canonical);
                let inside = scanned
                    .top
                    .as_ref()
                    .ok()
                    .map(|top| (top.seq, top.prev_hash));
                walk.push_scanned(None, scanned, Some(&row.entry_hash));
                if inside.and_then(|(seq, _)| seq) != seq
                    || inside.and_then(|(_, prev)| prev) != Some(row.prev_hash.as_str())
                {
                    walk.problem(
                        None,
                        seq,
                        "the row's seq or prev_hash columns differ from the entry".into(),
                    );
                }
                if let Some(message) = served_columns_differ(row) {
                    walk.problem(None, seq, message);
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

    /// Whether `name` could be a file of a bundle listed in `SHA256SUMS`: `entries.jsonl`,
    /// `vkey.txt` or a file directly in `checkpoints/`.
    pub(crate) fn names_a_member(name: &str) -> bool {
        name == ENTRIES
            || name == VKEY
            || name
                .strip_prefix("checkpoints/")
                .is_some_and(|file| !file.is_empty() && !file.contains('/') && file != "..")
    }
}

/// Verifies an export bundle against a verifier key obtained independently of the bundle.
///
/// `entries.jsonl` is read a block at a time, never whole, and its lines are checked on every
/// available core while it is read.
pub fn verify_bundle(dir: &Path, vkey: &VerifierKey) -> Result<Report, VerifyError> {
    let read = |name: &str| read_member(dir, name, MAX_FILE_BYTES);
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
    let cp_dir_is_dir = std::fs::symlink_metadata(&cp_dir).is_ok_and(|meta| meta.is_dir());
    if cp_dir.exists() && !cp_dir_is_dir {
        report.problems.push(problem(
            bundle::CHECKPOINTS,
            "not a folder of the bundle (a link or a file): not read".into(),
        ));
    }
    if cp_dir_is_dir {
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

    // Checkpoints first: the walk meets them on the way.
    let mut cp_problems = Vec::new();
    let mut expected = BTreeMap::new();
    let mut tenant: Option<String> = None;
    for file in files.iter().filter(|f| f.starts_with(bundle::CHECKPOINTS)) {
        report.checkpoints += 1;
        let note = match read(file) {
            Ok(bytes) => String::from_utf8(bytes).unwrap_or_default(),
            Err(err) => {
                cp_problems.push(problem(file, err.to_string()));
                continue;
            }
        };
        match Checkpoint::open(&note, vkey) {
            Err(err) => cp_problems.push(problem(file, err.to_string())),
            Ok(cp) => {
                if *file != format!("{}/cp-{}.txt", bundle::CHECKPOINTS, cp.size) {
                    cp_problems.push(problem(
                        file,
                        format!("the file name does not match its size {}", cp.size),
                    ));
                }
                if tenant.get_or_insert_with(|| cp.tenant.clone()) != &cp.tenant {
                    cp_problems.push(problem(
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
        cp_problems.push(problem(
            bundle::CHECKPOINTS,
            "no checkpoint signed by the verifier key: nothing in this bundle is signed".into(),
        ));
    }

    // Entries, walked as they are read; the file's digest on the way.
    let entries_path = dir.join(bundle::ENTRIES);
    let entries_file = open_member(dir, bundle::ENTRIES).map_err(|source| VerifyError::Io {
        path: entries_path.display().to_string(),
        source,
    })?;
    let mut walk = ChainWalk::new(tenant, bundle::ENTRIES, &expected);
    let mut number = 0;
    let Streamed {
        digest: entries_digest,
        tail,
    } = stream_entries(entries_file, &entries_path, BLOCK, |block, facts| {
        for facts in facts {
            number += 1;
            match scanned(block, facts) {
                Ok(scanned) => walk.push_scanned(Some(number), scanned, None),
                Err(at) => {
                    walk.entries += 1;
                    let seq = walk.next_seq;
                    walk.problem(Some(number), seq, format!("not UTF-8 (byte {at})"));
                    walk.next_seq = seq.map(|s| s + 1);
                }
            }
        }
    })?;

    match read(bundle::SHA256SUMS) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => report.problems.push(problem(
            bundle::SHA256SUMS,
            "missing: the bundle's file list cannot be checked".into(),
        )),
        Err(err) => report.problems.push(problem(
            bundle::SHA256SUMS,
            format!("{err}; the bundle's file list cannot be checked"),
        )),
        Ok(sums) => {
            let sums = String::from_utf8_lossy(&sums);
            let mut listed = BTreeSet::new();
            for (n, line) in sums.lines().enumerate() {
                let Some((digest, name)) = line.split_once("  ") else {
                    report.problems.push(Problem {
                        line: Some(n + 1),
                        ..problem(bundle::SHA256SUMS, "not `<sha256>  <file>`".into())
                    });
                    continue;
                };
                // Only the bundle's own files are opened, never a name SHA256SUMS gives.
                if !files.iter().any(|file| file == name) {
                    report.problems.push(if bundle::names_a_member(name) {
                        problem(
                            name,
                            "listed in SHA256SUMS but missing (a file was removed)".into(),
                        )
                    } else {
                        Problem {
                            line: Some(n + 1),
                            ..problem(
                                bundle::SHA256SUMS,
                                format!(
                                    "names {name:?}, which is not a file of the bundle: not read"
                                ),
                            )
                        }
                    });
                    continue;
                }
                listed.insert(name.to_owned());
                let digest_of = if name == bundle::ENTRIES {
                    Ok(entries_digest)
                } else {
                    read(name).map(|bytes| Sha256::digest(&bytes).into())
                };
                match digest_of {
                    Ok(actual) if hex::encode(actual) == digest => {}
                    Ok(_) => report.problems.push(problem(
                        name,
                        "its SHA-256 differs from SHA256SUMS (the file was changed)".into(),
                    )),
                    Err(err) => report.problems.push(problem(name, err.to_string())),
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
    report.problems.append(&mut cp_problems);

    if !tail.is_empty() {
        walk.problem(
            Some(number + 1),
            None,
            format!(
                "the last line is not terminated by a newline (cut off?): {}",
                String::from_utf8_lossy(&tail)
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

    /// What a scan found, comparable across scans of different buffers.
    fn describe(scanned: Result<Scanned<'_>, usize>) -> String {
        match scanned {
            Err(at) => format!("not UTF-8 at {at}"),
            Ok(Scanned { top: Err(err), .. }) => format!("{err}"),
            Ok(Scanned {
                top: Ok(top),
                actual,
            }) => format!(
                "{:?} {:?} {:?} {:?} {:?} {}",
                top.v,
                top.seq,
                top.prev_hash,
                top.entry_hash.map(|(hash, _)| hash),
                top.tenant,
                String::from_utf8_lossy(&actual)
            ),
        }
    }

    /// Streaming in blocks of any size finds what scanning each line on its own finds, in order,
    /// with the file's digest and its unterminated tail.
    #[test]
    fn streamed_blocks_scan_like_single_lines() {
        let hash = |n: u8| format!("{n:064}");
        let mut file: Vec<u8> = Vec::new();
        for n in 0..40u8 {
            let line = match n % 8 {
                // Escaped tenant: the worker hands over the decoded name.
                3 => format!(
                    r#"{{"entry_hash":"{}","prev_hash":"{}","seq":{n},"tenant":"t\n{n}","v":1}}"#,
                    hash(n),
                    hash(n + 1)
                ),
                5 => "not json".to_owned(),
                6 => String::new(),
                _ => format!(
                    r#"{{"detail":"{}","entry_hash":"{}","prev_hash":"{}","seq":{n},"tenant":"acme","v":1}}"#,
                    "ü".repeat(usize::from(n) * 7),
                    hash(n),
                    hash(n + 1)
                ),
            };
            file.extend_from_slice(line.as_bytes());
            if n == 17 {
                file.extend_from_slice(b"\xff\xfe");
            }
            file.push(b'\n');
        }
        file.extend_from_slice(b"{\"cut\":");

        let mut expected = Vec::new();
        let mut at = 0;
        let last = file.iter().rposition(|&b| b == b'\n').unwrap();
        for line in file[..last].split(|&b| b == b'\n') {
            expected.push(describe(match std::str::from_utf8(line) {
                Ok(text) => Ok(scan_entry(text)),
                Err(err) => Err(at + err.valid_up_to()),
            }));
            at += line.len() + 1;
        }
        assert!(expected.iter().any(|line| line.starts_with("not UTF-8 at")));
        assert!(expected.iter().any(|line| line.contains(r#"Some("t\n3")"#)));

        for block_size in [1, 7, 64, 500, 4096, BLOCK] {
            let mut found = Vec::new();
            let streamed = stream_entries(
                std::io::Cursor::new(&file),
                Path::new("entries.jsonl"),
                block_size,
                |block, facts| {
                    for facts in facts {
                        found.push(describe(scanned(block, facts)));
                    }
                },
            )
            .unwrap();
            assert_eq!(found, expected, "block size {block_size}");
            assert_eq!(streamed.digest, <[u8; 32]>::from(Sha256::digest(&file)));
            assert_eq!(streamed.tail, b"{\"cut\":");
        }
    }

    /// A read error stops the stream and is reported with the file.
    #[test]
    fn an_endless_line_is_not_read_past_the_limit() {
        // Endless bytes and never a newline, as /dev/zero gives.
        let err = stream_entries(
            std::io::repeat(b'x'),
            Path::new("entries.jsonl"),
            BLOCK,
            |_, _| {},
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "entries.jsonl: a line longer than {MAX_LINE_BYTES} bytes, from byte 0: not read further"
            )
        );
        // Long lines under the limit are read whole.
        let line = format!("{}\n", "x".repeat(3 * BLOCK));
        let mut lines = 0;
        stream_entries(
            line.as_bytes(),
            Path::new("entries.jsonl"),
            BLOCK,
            |_, facts| {
                lines += facts.len();
            },
        )
        .unwrap();
        assert_eq!(lines, 1);
    }

    #[test]
    fn read_errors_are_reported() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("disk on fire"));
                }
                self.0 -= 1;
                let line = b"{}\n";
                let n = line.len().min(buf.len());
                buf[..n].copy_from_slice(&line[..n]);
                Ok(n)
            }
        }
        let err = stream_entries(Failing(5), Path::new("x/entries.jsonl"), 4, |_, _| {})
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "x/entries.jsonl: disk on fire");
    }

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
