//! Appending to a tenant's chain inside the caller's transaction.
//!
//! The tenant's head row is locked (a row lock taken by an upsert on PostgreSQL; SQLite write
//! transactions are started with `BEGIN IMMEDIATE`, one writer at a time), so appends to one chain are
//! serialized and `seq` is gapless. `seq` never comes from a database sequence.

use crate::entry::{
    EncodeError, Entry, Event, FORMAT_VERSION, GENESIS_HASH, entry_hash, format_ts,
};
use arbiter_db::Script;
use arbiter_db::entity::audit_entry;
use arbiter_db::sea_orm::sea_query::Expr;
use arbiter_db::sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};
use chrono::{DateTime, Utc};

/// Why an append or a read failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
    /// The entry could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A stored entry is not valid JSON.
    #[error("stored audit entry {tenant}/{seq} is unreadable: {source}")]
    Corrupt {
        /// The tenant.
        tenant: String,
        /// The entry's seq.
        seq: i64,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// An entry as stored: the entry and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The entry.
    pub entry: Entry,
    /// Its hash.
    pub entry_hash: String,
}

impl StoredEntry {
    /// The canonical JSON with `entry_hash`: one line of an export.
    pub fn to_line(&self) -> Result<String, EncodeError> {
        self.entry.canonical_with_hash(&self.entry_hash)
    }

    /// The head of its chain once it is the last entry.
    pub fn head_after(&self) -> Head {
        Head {
            size: i64::try_from(self.entry.seq)
                .unwrap_or(i64::MAX)
                .saturating_add(1),
            hash: self.entry_hash.clone(),
        }
    }
}

/// A chain's head: how many entries it holds and the last one's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Entries in the chain: the next one's `seq`.
    pub size: i64,
    /// The last entry's hash (the genesis hash for an empty chain).
    pub hash: String,
}

/// Locks the tenant's head row (creating it for a new chain) and reads it, in one statement:
/// an upsert that leaves the row as it is. On PostgreSQL `ON CONFLICT DO UPDATE` holds the
/// row's lock until the transaction ends; on SQLite the transaction already holds the write lock.
const LOCK_HEAD: &str = "INSERT INTO audit_heads (tenant, size, head_hash) VALUES ($1, 0, $2) \
     ON CONFLICT (tenant) DO UPDATE SET size = audit_heads.size RETURNING size, head_hash";

/// The columns of an entry row, in the order [`append_many`] binds them.
const ENTRY_COLUMNS: &str = "tenant, seq, event, ts, request_id, reference_id, image_sha256, \
     prev_hash, entry_hash, canonical";

/// Values bound per entry row.
const ENTRY_VALUES: usize = 10;

/// Entry rows written per statement: well inside both databases' limits on bound values.
const ROWS_PER_STATEMENT: usize = 200;

/// Appends an event to the tenant's chain, inside the caller's transaction.
///
/// Two round trips: lock and read the head; insert the entry and move the head.
pub async fn append(
    conn: &impl ConnectionTrait,
    tenant: &str,
    ts: DateTime<Utc>,
    event: Event,
) -> Result<StoredEntry, AuditError> {
    let mut stored = append_many(conn, tenant, ts, vec![event]).await?;
    stored
        .pop()
        .ok_or_else(|| DbErr::Custom("an append returned no entry".to_owned()).into())
}

/// Appends events, in order, to the tenant's chain inside the caller's transaction.
///
/// The head is locked and read once, the entries are inserted 200 to a statement and the head
/// moves once: the same round trips for a run of entries as for one.
pub async fn append_many(
    conn: &impl ConnectionTrait,
    tenant: &str,
    ts: DateTime<Utc>,
    events: Vec<Event>,
) -> Result<Vec<StoredEntry>, AuditError> {
    append_many_alongside(conn, tenant, ts, events, None).await
}

/// Rows of the caller's own written with a run of entries: on SQLite in the same round trip as
/// the last of them (one statement string, run first), on PostgreSQL just before them.
#[derive(Debug)]
pub struct Alongside {
    /// The insert. Its values are bound in order: `?` on SQLite (as sea-query writes them).
    pub statement: Statement,
    /// The rows it writes.
    pub rows: u64,
}

/// [`append_many`], writing `alongside` in the same round trip as the entries where the
/// database allows.
pub async fn append_many_alongside(
    conn: &impl ConnectionTrait,
    tenant: &str,
    ts: DateTime<Utc>,
    events: Vec<Event>,
    alongside: Option<Alongside>,
) -> Result<Vec<StoredEntry>, AuditError> {
    let backend = conn.get_database_backend();
    // PostgreSQL runs one statement at a time: the caller's rows go first, on their own.
    let mut alongside = match alongside {
        Some(rows) if backend == DbBackend::Postgres || events.is_empty() => {
            let written = conn.execute_raw(rows.statement).await?.rows_affected();
            if written != rows.rows {
                return Err(DbErr::Custom(format!(
                    "an insert of {} rows alongside audit entries wrote {written}",
                    rows.rows
                ))
                .into());
            }
            None
        }
        other => other,
    };
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let lock =
        Statement::from_sql_and_values(backend, LOCK_HEAD, [tenant.into(), GENESIS_HASH.into()]);
    let head = conn
        .query_one_raw(lock)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("audit head of tenant {tenant}")))?;
    let size: i64 = head.try_get_by_index(0)?;
    let hash: String = head.try_get_by_index(1)?;
    let (stored, rows, after) = chain(tenant, ts, events, Head { size, hash })?;

    // All but the last chunk of rows alone; the last with the head's move, in one round trip.
    let count = stored.len();
    let mut rows = rows.into_iter().peekable();
    // Rows each statement should change: SQLite counts the entries and, in the last, the head;
    // PostgreSQL counts the head only in the last (its entries are inside the WITH), and refuses
    // the whole statement if any entry fails.
    let (mut written, mut expected) = (0, 0);
    while rows.peek().is_some() {
        let mut values: Vec<Value> = rows
            .by_ref()
            .take(ROWS_PER_STATEMENT * ENTRY_VALUES)
            .collect();
        let last = rows.peek().is_none();
        // The caller's rows run first in the last statement: their values come first, and the
        // entries' numbered values after them.
        let (before, mut sql, offset) = match alongside.take().filter(|_| last) {
            Some(Alongside { statement, rows }) => {
                let before = statement.values.map(|values| values.0).unwrap_or_default();
                expected += rows;
                let offset = before.len();
                (before, format!("{}; ", statement.sql), offset)
            }
            None => (Vec::new(), String::new(), 0),
        };
        let placeholders = placeholders(offset, values.len());
        let entries = (values.len() / ENTRY_VALUES) as u64;
        sql += &format!("INSERT INTO audit_entries ({ENTRY_COLUMNS}) VALUES {placeholders}");
        if last {
            let (tenant_at, size_at, hash_at) = (
                offset + 1,
                offset + values.len() + 1,
                offset + values.len() + 2,
            );
            sql = match backend {
                DbBackend::Postgres => format!(
                    "WITH entry AS ({sql}) \
                     UPDATE audit_heads SET size = ${size_at}, head_hash = ${hash_at} WHERE tenant = ${tenant_at}"
                ),
                _ => format!(
                    "{sql}; UPDATE audit_heads SET size = ${size_at}, head_hash = ${hash_at} \
                     WHERE tenant = ${tenant_at}"
                ),
            };
            values.extend([after.size.into(), after.hash.as_str().into()]);
            expected += match backend {
                DbBackend::Postgres => 1,
                _ => entries + 1,
            };
        } else {
            expected += entries;
        }
        let values: Vec<Value> = before.into_iter().chain(values).collect();
        written += conn
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
            .rows_affected();
    }
    if written != expected {
        return Err(DbErr::Custom(format!(
            "appending {count} entries to tenant {tenant}'s audit chain changed {written} rows"
        ))
        .into());
    }
    Ok(stored)
}

/// Appends events to the tenant's chain after `head`, as statements of `script` (SQLite): the
/// entries' inserts and the head's move from `head`, which fails — and so rolls the script's
/// transaction back — unless the head is still `head` when the script runs. Returns the entries
/// and the head after them. No round trip: nothing is read.
pub fn append_to_script(
    script: &mut Script,
    tenant: &str,
    ts: DateTime<Utc>,
    events: Vec<Event>,
    head: &Head,
) -> Result<(Vec<StoredEntry>, Head), AuditError> {
    let (stored, rows, after) = chain(tenant, ts, events, head.clone())?;
    if stored.is_empty() {
        return Ok((stored, after));
    }
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let values: Vec<Value> = rows
            .by_ref()
            .take(ROWS_PER_STATEMENT * ENTRY_VALUES)
            .collect();
        let row = format!("({})", ["?"; ENTRY_VALUES].join(", "));
        let placeholders = vec![row; values.len() / ENTRY_VALUES].join(", ");
        let sql = format!("INSERT INTO audit_entries ({ENTRY_COLUMNS}) VALUES {placeholders}");
        script.push(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            values,
        ));
    }
    // A chain not there yet starts at the genesis head. A head that is not `head` (one that
    // moved, or a new chain when `head` says it holds entries) sets the size to NULL, which its
    // NOT NULL refuses.
    let sql = "INSERT INTO audit_heads (tenant, size, head_hash) VALUES (?, 0, ?) \
         ON CONFLICT (tenant) DO NOTHING";
    let values: [Value; 2] = [tenant.into(), GENESIS_HASH.into()];
    script.push(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        sql,
        values,
    ));
    let sql = "UPDATE audit_heads SET size = CASE WHEN size = ? AND head_hash = ? THEN ? END, \
         head_hash = ? WHERE tenant = ?";
    let values: [Value; 5] = [
        head.size.into(),
        head.hash.as_str().into(),
        after.size.into(),
        after.hash.as_str().into(),
        tenant.into(),
    ];
    script.push(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        sql,
        values,
    ));
    Ok((stored, after))
}

/// The entries of `events` chained after `head`, their rows' values ([`ENTRY_VALUES`] each, in
/// [`ENTRY_COLUMNS`] order), and the head after them.
fn chain(
    tenant: &str,
    ts: DateTime<Utc>,
    events: Vec<Event>,
    head: Head,
) -> Result<(Vec<StoredEntry>, Vec<Value>, Head), AuditError> {
    let ts = format_ts(ts);
    let mut prev_hash = head.hash;
    let mut stored = Vec::with_capacity(events.len());
    let mut rows = Vec::with_capacity(events.len() * ENTRY_VALUES);
    for (seq, event) in (head.size..).zip(events) {
        let entry = Entry {
            v: FORMAT_VERSION,
            seq: u64::try_from(seq).unwrap_or_default(),
            prev_hash,
            ts: ts.clone(),
            tenant: tenant.to_owned(),
            event,
        };
        let canonical = entry.canonical()?;
        let hash = entry_hash(&canonical);
        let optional = |value: Option<&str>| Value::String(value.map(str::to_owned));
        rows.extend([
            tenant.into(),
            seq.into(),
            entry.event.name().into(),
            entry.ts.as_str().into(),
            optional(entry.event.request_id()),
            optional(entry.event.reference_id()),
            optional(entry.event.image_sha256()),
            entry.prev_hash.as_str().into(),
            hash.as_str().into(),
            canonical.into(),
        ]);
        prev_hash = hash.clone();
        stored.push(StoredEntry {
            entry,
            entry_hash: hash,
        });
    }
    let after = Head {
        size: head.size + i64::try_from(stored.len()).unwrap_or(i64::MAX),
        hash: prev_hash,
    };
    Ok((stored, rows, after))
}

/// `($1, $2, ...), ($11, ...)` for `values` bound values after the first `offset`,
/// [`ENTRY_VALUES`] to a row. Both databases read `$n` as the n-th value.
fn placeholders(offset: usize, values: usize) -> String {
    (0..values / ENTRY_VALUES)
        .map(|row| {
            let columns: Vec<String> = (1..=ENTRY_VALUES)
                .map(|column| format!("${}", offset + row * ENTRY_VALUES + column))
                .collect();
            format!("({})", columns.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The order entries are listed in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Order {
    /// Oldest first: by tenant, then seq ascending.
    #[default]
    Asc,
    /// Newest first: by tenant descending, then seq descending.
    Desc,
}

impl std::str::FromStr for Order {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "asc" => Ok(Order::Asc),
            "desc" => Ok(Order::Desc),
            other => Err(format!("unknown order {other:?} (asc or desc)")),
        }
    }
}

/// A position in the listing: the last entry already seen. The next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The last entry's tenant.
    pub tenant: String,
    /// The last entry's seq.
    pub seq: u64,
}

/// Which entries to read. Every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    /// Only this tenant's chain.
    pub tenant: Option<String>,
    /// At most this many, the first ones in `order`.
    pub limit: Option<u64>,
    /// Oldest or newest first.
    pub order: Order,
    /// Only entries after this position in `order` (cursor paging).
    pub after: Option<Cursor>,
    /// Only entries about this request.
    pub request_id: Option<String>,
    /// Only entries with this caller's reference.
    pub reference_id: Option<String>,
    /// Only entries about this image (SHA-256 of its bytes).
    pub image_sha256: Option<String>,
    /// Only this event (`decision.recorded`, ...).
    pub event: Option<String>,
    /// Only decisions of this flow (`insurance`, ...).
    pub flow: Option<String>,
    /// Only entries naming this action: in a decision's `actions`, or a review's `action`.
    pub action: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries at or before this time.
    pub until: Option<DateTime<Utc>>,
}

/// One page of entries and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The entries, in the filter's order.
    pub entries: Vec<StoredEntry>,
    /// The position after the last entry, when more entries match.
    pub next: Option<Cursor>,
}

/// The `flow` and `action` conditions read the entry's JSON: its top-level `flow`, its
/// `actions` array and its `action`.
fn json_conditions(backend: DbBackend, filter: &EntryFilter) -> Vec<Expr> {
    let mut conditions = Vec::new();
    let postgres = backend == DbBackend::Postgres;
    if let Some(flow) = &filter.flow {
        let sql = if postgres {
            "(audit_entries.canonical::jsonb ->> 'flow') = $1"
        } else {
            "json_extract(audit_entries.canonical, '$.flow') = ?"
        };
        conditions.push(Expr::cust_with_values(sql, [flow.as_str()]));
    }
    if let Some(action) = &filter.action {
        let sql = if postgres {
            "((audit_entries.canonical::jsonb ->> 'action') = $1 \
             OR (audit_entries.canonical::jsonb -> 'actions') @> jsonb_build_array($1::text))"
        } else {
            "(json_extract(audit_entries.canonical, '$.action') = ? OR EXISTS (SELECT 1 FROM \
             json_each(audit_entries.canonical, '$.actions') AS a WHERE a.value = ?))"
        };
        let values: &[&str] = if postgres {
            &[action.as_str()]
        } else {
            &[action.as_str(), action.as_str()]
        };
        conditions.push(Expr::cust_with_values(sql, values.iter().copied()));
    }
    conditions
}

/// A request's trail: every entry of `tenant`'s chain about `request_id`, oldest first.
pub async fn request_trail(
    conn: &impl ConnectionTrait,
    tenant: &str,
    request_id: &str,
) -> Result<Vec<StoredEntry>, AuditError> {
    let filter = EntryFilter {
        tenant: Some(tenant.to_owned()),
        request_id: Some(request_id.to_owned()),
        order: Order::Asc,
        ..EntryFilter::default()
    };
    entries(conn, &filter).await
}

/// Entries matching `filter`, in its order.
pub async fn entries(
    conn: &impl ConnectionTrait,
    filter: &EntryFilter,
) -> Result<Vec<StoredEntry>, AuditError> {
    let mut query = audit_entry::Entity::find();
    let columns = [
        (audit_entry::Column::Tenant, &filter.tenant),
        (audit_entry::Column::RequestId, &filter.request_id),
        (audit_entry::Column::ReferenceId, &filter.reference_id),
        (audit_entry::Column::ImageSha256, &filter.image_sha256),
        (audit_entry::Column::Event, &filter.event),
    ];
    for (column, value) in columns {
        if let Some(value) = value {
            query = query.filter(column.eq(value.as_str()));
        }
    }
    for condition in json_conditions(conn.get_database_backend(), filter) {
        query = query.filter(condition);
    }
    // `ts` is fixed-width UTC text, so it compares as time does.
    if let Some(since) = filter.since {
        query = query.filter(audit_entry::Column::Ts.gte(format_ts(since)));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_entry::Column::Ts.lte(format_ts(until)));
    }
    if let Some(after) = &filter.after {
        let seq = i64::try_from(after.seq).unwrap_or(i64::MAX);
        let (tenant, same) = (audit_entry::Column::Tenant, audit_entry::Column::Tenant);
        let condition = match filter.order {
            Order::Asc => Condition::any().add(tenant.gt(after.tenant.as_str())).add(
                Condition::all()
                    .add(same.eq(after.tenant.as_str()))
                    .add(audit_entry::Column::Seq.gt(seq)),
            ),
            Order::Desc => Condition::any().add(tenant.lt(after.tenant.as_str())).add(
                Condition::all()
                    .add(same.eq(after.tenant.as_str()))
                    .add(audit_entry::Column::Seq.lt(seq)),
            ),
        };
        query = query.filter(condition);
    }
    query = match filter.order {
        Order::Asc => query
            .order_by_asc(audit_entry::Column::Tenant)
            .order_by_asc(audit_entry::Column::Seq),
        Order::Desc => query
            .order_by_desc(audit_entry::Column::Tenant)
            .order_by_desc(audit_entry::Column::Seq),
    };
    if let Some(limit) = filter.limit {
        query = query.limit(limit);
    }
    query
        .all(conn)
        .await?
        .into_iter()
        .map(|row| {
            let entry =
                serde_json::from_str(&row.canonical).map_err(|source| AuditError::Corrupt {
                    tenant: row.tenant.clone(),
                    seq: row.seq,
                    source,
                })?;
            Ok(StoredEntry {
                entry,
                entry_hash: row.entry_hash,
            })
        })
        .collect()
}

/// The entry at `seq` in `tenant`'s chain.
pub async fn entry(
    conn: &impl ConnectionTrait,
    tenant: &str,
    seq: u64,
) -> Result<Option<StoredEntry>, AuditError> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(None);
    };
    let Some(row) = audit_entry::Entity::find_by_id((tenant.to_owned(), seq))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let entry = serde_json::from_str(&row.canonical).map_err(|source| AuditError::Corrupt {
        tenant: row.tenant.clone(),
        seq: row.seq,
        source,
    })?;
    Ok(Some(StoredEntry {
        entry,
        entry_hash: row.entry_hash,
    }))
}

/// One page of at most `limit` entries matching `filter` (whose own `limit` is ignored), and
/// the cursor of the next page when there is more.
pub async fn page(
    conn: &impl ConnectionTrait,
    filter: &EntryFilter,
    limit: u64,
) -> Result<Page, AuditError> {
    let limit = limit.max(1);
    let probe = EntryFilter {
        limit: Some(limit + 1),
        ..filter.clone()
    };
    let mut entries = entries(conn, &probe).await?;
    let more = entries.len() as u64 > limit;
    entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = match entries.last() {
        Some(last) if more => Some(Cursor {
            tenant: last.entry.tenant.clone(),
            seq: last.entry.seq,
        }),
        _ => None,
    };
    Ok(Page { entries, next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbiter_db::sea_orm::TransactionTrait;
    use arbiter_db::{Db, testing::test_targets};

    fn abandoned(n: u32) -> Event {
        Event::WebhookAbandoned {
            request_id: format!("req_{n}"),
            reference_id: None,
            endpoint: "claims-system".to_owned(),
            attempts: n,
            detail: "unreachable".to_owned(),
        }
    }

    #[tokio::test]
    async fn concurrent_appends_build_gapless_linked_chains() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let tasks: Vec<_> = (0..24u32)
                .map(|n| {
                    let db = db.clone();
                    tokio::spawn(async move {
                        let tenant = if n % 2 == 0 { "acme" } else { "globex" };
                        let txn = db.begin_write().await.unwrap();
                        append(&txn, tenant, Utc::now(), abandoned(n))
                            .await
                            .unwrap();
                        txn.commit().await.unwrap();
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            // A rolled-back append leaves no trace and no gap.
            let txn = db.conn().begin().await.unwrap();
            append(&txn, "acme", Utc::now(), abandoned(99))
                .await
                .unwrap();
            txn.rollback().await.unwrap();

            for tenant in ["acme", "globex"] {
                let filter = EntryFilter {
                    tenant: Some(tenant.to_owned()),
                    ..EntryFilter::default()
                };
                let chain = entries(db.conn(), &filter).await.unwrap();
                assert_eq!(chain.len(), 12, "{label}");
                let mut prev = GENESIS_HASH.to_owned();
                for (i, stored) in chain.iter().enumerate() {
                    assert_eq!(stored.entry.seq, i as u64, "{label}");
                    assert_eq!(stored.entry.prev_hash, prev, "{label}");
                    assert_eq!(
                        entry_hash(&stored.entry.canonical().unwrap()),
                        stored.entry_hash
                    );
                    prev = stored.entry_hash.clone();
                }
            }
            let last_two = entries(
                db.conn(),
                &EntryFilter {
                    tenant: Some("acme".into()),
                    limit: Some(2),
                    order: Order::Desc,
                    ..EntryFilter::default()
                },
            )
            .await
            .unwrap();
            assert_eq!(
                last_two.iter().map(|e| e.entry.seq).collect::<Vec<_>>(),
                vec![11, 10],
                "{label}"
            );
            // Cursor paging, both ways, across both chains.
            for order in [Order::Asc, Order::Desc] {
                let mut filter = EntryFilter {
                    order,
                    ..EntryFilter::default()
                };
                let mut seen = Vec::new();
                loop {
                    let page = page(db.conn(), &filter, 5).await.unwrap();
                    assert!(page.entries.len() <= 5);
                    seen.extend(
                        page.entries
                            .iter()
                            .map(|e| (e.entry.tenant.clone(), e.entry.seq)),
                    );
                    match page.next {
                        Some(next) => filter.after = Some(next),
                        None => break,
                    }
                }
                let mut expected: Vec<_> = ["acme", "globex"]
                    .iter()
                    .flat_map(|t| (0..12).map(|s| (t.to_string(), s)))
                    .collect();
                if order == Order::Desc {
                    expected.reverse();
                }
                assert_eq!(seen, expected, "{label} {order:?}");
            }
            assert_eq!(
                entry(db.conn(), "globex", 3)
                    .await
                    .unwrap()
                    .unwrap()
                    .entry
                    .seq,
                3
            );
            assert!(entry(db.conn(), "globex", 12).await.unwrap().is_none());
            db.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }

    /// A run of entries, longer than one statement holds, continues the chain as the same
    /// entries appended one by one would: gapless, linked, and the head at its end.
    #[tokio::test]
    async fn a_run_of_appends_continues_the_chain_across_statements() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let txn = db.begin_write().await.unwrap();
            append(&txn, "acme", Utc::now(), abandoned(0))
                .await
                .unwrap();
            let run = (1..=450).map(abandoned).collect();
            let stored = append_many(&txn, "acme", Utc::now(), run).await.unwrap();
            assert_eq!(stored.len(), 450, "{label}");
            assert!(
                append_many(&txn, "acme", Utc::now(), Vec::new())
                    .await
                    .unwrap()
                    .is_empty()
            );
            let next = append(&txn, "acme", Utc::now(), abandoned(451))
                .await
                .unwrap();
            txn.commit().await.unwrap();
            assert_eq!(next.entry.seq, 451, "{label}");
            assert_eq!(next.entry.prev_hash, stored[449].entry_hash, "{label}");
            let chain = entries(db.conn(), &EntryFilter::default()).await.unwrap();
            let mut prev = GENESIS_HASH.to_owned();
            for (i, entry) in chain.iter().enumerate() {
                assert_eq!(entry.entry.seq, i as u64, "{label}");
                assert_eq!(entry.entry.prev_hash, prev, "{label}");
                prev = entry.entry_hash.clone();
            }
            assert_eq!(chain.len(), 452, "{label}");
            assert_eq!(chain[200].entry_hash, stored[199].entry_hash, "{label}");
            let report = crate::verify_database(db.conn(), None).await.unwrap();
            assert!(report.ok(), "{label}: {:?}", report.problems);
            db.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }

    /// The entry and the head are written together: when the entry cannot be inserted, the
    /// head does not move and the append fails.
    #[tokio::test]
    async fn a_failed_entry_insert_leaves_the_head_where_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let backend = db.backend();
            let txn = db.begin_write().await.unwrap();
            append(&txn, "acme", Utc::now(), abandoned(1))
                .await
                .unwrap();
            // A row squatting on the next seq, as a second writer without the lock would leave.
            let squat = Statement::from_sql_and_values(
                backend,
                "INSERT INTO audit_entries (tenant, seq, event, ts, prev_hash, entry_hash, \
                 canonical) VALUES ($1, 1, 'x', 'x', 'x', 'x', '{}')",
                ["acme".into()],
            );
            txn.execute_raw(squat).await.unwrap();
            let failed = append(&txn, "acme", Utc::now(), abandoned(2)).await;
            assert!(
                matches!(failed, Err(AuditError::Db(_))),
                "{label}: {failed:?}"
            );
            if backend == DbBackend::Sqlite {
                // PostgreSQL has aborted the transaction; SQLite can still be asked.
                let head = txn
                    .query_one_raw(Statement::from_string(
                        backend,
                        "SELECT size FROM audit_heads WHERE tenant = 'acme'",
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(head.try_get_by_index::<i64>(0).unwrap(), 1, "{label}");
            }
            txn.rollback().await.unwrap();
            db.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }

    /// A script appends after the head it was given and moves it, with the caller's rows, in one
    /// transaction; a script whose head has moved since writes nothing, and the writer goes on.
    #[tokio::test]
    async fn a_script_appends_after_its_head_or_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::connect(&arbiter_db::DbTarget::DataDir(dir.path().to_owned()))
            .await
            .unwrap();
        let count = async |sql: &str| {
            let row = db
                .conn()
                .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql));
            row.await
                .unwrap()
                .unwrap()
                .try_get_by_index::<i64>(0)
                .unwrap()
        };
        db.conn()
            .execute_unprepared("CREATE TABLE notes (id TEXT PRIMARY KEY)")
            .await
            .unwrap();
        let note = |id: &str| {
            Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "INSERT INTO notes (id) VALUES (?)",
                [id.into()],
            )
        };
        let txn = db.begin_write().await.unwrap();
        let first = append_many(&txn, "acme", Utc::now(), vec![abandoned(1), abandoned(2)])
            .await
            .unwrap();
        txn.commit().await.unwrap();
        let head = first[1].head_after();
        assert_eq!(head.size, 2);

        let mut script = Script::default();
        script.push(note("a"));
        let events = vec![abandoned(3), abandoned(4), abandoned(5)];
        let (stored, after) =
            append_to_script(&mut script, "acme", Utc::now(), events, &head).unwrap();
        db.write_at_once(script).await.unwrap();
        assert_eq!(after, stored[2].head_after());
        assert_eq!(stored[0].entry.seq, 2);
        assert_eq!(stored[0].entry.prev_hash, head.hash);
        let size = "SELECT size FROM audit_heads WHERE tenant = 'acme'";
        assert_eq!(count(size).await, 5);
        let read = entries(db.conn(), &EntryFilter::default()).await.unwrap();
        assert_eq!(read[2..], stored[..]);

        // The same head again: it has moved, so neither the note nor the entries are written.
        let mut script = Script::default();
        script.push(note("b"));
        append_to_script(&mut script, "acme", Utc::now(), vec![abandoned(6)], &head).unwrap();
        assert!(db.write_at_once(script).await.is_err());
        assert_eq!(count(size).await, 5);
        assert_eq!(count("SELECT COUNT(*) FROM audit_entries").await, 5);
        assert_eq!(count("SELECT COUNT(*) FROM notes").await, 1);

        // A chain that is not there cannot be appended to after a head that says it is; from
        // the genesis head it starts.
        let genesis = Head {
            size: 0,
            hash: GENESIS_HASH.to_owned(),
        };
        let mut script = Script::default();
        append_to_script(&mut script, "globex", Utc::now(), vec![abandoned(7)], &head).unwrap();
        assert!(db.write_at_once(script).await.is_err());
        let mut script = Script::default();
        append_to_script(
            &mut script,
            "globex",
            Utc::now(),
            vec![abandoned(8)],
            &genesis,
        )
        .unwrap();
        db.write_at_once(script).await.unwrap();
        assert_eq!(
            count("SELECT size FROM audit_heads WHERE tenant = 'globex'").await,
            1
        );

        // The writer was left outside any transaction: the next one begins.
        let txn = db.begin_write().await.unwrap();
        let next = append(&txn, "acme", Utc::now(), abandoned(9))
            .await
            .unwrap();
        txn.commit().await.unwrap();
        assert_eq!(next.entry.seq, 5);
        assert_eq!(next.entry.prev_hash, after.hash);
        db.close().await.unwrap();
    }

    /// A caller's rows go in with the entries; when they cannot be written, neither are the
    /// entries and the head does not move.
    #[tokio::test]
    async fn rows_alongside_are_written_with_the_entries_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let backend = db.backend();
            let count = async |txn: &sea_orm::DatabaseTransaction, sql: &str| {
                let row = txn.query_one_raw(Statement::from_string(backend, sql));
                row.await
                    .unwrap()
                    .unwrap()
                    .try_get_by_index::<i64>(0)
                    .unwrap()
            };
            let notes = |ids: [&str; 2]| Alongside {
                statement: Statement::from_sql_and_values(
                    backend,
                    match backend {
                        DbBackend::Postgres => "INSERT INTO notes (id) VALUES ($1), ($2)",
                        _ => "INSERT INTO notes (id) VALUES (?), (?)",
                    },
                    ids.map(Value::from),
                ),
                rows: 2,
            };
            let txn = db.begin_write().await.unwrap();
            txn.execute_unprepared("CREATE TABLE notes (id TEXT PRIMARY KEY)")
                .await
                .unwrap();
            let events = vec![abandoned(1), abandoned(2), abandoned(3)];
            let stored =
                append_many_alongside(&txn, "acme", Utc::now(), events, Some(notes(["a", "b"])))
                    .await
                    .unwrap();
            let seqs: Vec<u64> = stored.iter().map(|stored| stored.entry.seq).collect();
            assert_eq!(seqs, [0, 1, 2], "{label}");
            assert_eq!(stored[1].entry.prev_hash, stored[0].entry_hash, "{label}");
            assert_eq!(
                count(&txn, "SELECT COUNT(*) FROM notes").await,
                2,
                "{label}"
            );
            let head = "SELECT size FROM audit_heads WHERE tenant = 'acme'";
            assert_eq!(count(&txn, head).await, 3, "{label}");

            // A note already there: nothing of the second run is written.
            let failed = append_many_alongside(
                &txn,
                "acme",
                Utc::now(),
                vec![abandoned(4)],
                Some(notes(["c", "a"])),
            )
            .await;
            assert!(
                matches!(failed, Err(AuditError::Db(_))),
                "{label}: {failed:?}"
            );
            if backend == DbBackend::Sqlite {
                // PostgreSQL has aborted the transaction; SQLite can still be asked.
                assert_eq!(count(&txn, head).await, 3, "{label}");
                let entries = "SELECT COUNT(*) FROM audit_entries WHERE tenant = 'acme'";
                assert_eq!(count(&txn, entries).await, 3, "{label}");
            }
            txn.rollback().await.unwrap();
            db.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }

    #[tokio::test]
    async fn filters_select_by_request_reference_image_event_flow_action_and_time() {
        use crate::entry::{AnalysisFields, VerdictBp};
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = test_targets(dir.path()).await.unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-01-15T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let analysis = |n: u32| Event::AnalysisRecorded {
            analysis: AnalysisFields {
                request_id: format!("req_{n}"),
                reference_id: Some(format!("claim-{}", n % 2)),
                image_sha256: format!("{n:064}"),
                detector: "local".into(),
                verdict: VerdictBp {
                    label: "AUTHENTIC".into(),
                    confidence_bp: 100,
                    risk_level: "LOW".into(),
                },
                scores: Default::default(),
                providers: Default::default(),
            },
        };
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            let txn = db.begin_write().await.unwrap();
            for n in 0..6u32 {
                let ts = t0 + chrono::Duration::minutes(i64::from(n));
                let event = if n == 5 { abandoned(1) } else { analysis(n) };
                append(&txn, "acme", ts, event).await.unwrap();
            }
            append(&txn, "globex", t0, analysis(1)).await.unwrap();
            let decided = |n: u32, flow: &str, actions: &[&str]| Event::DecisionRecorded {
                analysis: match analysis(n) {
                    Event::AnalysisRecorded { analysis } => analysis,
                    _ => unreachable!(),
                },
                flow: flow.into(),
                policy: arbiter_core::PolicyRef {
                    id: format!("{flow}.policy"),
                    version: 1,
                    sha256: "0".repeat(64),
                },
                rules: vec!["a-rule".into()],
                actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            };
            let late = t0 + chrono::Duration::hours(1);
            append(
                &txn,
                "acme",
                late,
                decided(6, "insurance", &["siu_escalation"]),
            )
            .await
            .unwrap();
            append(&txn, "acme", late, decided(7, "ugc", &["hold", "notify"]))
                .await
                .unwrap();
            let review = Event::ReviewResolved {
                request_id: "req_6".into(),
                reference_id: None,
                queue: "siu".into(),
                actor: "rev_1".into(),
                key_id: None,
                label: "AI_GENERATED".into(),
                action: "notify".into(),
            };
            append(&txn, "acme", late, review).await.unwrap();
            // The words appear elsewhere in the entry, but not as the flow or an action.
            append(&txn, "acme", late, decided(9, "kyc", &["proceed"]))
                .await
                .unwrap();
            txn.commit().await.unwrap();
            let seqs = async |filter: EntryFilter| {
                entries(db.conn(), &filter)
                    .await
                    .unwrap()
                    .iter()
                    .map(|e| (e.entry.tenant.clone(), e.entry.seq))
                    .collect::<Vec<_>>()
            };
            let acme = |seqs: &[u64]| {
                seqs.iter()
                    .map(|&s| ("acme".to_owned(), s))
                    .collect::<Vec<_>>()
            };
            let by_request = EntryFilter {
                request_id: Some("req_1".into()),
                ..EntryFilter::default()
            };
            assert_eq!(
                seqs(by_request.clone()).await,
                [
                    ("acme".to_owned(), 1),
                    ("acme".to_owned(), 5),
                    ("globex".to_owned(), 0)
                ],
                "{label}"
            );
            // A request's trail: the one tenant's entries about it, oldest first.
            let trail: Vec<u64> = request_trail(db.conn(), "acme", "req_1")
                .await
                .unwrap()
                .iter()
                .map(|e| e.entry.seq)
                .collect();
            assert_eq!(trail, [1, 5], "{label}");
            let filter = EntryFilter {
                tenant: Some("acme".into()),
                ..by_request
            };
            assert_eq!(seqs(filter).await, acme(&[1, 5]), "{label}");
            let filter = EntryFilter {
                tenant: Some("acme".into()),
                reference_id: Some("claim-0".into()),
                ..EntryFilter::default()
            };
            assert_eq!(seqs(filter).await, acme(&[0, 2, 4, 6]), "{label}");
            let filter = EntryFilter {
                image_sha256: Some(format!("{:064}", 3)),
                ..EntryFilter::default()
            };
            assert_eq!(seqs(filter).await, acme(&[3]), "{label}");
            let filter = EntryFilter {
                event: Some("webhook.abandoned".into()),
                ..EntryFilter::default()
            };
            assert_eq!(seqs(filter).await, acme(&[5]), "{label}");
            let filter = EntryFilter {
                tenant: Some("acme".into()),
                since: Some(t0 + chrono::Duration::minutes(2)),
                until: Some(t0 + chrono::Duration::seconds(4 * 60)),
                ..EntryFilter::default()
            };
            assert_eq!(seqs(filter).await, acme(&[2, 3, 4]), "{label}");
            let filter = EntryFilter {
                flow: Some("insurance".into()),
                ..EntryFilter::default()
            };
            assert_eq!(seqs(filter).await, acme(&[6]), "{label}");
            let filter = EntryFilter {
                flow: Some("ugc".into()),
                event: Some("decision.recorded".into()),
                ..EntryFilter::default()
            };
            assert_eq!(seqs(filter).await, acme(&[7]), "{label}");
            let filter = EntryFilter {
                action: Some("notify".into()),
                ..EntryFilter::default()
            };
            assert_eq!(seqs(filter).await, acme(&[7, 8]), "{label}");
            let filter = EntryFilter {
                action: Some("notify".into()),
                order: Order::Desc,
                limit: Some(1),
                ..EntryFilter::default()
            };
            assert_eq!(seqs(filter).await, acme(&[8]), "{label}");
            for absent in ["a-rule", "siu", "AI_GENERATED", "local", "kyc.policy"] {
                let filter = EntryFilter {
                    action: Some(absent.into()),
                    ..EntryFilter::default()
                };
                assert_eq!(seqs(filter).await, [], "{label} {absent}");
                let filter = EntryFilter {
                    flow: Some(absent.into()),
                    ..EntryFilter::default()
                };
                assert_eq!(seqs(filter).await, [], "{label} {absent}");
            }
            db.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
