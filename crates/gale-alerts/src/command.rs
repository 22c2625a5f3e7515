//! Delivering a batch to a command: the program run directly (no shell) in a
//! process group of its own, with the batch's JSON document on its standard
//! input and an environment of `PATH`, `HOME` and `LANG` only; at its
//! timeout the whole group is killed. Exit 0 is delivered; 64..=78
//! (sysexits) is refused for good; anything else, a program this host cannot
//! start included, is tried again later.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};

use crate::event::Batch;
use crate::send::{ANSWER_MAX, Answer, Refusal, cut};

/// How long a command has after SIGTERM before it is killed.
pub const GRACE: Duration = Duration::from_secs(2);

pub(crate) async fn run(
    argv: &[String],
    timeout: Duration,
    batch: &Batch,
) -> Result<Answer, Refusal> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Refusal::Permanent("the command has no program".into()));
    };
    let input = serde_json::to_vec(&batch.document())
        .map_err(|e| Refusal::Permanent(format!("cannot encode the event: {e}")))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for var in ["PATH", "HOME", "LANG"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    // Not found or not allowed here may be this host's lack: another
    // process may run it, so it is tried again (up to the attempts' bound).
    let mut child = cmd
        .spawn()
        .map_err(|e| Refusal::Temporary(format!("cannot run {program} on this host: {e}")))?;
    let pgid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // The pipes are read apart from the wait: a background child holding
    // them open does not hold the answer up.
    let out = tokio::spawn(read_bounded(stdout));
    let err = tokio::spawn(read_bounded(stderr));
    let work = async {
        if let Some(mut w) = stdin {
            // A command that does not read its input is not an error.
            let _ = w.write_all(&input).await;
            let _ = w.shutdown().await;
        }
        child.wait().await
    };
    let status = tokio::time::timeout(timeout, work).await;
    let Ok(status) = status else {
        if let Some(pgid) = pgid {
            let _ = killpg(pgid, Signal::SIGTERM);
            tokio::time::sleep(GRACE).await;
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        out.abort();
        err.abort();
        return Err(Refusal::Temporary(format!(
            "{program} was still running after {}s: its process group was killed",
            timeout.as_secs()
        )));
    };
    let status = status.map_err(|e| Refusal::Temporary(format!("waiting for {program}: {e}")))?;
    // What is left of the group (a background child) goes with it.
    if let Some(pgid) = pgid {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    let collect = |h: tokio::task::JoinHandle<Vec<u8>>| async move {
        match tokio::time::timeout(GRACE, h).await {
            Ok(Ok(bytes)) => bytes,
            _ => Vec::new(),
        }
    };
    let (out, err) = (collect(out).await, collect(err).await);
    let mut said = String::new();
    for (name, bytes) in [("stdout", out), ("stderr", err)] {
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        if !text.is_empty() {
            said.push_str(&format!("; {name}: {text}"));
        }
    }
    let said = cut(&said, ANSWER_MAX);
    match status.code() {
        Some(0) => Ok(Answer {
            text: format!("exit 0{said}"),
        }),
        Some(code @ 64..=78) => Err(Refusal::Permanent(format!("{program} exited {code}{said}"))),
        Some(code) => Err(Refusal::Temporary(format!("{program} exited {code}{said}"))),
        None => {
            use std::os::unix::process::ExitStatusExt as _;
            Err(Refusal::Temporary(format!(
                "{program} was killed by signal {}{said}",
                status.signal().unwrap_or(0)
            )))
        }
    }
}

/// The first [`ANSWER_MAX`] bytes of a pipe, the rest read and dropped (so
/// the command never blocks on a full pipe).
async fn read_bounded(pipe: Option<impl AsyncRead + Unpin + Send + 'static>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = ANSWER_MAX.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}
