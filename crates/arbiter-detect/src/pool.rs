//! The threads that run local analyses: one per core, fed by one queue.
//!
//! An analysis starts as soon as a thread is free, with the oldest one waiting: a thread never
//! waits for the async runtime to hand it its next image, and no more analyses run at once than
//! there are cores (more would only share the cores, each taking longer).

use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

type Task = Box<dyn FnOnce() + Send>;

static QUEUE: OnceLock<Sender<Task>> = OnceLock::new();

/// The queue, its threads started on first use.
fn queue() -> &'static Sender<Task> {
    QUEUE.get_or_init(|| {
        let (sender, receiver) = channel::<Task>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
        for n in 0..threads {
            let receiver = receiver.clone();
            // A thread that cannot be started leaves the others; with none, `run` says so.
            let _ = std::thread::Builder::new()
                .name(format!("arbiter-detect-{n}"))
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
        }
        sender
    })
}

/// Runs `work` on the analysis threads and waits for its result without holding up the async
/// runtime. A panic in `work` is an error here, without the panic's text (logged); the thread
/// goes on to the next task.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let task: Task = Box::new(move || {
        let _ = answer.send(std::panic::catch_unwind(AssertUnwindSafe(work)));
    });
    queue()
        .send(task)
        .map_err(|_| "no analysis thread is running".to_owned())?;
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
            Err("the analysis failed on this image".to_owned())
        }
        Err(_) => Err("the analysis thread stopped".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
