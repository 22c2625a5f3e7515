//! The guard: a small process beside each worker that kills the worker's task
//! process groups when the worker dies without doing so itself (SIGKILL, OOM
//! kill, a crash).
//!
//! Task processes run in process groups of their own, so a dying worker takes
//! none of them along, and `PR_SET_PDEATHSIG` would need a `pre_exec` hook, which
//! forces `fork` over `posix_spawn` and costs several times the CPU per task. So
//! the worker starts one guard (the `gale` binary run as `gale __guard`) and
//! writes `+PGID` / `-PGID` lines to its stdin as tasks start and end. The worker
//! holds the only write end of that pipe: when the worker is gone, for whatever
//! reason, the guard reads end-of-file and sends SIGKILL to every group still
//! listed. Without it, a retry elsewhere could start while the lost attempt's
//! process still runs; with it, that process dies within moments of its worker.
//!
//! A task started in the instant between its spawn and its `+` line reaching the
//! guard (a millisecond at most: lines are gathered into few writes) escapes the
//! guard if the worker dies in that instant; start-up recovery on the same host
//! still kills it (its pid is recorded with the attempt).

use std::collections::HashSet;
use std::io::{BufRead, Write};
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

/// The worker's end: lines for the guard, written by a thread of their own.
pub struct Guard {
    outbox: Option<Arc<Outbox>>,
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
        let pipe = program.and_then(|program| {
            match Command::new(program)
                .arg("__guard")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
            {
                Ok(mut child) => {
                    let stdin = child.stdin.take();
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
        }
    }

    /// The process group `pgid` now runs a task of this worker.
    pub fn watch(&self, pgid: u32) {
        self.send(&format!("+{pgid}\n"));
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

/// The guard process itself (`gale __guard`): reads `+PGID` / `-PGID` lines
/// until end-of-file, then kills the groups still listed. Signals meant for the
/// worker's terminal or service (SIGINT, SIGTERM, SIGHUP) are ignored: the guard
/// ends when the worker does, and not before.
pub fn guard_main() {
    use nix::sys::signal::{SigHandler, Signal, killpg, signal};
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: installing SIG_IGN runs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    let mut groups: HashSet<i32> = HashSet::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (sign, number) = line.split_at(line.len().min(1));
        let Ok(pgid) = number.trim().parse::<i32>() else {
            continue;
        };
        if pgid <= 1 {
            continue;
        }
        match sign {
            "+" => {
                groups.insert(pgid);
            }
            "-" => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    for pgid in groups {
        let _ = killpg(nix::unistd::Pid::from_raw(pgid), Signal::SIGKILL);
    }
}
