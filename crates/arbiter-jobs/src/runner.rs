//! The runner: job types registered by name, each with its handler over a context and how many
//! workers run it, started together and stopped by one shutdown token (crates.io's
//! `crates_io_worker` shape). It knows nothing of what the jobs do.

use futures_util::future::BoxFuture;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A job type's handler: one worker, given the context, working until the token is cancelled
/// (then finishing the jobs it has claimed).
type Handler<Ctx> = Arc<dyn Fn(Ctx, CancellationToken) -> BoxFuture<'static, ()> + Send + Sync>;

/// A registered job type.
struct JobType<Ctx> {
    name: &'static str,
    workers: usize,
    handler: Handler<Ctx>,
}

/// Runs the registered job types' workers over a shared context.
pub struct Runner<Ctx> {
    context: Ctx,
    job_types: Vec<JobType<Ctx>>,
}

impl<Ctx: Clone + Send + 'static> Runner<Ctx> {
    /// A runner over `context`, with no job types yet.
    pub fn new(context: Ctx) -> Self {
        Self {
            context,
            job_types: Vec::new(),
        }
    }

    /// Registers the job type `name`, run by `workers` workers, each running `handler` with a
    /// clone of the context until shutdown. A job type with no workers is registered and runs
    /// nothing (another replica works it).
    ///
    /// # Panics
    /// When a job type of that name is registered already: two handlers for one name is a
    /// mistake in the program.
    pub fn register_job_type<F, Fut>(
        mut self,
        name: &'static str,
        workers: usize,
        handler: F,
    ) -> Self
    where
        F: Fn(Ctx, CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        assert!(
            self.job_types.iter().all(|job_type| job_type.name != name),
            "the job type {name} is registered twice"
        );
        self.job_types.push(JobType {
            name,
            workers,
            handler: Arc::new(move |context, shutdown| Box::pin(handler(context, shutdown))),
        });
        self
    }

    /// The registered job types and their workers, in the order they were registered.
    pub fn job_types(&self) -> impl Iterator<Item = (&'static str, usize)> + '_ {
        self.job_types
            .iter()
            .map(|job_type| (job_type.name, job_type.workers))
    }

    /// Starts every job type's workers, each in a span naming its job type; they stop once
    /// `shutdown` is cancelled and their work under way is done. Await the handles to wait for
    /// them.
    pub fn start(self, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
        let mut handles = Vec::new();
        for job_type in &self.job_types {
            for worker in 0..job_type.workers {
                let span = tracing::info_span!("job_worker", job_type = job_type.name, worker);
                let work = (job_type.handler)(self.context.clone(), shutdown.clone());
                handles.push(tokio::spawn(work.instrument(span)));
            }
            tracing::debug!(
                job_type = job_type.name,
                workers = job_type.workers,
                "job workers started"
            );
        }
        handles
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A context that records which worker of which job type ran.
    type Ran = Arc<Mutex<Vec<&'static str>>>;

    fn recording(name: &'static str) -> impl Fn(Ran, CancellationToken) -> BoxFuture<'static, ()> {
        move |ran: Ran, shutdown: CancellationToken| {
            Box::pin(async move {
                ran.lock().unwrap().push(name);
                shutdown.cancelled().await;
                ran.lock().unwrap().push("stopped");
            })
        }
    }

    #[test]
    fn job_types_are_listed_in_the_order_they_were_registered() {
        let runner = Runner::new(Ran::default())
            .register_job_type("analysis", 2, recording("analysis"))
            .register_job_type("collector.seal", 0, recording("collector.seal"));
        let listed: Vec<_> = runner.job_types().collect();
        assert_eq!(listed, [("analysis", 2), ("collector.seal", 0)]);
    }

    #[test]
    #[should_panic(expected = "the job type analysis is registered twice")]
    fn a_name_is_registered_once() {
        let _ = Runner::new(Ran::default())
            .register_job_type("analysis", 1, recording("analysis"))
            .register_job_type("analysis", 1, recording("other"));
    }

    #[tokio::test]
    async fn each_job_type_runs_its_own_handler_on_as_many_workers_until_shutdown() {
        let ran = Ran::default();
        let shutdown = CancellationToken::new();
        let handles = Runner::new(ran.clone())
            .register_job_type("analysis", 3, recording("analysis"))
            .register_job_type("collector.seal", 1, recording("collector.seal"))
            .register_job_type("idle", 0, recording("idle"))
            .start(&shutdown);
        assert_eq!(handles.len(), 4);
        while ran.lock().unwrap().len() < 4 {
            tokio::task::yield_now().await;
        }
        let mut started = ran.lock().unwrap().clone();
        started.sort_unstable();
        assert_eq!(
            started,
            ["analysis", "analysis", "analysis", "collector.seal"]
        );
        shutdown.cancel();
        for handle in handles {
            handle.await.unwrap();
        }
        let stopped = ran
            .lock()
            .unwrap()
            .iter()
            .filter(|r| **r == "stopped")
            .count();
        assert_eq!(stopped, 4);
    }
}
