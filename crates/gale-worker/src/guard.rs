//! The guard: a small process beside each worker that kills the worker's task
//! process groups when the worker can no longer do so itself: when it dies
//! (SIGKILL, OOM kill, a crash), and when it is frozen (SIGSTOP, a stalled
//! runtime, a blocked disk, a stopped container) past an attempt's fence
//! deadline.
//!
//! Task processes run in process groups of their own, so a dying worker takes
//! none of them along, and `PR_SET_PDEATHSIG` would need a `pre_exec` hook, which
//! forces `fork` over `posix_spawn` and costs several times the CPU per task. So
//! the worker starts one guard (the `gale` binary run as `gale __guard`, in a
//! process group of its own, so that a signal to the worker's group does not
//! freeze it too) and writes lines to its stdin:
//!
//! - `+PGID DEADLINE`: the group runs a task; kill it at `DEADLINE` unless told
//!   a later one;
//! - `>PGID DEADLINE`: the task's lease was renewed: a later deadline for the
//!   group if it is still listed, and nothing otherwise. A renewal that read
//!   the group just before its task ended sends this after the `-` line; were
//!   it a `+`, the guard would list the group again and kill at its deadline
//!   (or at the worker's end) whatever process then has that number;
//! - `-PGID`: the group's task ended.
//!
//! It answers on its stdout with `killed PGID AT` for each group it killed at
//! a deadline (a thread of its own writes them, dropping them rather than ever
//! holding up a kill), so that the worker, once it runs again, can record when
//! that try really stopped.
//!
//! Deadlines are milliseconds on `CLOCK_BOOTTIME` ([`boot_ms`]), which both
//! processes read, which no one sets, and which counts a suspended machine's
//! sleep. The worker holds the only write end of the pipe: when the worker is
//! gone, the guard reads end-of-file and kills every group still listed; while
//! the worker is frozen, the guard kills each group at its deadline, which is
//! set before the attempt's lease ends on the store's clock (see
//! `WorkerOptions::guard_after`), so a retry elsewhere never runs beside it.
//!
//! A task started in the instant between its spawn and its `+` line reaching the
//! guard (a millisecond at most: lines are gathered into few writes) escapes the
//! guard if the worker dies in that instant; start-up recovery on the same host
//! still kills it (its pid is recorded with the attempt). The guard itself
//! frozen along with its worker (a whole machine or container paused) cannot
//! act until it thaws; it then kills what is past its deadline within a
//! second (it never sleeps longer while it keeps one): docs/ha.md gives that
//! window.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tracing::warn;

/// After each write to the guard, lines gather this long before the next one:
/// at thousands of tasks a second, one write (and one wake-up of the guard)
/// carries many lines instead of one.
const GATHER: Duration = Duration::from_millis(1);

/// The worker's end: lines for the guard, written by a thread of their own,
/// and what the guard says it killed, read by another.
pub struct Guard {
    outbox: Option<Arc<Outbox>>,
    /// Process groups the guard killed at their deadline, with when.
    kills: Arc<Mutex<HashMap<u32, u64>>>,
}

struct Outbox {
    /// Lines to write, and whether the worker let go of its guard.
    lines: Mutex<(Vec<u8>, bool)>,
    ready: Condvar,
    gone: AtomicBool,
}

impl Guard {
    /// Starts `program __guard`; without a program, or when it cannot start (a
    /// warning says so), tasks run unguarded.
    pub fn start(program: Option<&Path>) -> Guard {
        let kills = Arc::new(Mutex::new(HashMap::new()));
        let pipe = program.and_then(|program| {
            match Command::new(program)
                .arg("__guard")
                .process_group(0)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
            {
                Ok(mut child) => {
                    let stdin = child.stdin.take();
                    if let Some(out) = child.stdout.take() {
                        let kills = kills.clone();
                        let _ = std::thread::Builder::new()
                            .name("gale-guard-reader".into())
                            .spawn(move || read_kills(out, &kills));
                    }
                    // Reaped by a thread, so it never lingers as a zombie.
                    std::thread::spawn(move || child.wait());
                    stdin
                }
                Err(e) => {
                    warn!(program = %program.display(), error = %e, "cannot start the task guard: tasks of this worker will outlive it if it is killed");
                    None
                }
            }
        });
        let outbox = pipe.map(|pipe| {
            let outbox = Arc::new(Outbox {
                lines: Mutex::new((Vec::new(), false)),
                ready: Condvar::new(),
                gone: AtomicBool::new(false),
            });
            let writer = outbox.clone();
            std::thread::Builder::new()
                .name("gale-guard-writer".into())
                .spawn(move || write_loop(&writer, pipe))
                .map(|_| outbox)
                .map_err(|e| warn!(error = %e, "cannot start the task guard's writer: tasks of this worker will outlive it if it is killed"))
                .ok()
        });
        Guard {
            outbox: outbox.flatten(),
            kills,
        }
    }

    /// When ([`boot_ms`]) the guard killed `pgid` at its deadline, if it did.
    /// Its word may trail the group's exit by moments: asked for a while.
    pub async fn killed_at(&self, pgid: u32) -> Option<u64> {
        for _ in 0..20 {
            if let Some(at) = self
                .kills
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&pgid)
            {
                return Some(at);
            }
            // Without a guard, nothing will come.
            self.outbox.as_ref()?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// The process group `pgid` runs a task of this worker: kill it at
    /// `deadline` ([`boot_ms`]) unless a later one arrives. Deadlines only move
    /// forward: of two lines that race, the later deadline counts.
    pub fn watch(&self, pgid: u32, deadline: u64) {
        self.send(&format!("+{pgid} {deadline}\n"));
    }

    /// The leases of these groups' attempts were renewed: their new deadline,
    /// for those the guard still lists (not one whose task ended meanwhile).
    pub fn extend(&self, pgids: &[u32], deadline: u64) {
        if pgids.is_empty() {
            return;
        }
        let mut lines = String::with_capacity(pgids.len() * 24);
        for pgid in pgids {
            lines.push_str(&format!(">{pgid} {deadline}\n"));
        }
        self.send(&lines);
    }

    /// The process group `pgid` is done (its task ended and the group was killed).
    pub fn forget(&self, pgid: u32) {
        self.send(&format!("-{pgid}\n"));
    }

    fn send(&self, line: &str) {
        let Some(outbox) = &self.outbox else { return };
        if outbox.gone.load(Ordering::Relaxed) {
            return;
        }
        outbox
            .lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .extend_from_slice(line.as_bytes());
        outbox.ready.notify_one();
    }
}

impl Drop for Guard {
    /// The writer sends what is left and closes the pipe: the guard then
    /// ends, killing any group still listed.
    fn drop(&mut self) {
        if let Some(outbox) = &self.outbox {
            outbox.lines.lock().unwrap_or_else(|p| p.into_inner()).1 = true;
            outbox.ready.notify_one();
        }
    }
}

/// Writes what gathers in the outbox to the guard, until the guard is gone or
/// the worker lets go of it.
fn write_loop(outbox: &Outbox, mut pipe: ChildStdin) {
    loop {
        let lines = {
            let mut state = outbox.lines.lock().unwrap_or_else(|p| p.into_inner());
            while state.0.is_empty() && !state.1 {
                state = outbox.ready.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if state.0.is_empty() {
                return;
            }
            std::mem::take(&mut state.0)
        };
        if pipe.write_all(&lines).is_err() {
            warn!("the task guard is gone: tasks of this worker will outlive it if it is killed");
            outbox.gone.store(true, Ordering::Relaxed);
            return;
        }
        std::thread::sleep(GATHER);
    }
}

/// Reads the guard's `killed PGID AT` lines into `kills` (never more than a
/// few thousand: a worker asks for each it cares about, once).
fn read_kills(out: std::process::ChildStdout, kills: &Mutex<HashMap<u32, u64>>) {
    for line in std::io::BufReader::new(out).lines() {
        let Ok(line) = line else { return };
        let mut words = line.split_ascii_whitespace();
        if words.next() != Some("killed") {
            continue;
        }
        let (Some(Ok(pgid)), Some(Ok(at))) = (
            words.next().map(str::parse::<u32>),
            words.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        let mut kills = kills.lock().unwrap_or_else(|p| p.into_inner());
        if kills.len() >= 4096 {
            kills.clear();
        }
        kills.insert(pgid, at);
    }
}

/// Milliseconds on `CLOCK_BOOTTIME`: monotonic, shared by every process of
/// the machine, and counting time the machine spent suspended.
pub fn boot_ms() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    match clock_gettime(ClockId::CLOCK_BOOTTIME) {
        Ok(t) => {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1000
                + u64::try_from(t.tv_nsec()).unwrap_or(0) / 1_000_000
        }
        // Not on Linux: the monotonic clock, which every kernel has.
        Err(_) => clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1000
                + u64::try_from(t.tv_nsec()).unwrap_or(0) / 1_000_000
        }),
    }
}

/// The longest the guard sleeps while it has a deadline to keep.
const MAX_SLEEP_MS: u64 = 1000;

/// One line from the worker.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Watch { pgid: i32, deadline: u64 },
    Extend { pgid: i32, deadline: u64 },
    Forget { pgid: i32 },
}

fn parse(line: &str) -> Option<Line> {
    let (sign, rest) = line.split_at(line.len().min(1));
    let mut words = rest.split_ascii_whitespace();
    let pgid: i32 = words.next()?.parse().ok()?;
    if pgid <= 1 {
        return None;
    }
    match sign {
        // Without a deadline (an older worker's line): only the worker's end
        // kills the group.
        "+" => Some(Line::Watch {
            pgid,
            deadline: words
                .next()
                .and_then(|d| d.parse().ok())
                .unwrap_or(u64::MAX),
        }),
        ">" => Some(Line::Extend {
            pgid,
            deadline: words.next()?.parse().ok()?,
        }),
        "-" => Some(Line::Forget { pgid }),
        _ => None,
    }
}

/// The groups a guard watches, each with its deadline.
#[derive(Debug, Default)]
struct Watched {
    groups: HashMap<i32, u64>,
}

impl Watched {
    fn apply(&mut self, line: Line) {
        match line {
            Line::Watch { pgid, deadline } => {
                let d = self.groups.entry(pgid).or_insert(deadline);
                *d = (*d).max(deadline);
            }
            Line::Extend { pgid, deadline } => {
                if let Some(d) = self.groups.get_mut(&pgid) {
                    *d = (*d).max(deadline);
                }
            }
            Line::Forget { pgid } => {
                self.groups.remove(&pgid);
            }
        }
    }

    /// The earliest deadline, if any group has one.
    fn next_deadline(&self) -> Option<u64> {
        self.groups
            .values()
            .copied()
            .filter(|&d| d != u64::MAX)
            .min()
    }

    /// Takes the groups whose deadline is at or before `now`.
    fn expired(&mut self, now: u64) -> Vec<(i32, u64)> {
        let due: Vec<(i32, u64)> = self
            .groups
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(g, d)| (*g, *d))
            .collect();
        for (g, _) in &due {
            self.groups.remove(g);
        }
        due
    }
}

/// The guard process itself (`gale __guard`): reads the worker's lines until
/// end-of-file, kills each group whose deadline passes on the way, then kills
/// the groups still listed. Signals meant for the worker's terminal or service
/// (SIGINT, SIGTERM, SIGHUP) are ignored: the guard ends when the worker does,
/// and not before.
pub fn guard_main() {
    use nix::sys::signal::{SigHandler, Signal, killpg, signal};
    use std::sync::mpsc::{RecvTimeoutError, channel};
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: installing SIG_IGN runs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    let (tx, rx) = channel::<Line>();
    // Lines are read on a thread of their own, so that deadlines pass while no
    // line comes (the worker frozen is exactly when none does).
    let reader = std::thread::Builder::new()
        .name("gale-guard-reader".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if let Some(l) = parse(&line)
                    && tx.send(l).is_err()
                {
                    break;
                }
            }
        });
    if reader.is_err() {
        eprintln!("gale guard: cannot start its reader thread; tasks are not guarded");
        return;
    }
    let kill = |pgid: i32| {
        let _ = killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL);
    };
    // What it killed goes back to the worker on a thread of its own: a frozen
    // worker does not read, and a full pipe must never hold up a kill (the
    // report is dropped instead).
    let (report, reports) = std::sync::mpsc::sync_channel::<String>(1024);
    let _ = std::thread::Builder::new()
        .name("gale-guard-report".into())
        .spawn(move || {
            let mut out = std::io::stdout().lock();
            for line in reports {
                if out
                    .write_all(line.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return;
                }
            }
        });
    let mut watched = Watched::default();
    loop {
        let now = boot_ms();
        for (pgid, deadline) in watched.expired(now) {
            kill(pgid);
            let _ = report.try_send(format!("killed {pgid} {now}\n"));
            eprintln!(
                "gale guard: killed task process group {pgid} {} ms after its fence deadline: \
                 its worker did not renew the attempt's lease in time (frozen or stalled)",
                now.saturating_sub(deadline)
            );
        }
        // At most a second while a deadline is pending: a timer waits on the
        // monotonic clock, which may not count a pause of the whole machine;
        // the deadlines are checked against the boot clock on every wake-up.
        let wait = watched
            .next_deadline()
            .map_or(Duration::from_secs(3600), |d| {
                Duration::from_millis(d.saturating_sub(now).clamp(1, MAX_SLEEP_MS))
            });
        match rx.recv_timeout(wait) {
            Ok(line) => {
                watched.apply(line);
                while let Ok(line) = rx.try_recv() {
                    watched.apply(line);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    for pgid in watched.groups.into_keys() {
        kill(pgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_deadlines_only_move_forward() {
        assert_eq!(
            parse("+123 5000"),
            Some(Line::Watch {
                pgid: 123,
                deadline: 5000
            })
        );
        assert_eq!(parse("-123"), Some(Line::Forget { pgid: 123 }));
        assert_eq!(
            parse("+77"),
            Some(Line::Watch {
                pgid: 77,
                deadline: u64::MAX
            })
        );
        for bad in ["+1 5", "+0 5", "+-5 5", "*12 4", "+x 1", "", "-"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse(">123 7000"),
            Some(Line::Extend {
                pgid: 123,
                deadline: 7000
            })
        );
        assert_eq!(parse(">123"), None, "an extension says how far");
        let mut w = Watched::default();
        w.apply(parse("+10 5000").unwrap());
        w.apply(parse("+11 3000").unwrap());
        // Deadlines only move forward: the later one stays.
        w.apply(parse(">10 9000").unwrap());
        w.apply(parse(">10 6000").unwrap());
        w.apply(parse("+10 6000").unwrap());
        assert_eq!(w.next_deadline(), Some(3000));
        assert_eq!(w.expired(2999), vec![]);
        assert_eq!(w.expired(3000), vec![(11, 3000)]);
        assert_eq!(w.next_deadline(), Some(9000));
        w.apply(parse("-10").unwrap());
        assert_eq!(w.next_deadline(), None);
        assert!(w.groups.is_empty());
        // A renewal of a group whose task has ended (sent after its `-`) lists
        // nothing again: the number may belong to another process by then.
        w.apply(parse(">10 12000").unwrap());
        assert!(w.groups.is_empty(), "{:?}", w.groups);
        assert_eq!(w.expired(u64::MAX - 1), vec![]);
    }

    #[test]
    fn the_boot_clock_runs_forward() {
        let a = boot_ms();
        std::thread::sleep(Duration::from_millis(20));
        let b = boot_ms();
        assert!(a > 0 && b >= a + 20, "{a} then {b}");
    }
}
