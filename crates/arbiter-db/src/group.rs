//! Group commit: the writes of many concurrent callers in one transaction; and group reads:
//! the lookups of many concurrent callers in one query.
//!
//! Callers hand their items to a committer task and wait for its answer. The task takes every
//! item waiting (up to a limit), writes them all in one transaction and answers each caller once
//! it has committed. While it commits, new items queue, so the busier the writer, the larger the
//! groups: a transaction's fixed cost (SQLite's one writer, PostgreSQL's commit flush, the
//! statements that do not grow with the group) is paid once per group.
//!
//! When a group fails, each of its items is written again alone, so a caller gets its own
//! item's outcome, never another's failure. A caller that stops waiting does not stop the
//! write: its item is committed or not as if it had waited.

use crate::Db;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// What a group commit writes: many items inside one transaction.
pub trait GroupWrite: Send + Sync + 'static {
    /// One caller's item.
    type Item: Send + Sync + 'static;
    /// What a caller gets back for its item once committed.
    type Output: Send + 'static;
    /// Why a write failed.
    type Error: From<DbErr> + Send + 'static;

    /// Writes `items` inside `txn`; one output per item, in their order.
    fn write<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        items: &'a [Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Output>, Self::Error>> + Send + 'a;

    /// Writes `items` in a transaction of its own making, in fewer round trips than
    /// [`GroupWrite::write`] takes (say with [`Db::write_at_once`]); `None` when it cannot for
    /// these items. When it cannot, or fails, the items go to [`GroupWrite::write`].
    fn write_at_once<'a>(
        &'a self,
        db: &'a Db,
        items: &'a [Self::Item],
    ) -> impl Future<Output = Option<Result<Vec<Self::Output>, Self::Error>>> + Send + 'a {
        let _ = (db, items);
        async { None }
    }
}

type Waiting<W> = (
    <W as GroupWrite>::Item,
    oneshot::Sender<Result<<W as GroupWrite>::Output, <W as GroupWrite>::Error>>,
);

/// A handle to a committer task. Cheap to clone; the task ends when the last handle is dropped.
pub struct GroupCommit<W: GroupWrite> {
    queue: mpsc::UnboundedSender<Waiting<W>>,
}

impl<W: GroupWrite> Clone for GroupCommit<W> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<W: GroupWrite> std::fmt::Debug for GroupCommit<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<W: GroupWrite> GroupCommit<W> {
    /// Starts a committer task on the current Tokio runtime, writing at most `max_group` items
    /// to a transaction.
    pub fn start(db: Db, writer: W, max_group: usize) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(run(db, Arc::new(writer), waiting, max_group.max(1)));
        Self { queue }
    }

    /// Writes `item` in the next group and returns its output once the group has committed.
    pub async fn submit(&self, item: W::Item) -> Result<W::Output, W::Error> {
        let (answer, answered) = oneshot::channel();
        let gone = || stopped("the group committer");
        self.queue.send((item, answer)).map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?
    }
}

/// The error of a caller whose group task has stopped.
fn stopped<E: From<DbErr>>(task: &str) -> E {
    DbErr::Custom(format!("{task} has stopped")).into()
}

async fn run<W: GroupWrite>(
    db: Db,
    writer: Arc<W>,
    mut waiting: mpsc::UnboundedReceiver<Waiting<W>>,
    max_group: usize,
) {
    let mut group = Vec::with_capacity(max_group);
    while waiting.recv_many(&mut group, max_group).await > 0 {
        let (items, answers): (Vec<_>, Vec<_>) = std::mem::take(&mut group).into_iter().unzip();
        match commit(&db, writer.as_ref(), &items).await {
            Ok(outputs) => {
                for (answer, output) in answers.into_iter().zip(outputs) {
                    // A caller that stopped waiting has nothing to be told.
                    let _ = answer.send(Ok(output));
                }
            }
            Err(err) if items.len() == 1 => {
                if let Some(answer) = answers.into_iter().next() {
                    let _ = answer.send(Err(err));
                }
            }
            Err(_) => {
                for (item, answer) in items.iter().zip(answers) {
                    let alone = commit(&db, writer.as_ref(), std::slice::from_ref(item)).await;
                    let output = alone.and_then(|mut outputs| {
                        outputs.pop().ok_or_else(|| {
                            DbErr::Custom("a group write returned no output".to_owned()).into()
                        })
                    });
                    let _ = answer.send(output);
                }
            }
        }
    }
}

async fn commit<W: GroupWrite>(
    db: &Db,
    writer: &W,
    items: &[W::Item],
) -> Result<Vec<W::Output>, W::Error> {
    if let Some(Ok(outputs)) = writer.write_at_once(db, items).await {
        check_outputs(items, &outputs)?;
        return Ok(outputs);
    }
    let txn = db.begin_write().await?;
    let outputs = writer.write(&txn, items).await?;
    check_outputs(items, &outputs)?;
    txn.commit().await?;
    Ok(outputs)
}

/// One output per item.
fn check_outputs<I, O>(items: &[I], outputs: &[O]) -> Result<(), DbErr> {
    if outputs.len() == items.len() {
        return Ok(());
    }
    Err(DbErr::Custom(format!(
        "a group write of {} items returned {} outputs",
        items.len(),
        outputs.len()
    )))
}

/// What a group read looks up: many callers' queries answered by one database read.
pub trait GroupLookup: Send + Sync + 'static {
    /// One caller's query.
    type Query: Send + 'static;
    /// What a caller gets back.
    type Found: Send + 'static;

    /// Answers `queries` with one read (or a few); one answer per query, in their order.
    fn read<'a>(
        &'a self,
        conn: &'a DatabaseConnection,
        queries: &'a [Self::Query],
    ) -> impl Future<Output = Result<Vec<Self::Found>, DbErr>> + Send + 'a;
}

type Asked<L> = (
    <L as GroupLookup>::Query,
    oneshot::Sender<Result<<L as GroupLookup>::Found, String>>,
);

/// A handle to a reading task: the queries waiting when a read starts go in that read, so a
/// burst of callers costs the database one read, not one each; two reads run at a time. Cheap
/// to clone; the task ends when the last handle is dropped.
pub struct GroupRead<L: GroupLookup> {
    queue: mpsc::UnboundedSender<Asked<L>>,
}

impl<L: GroupLookup> Clone for GroupRead<L> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<L: GroupLookup> std::fmt::Debug for GroupRead<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupRead").finish_non_exhaustive()
    }
}

/// Queries answered by one read at most.
const READ_GROUP: usize = 64;

/// Reads a reading task runs at the same time at most: while they are out, queries gather.
const READS_AT_ONCE: usize = 2;

impl<L: GroupLookup> GroupRead<L> {
    /// Starts a reading task on the current Tokio runtime.
    pub fn start(conn: DatabaseConnection, lookup: L) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(read(conn, lookup, waiting));
        Self { queue }
    }

    /// The answer to `query`, from the next read.
    pub async fn get(&self, query: L::Query) -> Result<L::Found, DbErr> {
        let gone = || stopped::<DbErr>("the group reader");
        let (answer, answered) = oneshot::channel();
        self.queue.send((query, answer)).map_err(|_| gone())?;
        answered.await.map_err(|_| gone())?.map_err(DbErr::Custom)
    }
}

async fn read<L: GroupLookup>(
    conn: DatabaseConnection,
    lookup: L,
    mut waiting: mpsc::UnboundedReceiver<Asked<L>>,
) {
    let mut reading = FuturesUnordered::new();
    let mut group = Vec::with_capacity(READ_GROUP);
    loop {
        let room = reading.len() < READS_AT_ONCE;
        tokio::select! {
            taken = waiting.recv_many(&mut group, READ_GROUP), if room => {
                if taken == 0 {
                    break;
                }
                reading.push(read_group(&conn, &lookup, std::mem::take(&mut group)));
            }
            Some(()) = reading.next() => {}
        }
    }
    while reading.next().await.is_some() {}
}

/// Reads a group of queries and answers each (every one with the error when the read failed).
async fn read_group<L: GroupLookup>(conn: &DatabaseConnection, lookup: &L, group: Vec<Asked<L>>) {
    let (queries, answers): (Vec<_>, Vec<_>) = group.into_iter().unzip();
    match lookup.read(conn, &queries).await {
        Ok(found) if found.len() == queries.len() => {
            for (answer, found) in answers.into_iter().zip(found) {
                // A caller that stopped waiting has nothing to be told.
                let _ = answer.send(Ok(found));
            }
        }
        outcome => {
            let err = match outcome {
                Err(err) => err.to_string(),
                Ok(found) => format!(
                    "a group read of {} queries gave {} answers",
                    queries.len(),
                    found.len()
                ),
            };
            for answer in answers {
                let _ = answer.send(Err(err.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use sea_orm::{ConnectionTrait, Statement};
    use std::sync::Mutex;

    /// Inserts one row per name; a name already there fails the write. Records the size of
    /// every group it is given.
    #[derive(Default)]
    struct Names {
        groups: Arc<Mutex<Vec<usize>>>,
    }

    impl GroupWrite for Names {
        type Item = String;
        type Output = String;
        type Error = DbErr;

        async fn write(
            &self,
            txn: &DatabaseTransaction,
            items: &[String],
        ) -> Result<Vec<String>, DbErr> {
            self.groups.lock().unwrap().push(items.len());
            for name in items {
                let insert = Statement::from_sql_and_values(
                    txn.get_database_backend(),
                    "INSERT INTO names (name) VALUES ($1)",
                    [name.as_str().into()],
                );
                txn.execute_raw(insert).await?;
            }
            Ok(items.iter().map(|name| format!("stored {name}")).collect())
        }
    }

    #[tokio::test]
    async fn waiting_writes_share_a_transaction_and_a_failing_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (targets, postgres) = testing::test_targets(dir.path()).await.unwrap();
        for (label, target) in targets {
            let db = Db::connect(&target).await.unwrap();
            db.conn()
                .execute_unprepared("CREATE TABLE names (name TEXT PRIMARY KEY)")
                .await
                .unwrap();
            let names = Names::default();
            let groups = names.groups.clone();
            let commit = GroupCommit::start(db.clone(), names, 64);

            // Fifty callers waiting at once: one transaction.
            let first: Vec<_> = (0..50).map(|n| commit.submit(format!("a{n}"))).collect();
            let outputs = futures_util::future::join_all(first).await;
            assert!(outputs.iter().all(Result::is_ok), "{label}");
            assert_eq!(outputs[7].as_ref().unwrap(), "stored a7", "{label}");
            assert_eq!(*groups.lock().unwrap(), [50], "{label}");

            // One bad item among ten: the group fails, each is written again alone.
            let second: Vec<_> = ["b0", "b1", "a3", "b2"]
                .into_iter()
                .map(|name| commit.submit(name.to_owned()))
                .collect();
            let outputs = futures_util::future::join_all(second).await;
            let failed: Vec<_> = outputs.iter().map(Result::is_err).collect();
            assert_eq!(failed, [false, false, true, false], "{label}");
            assert_eq!(*groups.lock().unwrap(), [50, 4, 1, 1, 1, 1], "{label}");
            let count = db
                .conn()
                .query_one_raw(Statement::from_string(
                    db.backend(),
                    "SELECT COUNT(*) FROM names",
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get_by_index::<i64>(0)
                .unwrap();
            assert_eq!(count, 53, "{label}");
            db.clone().close().await.unwrap();
        }
        if let Some(pg) = postgres {
            pg.drop_db().await.unwrap();
        }
    }
}
