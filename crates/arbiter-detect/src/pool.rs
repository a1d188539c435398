//! The threads that run local analyses: one per core, fed by one bounded queue.
//!
//! An analysis starts as soon as a thread is free, with the oldest one waiting: a thread never
//! waits for the async runtime to hand it its next image, and no more analyses run at once than
//! there are cores (more would only share the cores, each taking longer). At most a given number
//! wait for a thread (`detector.local.max_queued`); past it an analysis is refused at once
//! ([`PoolError::Full`]) rather than queued behind minutes of work. An analysis whose caller has
//! gone (its future dropped: the client went away, or the request timed out) while it waited is
//! skipped when its turn comes, not run for nobody.

use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

type Task = Box<dyn FnOnce() + Send>;

/// Why an analysis did not give a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// As many analyses as the threads run and the queue holds are in the pool already.
    #[error("the analysis queue is full")]
    Full,
    /// The analysis panicked (its text is logged, never returned).
    #[error("the analysis failed on this image")]
    Failed,
    /// No analysis thread is running.
    #[error("no analysis thread is running")]
    Stopped,
}

/// Threads taking analyses from one queue.
#[derive(Debug)]
pub struct Pool {
    sender: Sender<Task>,
    threads: usize,
    /// Analyses handed to the pool and not yet finished or skipped.
    in_pool: Arc<AtomicUsize>,
    /// Analyses skipped because their caller had gone.
    skipped: Arc<AtomicU64>,
}

/// Takes one back from the pool's count when dropped, however the task ends.
struct Leaving(Arc<AtomicUsize>);

impl Drop for Leaving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pool {
    /// Starts `threads` threads named `<name>-<n>`. A thread that cannot be started leaves the
    /// others; with none, [`Pool::run`] answers [`PoolError::Stopped`].
    pub fn start(threads: usize, name: &str) -> Self {
        let (sender, receiver) = channel::<Task>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut started = 0;
        for n in 0..threads.max(1) {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || {
                    loop {
                        let next = receiver
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .recv();
                        match next {
                            Ok(task) => task(),
                            Err(_) => return,
                        }
                    }
                });
            if spawned.is_ok() {
                started += 1;
            }
        }
        Self {
            sender,
            threads: started,
            in_pool: Arc::default(),
            skipped: Arc::default(),
        }
    }

    /// The threads running.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Analyses running or waiting.
    pub fn in_pool(&self) -> usize {
        self.in_pool.load(Ordering::SeqCst)
    }

    /// Analyses skipped so far because their caller had gone before their turn.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::SeqCst)
    }

    /// Runs `work` on the pool's threads and waits for its result without holding up the async
    /// runtime, refusing it at once when `max_queued` analyses wait already. If this future is
    /// dropped before a thread takes `work`, `work` is not run. A panic in `work` is
    /// [`PoolError::Failed`], without the panic's text (logged); the thread goes on to the next.
    pub async fn run<T: Send + 'static>(
        &self,
        max_queued: usize,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        if self.threads == 0 {
            return Err(PoolError::Stopped);
        }
        let room = self.threads.saturating_add(max_queued);
        let counted = self
            .in_pool
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < room).then_some(n + 1)
            });
        if counted.is_err() {
            return Err(PoolError::Full);
        }
        let leaving = Leaving(self.in_pool.clone());
        let skipped = self.skipped.clone();
        let (answer, answered) = tokio::sync::oneshot::channel();
        let task: Task = Box::new(move || {
            // The caller has gone (its future, and so the receiver, dropped): nobody waits for
            // the result, so the work is not done.
            if answer.is_closed() {
                skipped.fetch_add(1, Ordering::SeqCst);
                return;
            }
            let result = std::panic::catch_unwind(AssertUnwindSafe(work));
            // The place is free before the caller hears, so its next analysis finds it free.
            drop(leaving);
            let _ = answer.send(result);
        });
        self.sender.send(task).map_err(|_| PoolError::Stopped)?;
        match answered.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => {
                // The panic's own text is internal: it goes to the log, never into an answer.
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(panic = %text, "the analysis panicked");
                Err(PoolError::Failed)
            }
            Err(_) => Err(PoolError::Stopped),
        }
    }
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// The process's analysis threads, one per core, started on first use.
pub fn global() -> &'static Pool {
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
        Pool::start(threads, "arbiter-detect")
    })
}

/// Runs `work` on the process's analysis threads with no bound on the queue (see [`Pool::run`]).
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    global()
        .run(usize::MAX, work)
        .await
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    #[tokio::test]
    async fn work_runs_on_the_analysis_threads_and_a_panic_is_an_error_that_leaves_them_running() {
        let name = run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert!(name.unwrap().starts_with("arbiter-detect-"));

        let threads = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
        for _ in 0..threads {
            let err = run(|| -> u32 { panic!("bad image") }).await.unwrap_err();
            assert_eq!(err, "the analysis failed on this image");
        }
        // After the panics the threads still take work, many tasks at once.
        let tasks: Vec<_> = (0..4 * threads as u64)
            .map(|n| tokio::spawn(run(move || n * 2)))
            .collect();
        for (n, task) in (0..).zip(tasks) {
            assert_eq!(task.await.unwrap().unwrap(), n * 2);
        }
    }

    /// A pool of one thread, held by a task that waits until the returned sender sends.
    async fn held_pool() -> (
        Arc<Pool>,
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let pool = Arc::new(Pool::start(1, "test-pool"));
        let (release, held) = std::sync::mpsc::channel::<()>();
        let holder = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(0, move || {
                    let _ = held.recv();
                })
                .await
                .unwrap();
            }
        });
        wait_for(&pool, 1).await;
        (pool, release, holder)
    }

    async fn wait_for(pool: &Pool, in_pool: usize) {
        for _ in 0..500 {
            if pool.in_pool() == in_pool {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("the pool holds {}, not {in_pool}", pool.in_pool());
    }

    #[tokio::test]
    async fn past_the_queue_limit_an_analysis_is_refused_at_once_and_room_comes_back() {
        let (pool, release, holder) = held_pool().await;
        // The thread is busy; two may wait.
        let waiting: Vec<_> = (0..2u32)
            .map(|n| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.run(2, move || n).await })
            })
            .collect();
        wait_for(&pool, 3).await;
        assert_eq!(pool.run(2, || 9).await, Err(PoolError::Full));
        // Refused work is not counted.
        assert_eq!(pool.in_pool(), 3);
        release.send(()).unwrap();
        holder.await.unwrap();
        for (n, task) in (0..).zip(waiting) {
            assert_eq!(task.await.unwrap(), Ok(n));
        }
        wait_for(&pool, 0).await;
        assert_eq!(pool.run(2, || 9).await, Ok(9));
        // With no queue, only as many as there are threads.
        assert_eq!(pool.run(0, || 1).await, Ok(1));
    }

    #[tokio::test]
    async fn work_whose_caller_has_gone_is_skipped_not_run() {
        let (pool, release, holder) = held_pool().await;
        let ran = Arc::new(AtomicBool::new(false));
        let gone = tokio::spawn({
            let (pool, ran) = (pool.clone(), ran.clone());
            async move {
                pool.run(4, move || ran.store(true, Ordering::SeqCst))
                    .await
                    .unwrap();
            }
        });
        wait_for(&pool, 2).await;
        // The caller goes away (as a request's future is dropped when its client disconnects or
        // its time is up) while its work waits behind the busy thread.
        gone.abort();
        assert!(gone.await.unwrap_err().is_cancelled());
        release.send(()).unwrap();
        holder.await.unwrap();
        // One thread takes tasks in order: once this one has run, the abandoned one had its turn.
        assert_eq!(pool.run(4, || 7).await, Ok(7));
        assert!(!ran.load(Ordering::SeqCst), "abandoned work was run");
        assert_eq!(pool.skipped(), 1);
        wait_for(&pool, 0).await;
    }
}
