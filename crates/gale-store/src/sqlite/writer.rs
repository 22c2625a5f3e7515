//! The SQLite writer thread: write jobs queue up for it, and it commits
//! whatever has queued while the last transaction committed as one `BEGIN
//! IMMEDIATE` transaction (group commit), each job in its own savepoint, and
//! hands each job its result once the COMMIT's outcome is known. It knows
//! nothing of what the jobs write.
//!
//! A full disk or an I/O error while a transaction spills to the WAL makes
//! SQLite roll the whole transaction back, not just the failing statement:
//! the writer then fails every job of it so far and begins a new transaction
//! for the rest, so no job runs outside a transaction and none is told it
//! committed when it did not, or failed when it did.
//!
//! Each job's savepoint journals the pages it changes, in memory
//! (`temp_store = MEMORY`): at SQLite's default a journal past 64 KiB (a
//! claim or a result batch of a few dozen tasks) spills to a temporary file,
//! a write per page, a third of the writer's time in a fan-out. A job that
//! may change without bound (a DAG deleted with its history, a prune) is a
//! large one: it runs in a transaction of its own, its journal on disk, so
//! memory stays bounded.

use super::*;

/// Hands a job its result once the COMMIT's outcome (an error, or none) is known.
pub(super) type Delivery = Box<dyn FnOnce(Option<&Error>) + Send>;

/// One queued write: `run` executes it inside the group's transaction and
/// returns the delivery of its result, made once the group's COMMIT is known,
/// with the job's own error when it failed.
pub(super) trait WriteJob: Send {
    fn run(self: Box<Self>, conn: &Connection) -> (Delivery, Option<Error>);
    fn fail(self: Box<Self>, error: &Error);
    /// Whether it may change without bound: then it runs alone, its journal
    /// on disk.
    fn large(&self) -> bool;
}

pub(super) struct Job<F, T> {
    pub(super) f: F,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<T>>,
    pub(super) large: bool,
}

/// Runs one statement from the connection's cache: the savepoint around
/// every job, parsed once rather than once per job.
fn cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

impl<F, T> WriteJob for Job<F, T>
where
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> (Delivery, Option<Error>) {
        let Job { f, reply, .. } = *self;
        let res = match cached(conn, "SAVEPOINT job") {
            Ok(()) => match f(conn) {
                Ok(v) => cached(conn, "RELEASE job").map(|()| v).map_err(map_err),
                // A failed job leaves no trace; the others in the group still
                // commit. When SQLite rolled the whole transaction back, the
                // savepoint is gone with it, and the job's own error says why.
                Err(e) if conn.is_autocommit() => Err(e),
                Err(e) => match conn.execute_batch("ROLLBACK TO job; RELEASE job") {
                    Ok(()) => Err(e),
                    Err(end) => Err(map_err(end)),
                },
            },
            Err(e) => Err(map_err(e)),
        };
        let failed = res.as_ref().err().cloned();
        let delivery: Delivery = Box::new(move |commit_error: Option<&Error>| {
            let out = match (commit_error, res) {
                (Some(e), _) => Err(e.clone()),
                (None, res) => res,
            };
            let _ = reply.send(out);
        });
        (delivery, failed)
    }

    fn fail(self: Box<Self>, error: &Error) {
        let _ = self.reply.send(Err(error.clone()));
    }

    fn large(&self) -> bool {
        self.large
    }
}

/// The error every job of a transaction gets when its COMMIT (or BEGIN) fails.
fn commit_failed(e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => Error::Full(e.to_string()),
        _ => Error::Unavailable(format!("commit failed: {e}")),
    }
}

/// The error every job of a transaction gets when SQLite rolled it back
/// while running a job (which failed with `cause`, if it reported one).
fn rolled_back(cause: Option<Error>) -> Error {
    match cause {
        Some(Error::Full(msg)) => Error::Full(msg),
        Some(e) => Error::Unavailable(format!("the transaction was rolled back: {e}")),
        None => Error::Unavailable("the transaction was rolled back".into()),
    }
}

/// Where the next transaction's savepoint journals go: SQLite decides at
/// each BEGIN, and the setting may change only between transactions.
fn journal_in_memory(conn: &Connection, in_memory: &mut Option<bool>, want: bool) {
    if *in_memory == Some(want) {
        return;
    }
    let sql = if want {
        "PRAGMA temp_store = MEMORY"
    } else {
        "PRAGMA temp_store = FILE"
    };
    match conn.execute_batch(sql) {
        Ok(()) => *in_memory = Some(want),
        Err(e) => tracing::warn!(error = %e, "cannot set where SQLite keeps savepoint journals"),
    }
}

pub(super) fn writer_loop(conn: Connection, jobs: std::sync::mpsc::Receiver<Box<dyn WriteJob>>) {
    let mut in_memory = None;
    // A large job met while a group was being gathered: it starts the next.
    let mut held: Option<Box<dyn WriteJob>> = None;
    'groups: loop {
        let first = match held.take() {
            Some(j) => j,
            None => match jobs.recv() {
                Ok(j) => j,
                Err(_) => break,
            },
        };
        let large = first.large();
        let mut group = vec![first];
        while !large && group.len() < GROUP_COMMIT_MAX {
            match jobs.try_recv() {
                Ok(j) if j.large() => {
                    held = Some(j);
                    break;
                }
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        journal_in_memory(&conn, &mut in_memory, !large);
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let e = commit_failed(e);
            for j in group {
                j.fail(&e);
            }
            continue;
        }
        let mut deliveries = Vec::with_capacity(group.len());
        let mut group = group.into_iter();
        while let Some(job) = group.next() {
            // A job that panics must not take the writer thread (and every later
            // write) with it: its partial changes are rolled back, its caller sees
            // its reply dropped, and the rest of the group goes on.
            let failed =
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(&conn))) {
                    Ok((delivery, failed)) => {
                        deliveries.push(delivery);
                        failed
                    }
                    Err(_) => {
                        tracing::error!("a store write panicked; its changes were rolled back");
                        let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                        None
                    }
                };
            if conn.is_autocommit() {
                // The transaction is gone, and with it every change of this
                // group so far: those jobs fail; the rest get a new transaction.
                let e = rolled_back(failed);
                deliveries.drain(..).for_each(|d| d(Some(&e)));
                if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
                    let e = commit_failed(e);
                    group.for_each(|j| j.fail(&e));
                    continue 'groups;
                }
            }
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => deliveries.into_iter().for_each(|d| d(None)),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                let e = commit_failed(e);
                deliveries.into_iter().for_each(|d| d(Some(&e)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts a writer thread on a fresh database with one table `t(v)`.
    fn writer() -> (
        tempfile::TempDir,
        std::sync::mpsc::Sender<Box<dyn WriteJob>>,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = connect(&dir.path().join("w.db")).expect("open");
        conn.execute_batch("CREATE TABLE t (v INTEGER)")
            .expect("create");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || writer_loop(conn, rx));
        (dir, tx)
    }

    fn values(dir: &tempfile::TempDir) -> Vec<i64> {
        let conn = connect(&dir.path().join("w.db")).expect("open");
        let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v").expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    }

    type Reply = tokio::sync::oneshot::Receiver<Result<()>>;

    /// Queues a job inserting `v`; with `end_transaction`, the job then ends
    /// the transaction as SQLite does when it rolls one back on its own (a
    /// full disk while the transaction spills to the WAL), and fails.
    fn insert(
        jobs: &std::sync::mpsc::Sender<Box<dyn WriteJob>>,
        v: i64,
        end_transaction: bool,
    ) -> Reply {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let f = move |c: &Connection| -> Result<()> {
            c.execute("INSERT INTO t (v) VALUES (?1)", [v])
                .map_err(map_err)?;
            if end_transaction {
                c.execute_batch("ROLLBACK").map_err(map_err)?;
                return Err(Error::Full("database or disk is full".into()));
            }
            Ok(())
        };
        jobs.send(Box::new(Job {
            f,
            reply,
            large: false,
        }))
        .expect("queued");
        answer
    }

    /// Queues a job that holds the writer until the returned sender sends
    /// (or is dropped), and waits until it runs: what is queued meanwhile
    /// is gathered into one group once it is released.
    fn hold_writer(
        jobs: &std::sync::mpsc::Sender<Box<dyn WriteJob>>,
    ) -> (std::sync::mpsc::Sender<()>, Reply) {
        let (started, running) = std::sync::mpsc::channel::<()>();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (reply, held) = tokio::sync::oneshot::channel();
        let f = move |_: &Connection| -> Result<()> {
            let _ = started.send(());
            let _ = hold.recv();
            Ok(())
        };
        jobs.send(Box::new(Job {
            f,
            reply,
            large: false,
        }))
        .expect("queued");
        running.recv().expect("the holding job runs");
        (release, held)
    }

    #[test]
    fn a_transaction_rolled_back_under_a_job_fails_its_jobs_and_commits_the_rest_anew() {
        let (dir, jobs) = writer();
        // A job that holds the writer while the four below queue up behind
        // it, so that they share the next group.
        let (release, held) = hold_writer(&jobs);
        let replies: Vec<Reply> = vec![
            insert(&jobs, 1, false),
            insert(&jobs, 2, true),
            insert(&jobs, 3, false),
            insert(&jobs, 4, false),
        ];
        release.send(()).expect("released");
        assert!(held.blocking_recv().expect("answered").is_ok());
        let answers: Vec<Result<()>> = replies
            .into_iter()
            .map(|r| r.blocking_recv().expect("answered"))
            .collect();
        assert!(
            matches!(&answers[0], Err(Error::Full(_))),
            "a job whose changes went with the transaction fails: {answers:?}"
        );
        assert!(
            matches!(&answers[1], Err(Error::Full(m)) if m.contains("disk is full")),
            "{answers:?}"
        );
        assert!(answers[2].is_ok() && answers[3].is_ok(), "{answers:?}");
        assert_eq!(
            values(&dir),
            [3, 4],
            "what was reported committed, and nothing else"
        );
    }

    /// SQLite's temporary files open in this process ("etilqs_..."), by
    /// descriptor and inode: they are unlinked at once, but listed under
    /// /proc/self/fd while open.
    #[cfg(target_os = "linux")]
    fn temporary_files() -> HashSet<(String, u64)> {
        use std::os::unix::fs::MetadataExt;
        std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .filter_map(|e| {
                let path = e.ok()?.path();
                let target = std::fs::read_link(&path).ok()?;
                let inode = std::fs::metadata(&path).ok()?.ino();
                target
                    .to_string_lossy()
                    .contains("etilqs_")
                    .then(|| (path.display().to_string(), inode))
            })
            .collect()
    }

    /// Queues a job inserting `mark` into `t` and rewriting every blob of
    /// `b` (about 1 MiB of pages, past SQLite's 64 KiB spill point for its
    /// savepoint journal). It answers whether that journal went to a
    /// temporary file it opened (one not open before it began; other tests
    /// run beside this one), and whether `seen` was already committed in `t`
    /// (read from another connection).
    #[cfg(target_os = "linux")]
    fn rewrite(
        jobs: &std::sync::mpsc::Sender<Box<dyn WriteJob>>,
        dir: &std::path::Path,
        large: bool,
        mark: i64,
        seen: i64,
    ) -> tokio::sync::oneshot::Receiver<Result<(bool, bool)>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let db = dir.join("w.db");
        let f = move |c: &Connection| -> Result<(bool, bool)> {
            let before = temporary_files();
            c.execute("INSERT INTO t (v) VALUES (?1)", [mark])
                .map_err(map_err)?;
            c.execute_batch("UPDATE b SET x = randomblob(1000)")
                .map_err(map_err)?;
            let spilled = temporary_files().difference(&before).count() > 0;
            let other = connect(&db)?;
            let committed: i64 = other
                .query_row("SELECT count(*) FROM t WHERE v = ?1", [seen], |r| r.get(0))
                .map_err(map_err)?;
            Ok((spilled, committed == 1))
        };
        jobs.send(Box::new(Job { f, reply, large }))
            .expect("queued");
        answer
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn savepoint_journals_stay_in_memory_but_a_large_jobs_goes_to_disk_alone() {
        let (dir, jobs) = writer();
        let (reply, setup) = tokio::sync::oneshot::channel();
        let f = |c: &Connection| -> Result<()> {
            c.execute_batch(
                "CREATE TABLE b (x BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1024)
                 INSERT INTO b (x) SELECT zeroblob(1000) FROM n;",
            )
            .map_err(map_err)
        };
        jobs.send(Box::new(Job {
            f,
            reply,
            large: false,
        }))
        .expect("queued");
        setup.blocking_recv().expect("answered").expect("setup");

        // Held while the rest queue up, so that they meet in one gathering.
        let (release, held) = hold_writer(&jobs);
        let inserted = insert(&jobs, 1, false);
        let small = rewrite(&jobs, dir.path(), false, 10, 1);
        let large = rewrite(&jobs, dir.path(), true, 20, 1);
        let after = rewrite(&jobs, dir.path(), false, 30, 20);
        release.send(()).expect("released");
        assert!(held.blocking_recv().expect("answered").is_ok());
        assert!(inserted.blocking_recv().expect("answered").is_ok());
        let (spilled, committed) = small.blocking_recv().expect("answered").expect("small");
        assert!(
            !spilled,
            "an ordinary job's journal went to a temporary file"
        );
        assert!(
            !committed,
            "an ordinary job shares its transaction with the jobs queued with it"
        );
        let (spilled, committed) = large.blocking_recv().expect("answered").expect("large");
        assert!(spilled, "a large job's journal stayed in memory");
        assert!(
            committed,
            "a large job runs after the jobs before it committed, in a transaction of its own"
        );
        // The job queued after it runs after it committed, journal in memory.
        let (spilled, committed) = after.blocking_recv().expect("answered").expect("after");
        assert!(!spilled, "journals stayed on disk after a large job");
        assert!(
            committed,
            "a job queued after a large one ran before it committed"
        );
        assert_eq!(values(&dir), [1, 10, 20, 30]);
    }

    #[test]
    fn a_full_database_is_reported_as_full_and_retryable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = connect(&dir.path().join("f.db")).expect("open");
        conn.execute_batch("CREATE TABLE t (b BLOB); PRAGMA max_page_count = 8;")
            .expect("setup");
        let err = (0..100)
            .find_map(|_| {
                conn.execute("INSERT INTO t (b) VALUES (zeroblob(4000))", [])
                    .err()
            })
            .map(map_err)
            .expect("the database fills up");
        assert!(matches!(err, Error::Full(_)), "{err:?}");
        assert!(err.is_retryable());
        assert!(err.to_string().contains("disk is full"), "{err}");
    }
}
