//! Results go to the store in batches, as group commit does: while one write
//! is in flight, the results that arrive meanwhile queue up and go together in
//! the next one. A result that finds nothing in flight goes at once, so a lone
//! attempt waits no longer than before, and a busy worker pays one statement
//! (and one commit) for many results.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gale_store::prelude::Queue;
use gale_store::{Error, Finish, Result};
use tokio::sync::oneshot;

/// Most results in one write.
const MAX_BATCH: usize = 256;

type Waiting = (Finish, oneshot::Sender<Result<bool>>);

pub(crate) struct Reporter<S: ?Sized> {
    store: Arc<S>,
    queue: Mutex<Vec<Waiting>>,
    /// Whether a flush is running (it takes whatever queues up).
    flushing: AtomicBool,
}

impl<S: Queue + ?Sized> Reporter<S> {
    pub(crate) fn new(store: Arc<S>) -> Arc<Self> {
        Arc::new(Reporter {
            store,
            queue: Mutex::new(Vec::new()),
            flushing: AtomicBool::new(false),
        })
    }

    /// Records one result through the fence (see [`Queue::finish_attempt`]).
    pub(crate) async fn finish(self: &Arc<Self>, finish: Finish) -> Result<bool> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((finish, tx));
        if !self.flushing.swap(true, Ordering::AcqRel) {
            // Its own task: a caller that stops waiting must not strand the others.
            let me = self.clone();
            tokio::spawn(async move { me.flush().await });
        }
        rx.await
            .unwrap_or_else(|_| Err(Error::Unavailable("the result writer stopped".into())))
    }

    async fn flush(&self) {
        loop {
            let batch: Vec<Waiting> = {
                let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                self.flushing.store(false, Ordering::Release);
                // A result queued after the drain saw a flush running: look
                // again, unless another flush has started since.
                let empty = self
                    .queue
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_empty();
                if empty || self.flushing.swap(true, Ordering::AcqRel) {
                    return;
                }
                continue;
            }
            let (finishes, waiters): (Vec<Finish>, Vec<_>) = batch.into_iter().unzip();
            let finishes = Arc::new(finishes);
            let answers = match self.write(finishes.clone()).await {
                Ok(recorded) => recorded.into_iter().map(Ok).collect(),
                // Not a passing outage: one result may be at fault, and must not
                // take the others with it. Each goes on its own.
                Err(e) if !e.is_retryable() && finishes.len() > 1 => {
                    let mut answers = Vec::with_capacity(finishes.len());
                    for f in finishes.iter() {
                        let one = Arc::new(vec![f.clone()]);
                        answers.push(self.write(one).await.map(|r| r[0]));
                    }
                    answers
                }
                Err(e) => vec![Err(e); finishes.len()],
            };
            for (w, a) in waiters.into_iter().zip(answers) {
                let _ = w.send(a);
            }
        }
    }

    /// One write, in a task of its own: a panic in the store fails this batch
    /// (its callers retry), not every later result.
    async fn write(&self, finishes: Arc<Vec<Finish>>) -> Result<Vec<bool>> {
        let store = self.store.clone();
        let n = finishes.len();
        match tokio::spawn(async move { store.finish_attempts(&finishes).await }).await {
            Ok(Ok(recorded)) if recorded.len() == n => Ok(recorded),
            Ok(Ok(recorded)) => Err(Error::Database(format!(
                "the store answered {} results for {n}",
                recorded.len()
            ))),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(Error::Unavailable(format!("writing results failed: {e}"))),
        }
    }
}
