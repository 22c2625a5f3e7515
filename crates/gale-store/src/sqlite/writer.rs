//! The SQLite writer thread: write jobs queue up for it, and it commits
//! whatever has queued while the last transaction committed as one `BEGIN
//! IMMEDIATE` transaction (group commit), each job in its own savepoint, and
//! hands each job its result once the COMMIT's outcome is known. It knows
//! nothing of what the jobs write.

use super::*;

/// Hands a job its result once the COMMIT's outcome (an error message, or none) is known.
pub(super) type Delivery = Box<dyn FnOnce(Option<&str>) + Send>;

/// One queued write: `run` executes it inside the group's transaction and
/// returns the delivery of its result, made once the group's COMMIT is known.
pub(super) trait WriteJob: Send {
    fn run(self: Box<Self>, conn: &Connection) -> Delivery;
    fn fail(self: Box<Self>, message: &str);
}

pub(super) struct Job<F, T> {
    pub(super) f: F,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<T>>,
}

impl<F, T> WriteJob for Job<F, T>
where
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Delivery {
        let Job { f, reply } = *self;
        let res = match conn.execute_batch("SAVEPOINT job") {
            Ok(()) => {
                let res = f(conn);
                // A failed job leaves no trace; the others in the group still commit.
                let end = if res.is_ok() {
                    "RELEASE job"
                } else {
                    "ROLLBACK TO job; RELEASE job"
                };
                match conn.execute_batch(end) {
                    Ok(()) => res,
                    Err(e) => Err(map_err(e)),
                }
            }
            Err(e) => Err(map_err(e)),
        };
        Box::new(move |commit_error: Option<&str>| {
            let out = match (commit_error, res) {
                (Some(msg), _) => Err(Error::Unavailable(format!("commit failed: {msg}"))),
                (None, res) => res,
            };
            let _ = reply.send(out);
        })
    }

    fn fail(self: Box<Self>, message: &str) {
        let _ = self.reply.send(Err(Error::Unavailable(message.to_owned())));
    }
}

pub(super) fn writer_loop(conn: Connection, jobs: std::sync::mpsc::Receiver<Box<dyn WriteJob>>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_COMMIT_MAX {
            match jobs.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let msg = e.to_string();
            for j in group {
                j.fail(&msg);
            }
            continue;
        }
        let mut deliveries = Vec::with_capacity(group.len());
        for job in group {
            // A job that panics must not take the writer thread (and every later
            // write) with it: its partial changes are rolled back, its caller sees
            // its reply dropped, and the rest of the group goes on.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&conn))) {
                Ok(delivery) => deliveries.push(delivery),
                Err(_) => {
                    tracing::error!("a store write panicked; its changes were rolled back");
                    let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                }
            }
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => deliveries.into_iter().for_each(|d| d(None)),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                let msg = e.to_string();
                deliveries.into_iter().for_each(|d| d(Some(&msg)));
            }
        }
    }
}
