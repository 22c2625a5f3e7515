//! A task's process: how it is started (own process group, pipes, environment),
//! waited for within its timeout, killed with its whole group, and how its
//! output lines and `$GALE_OUTPUT` are read. It records nothing in the store.

use super::*;
/// The settings every task process shares: directory, pipes, own process group,
/// environment.
///
/// No pre_exec hook (e.g. PR_SET_PDEATHSIG) unless tasks run as another
/// user (`--run-as`, see `task_env`): it forces fork() instead of
/// posix_spawn, which costs milliseconds of CPU per task in a large process.
/// A worker that dies leaves its attempt's group behind; start-up recovery on
/// the same host kills that group (its pgid is recorded) before the retry.
fn prepare<'c>(
    cmd: &'c mut tokio::process::Command,
    work: &Work<'_>,
    task: &Task,
    cwd: &Path,
    ctx: &Context,
    output: &Path,
) -> &'c mut tokio::process::Command {
    work.task_env.apply(cmd, cwd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .envs(task.env.iter())
        .envs(gale_env(ctx, output))
}

/// Runs a rendered shell command. `on_start` gets the pid once it is running.
#[allow(clippy::too_many_arguments)]
pub async fn run_shell<F, Fut>(
    work: &Work<'_>,
    task: &Task,
    command: &str,
    ctx: &Context,
    output: &Path,
    lines: LineTx,
    kill: CancellationToken,
    on_start: F,
) -> Outcome
where
    F: FnOnce(Option<u32>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let cwd = task
        .cwd
        .as_deref()
        .map(PathBuf::from)
        .unwrap_or_else(|| work.opts_cwd.to_path_buf());
    // Absolute, so that a PATH lookup below and the process agree on it.
    let cwd = match cwd.is_relative() {
        true => std::env::current_dir().map_or(cwd.clone(), |d| d.join(&cwd)),
        false => cwd,
    };
    // A plain command starts without a shell (see `direct`); if that start
    // fails, the shell runs it and reports what is wrong as it always does.
    let task_path = task.env.get("PATH").map(std::ffi::OsStr::new);
    let mut child = None;
    let direct = crate::direct::plan(command, task_path, &cwd).and_then(|d| {
        crate::direct::shell_pwd(&cwd, task.env.get("PWD").map(std::ffi::OsStr::new))
            .map(|pwd| (d, pwd))
    });
    if let Some((direct, pwd)) = &direct {
        let mut cmd = tokio::process::Command::new(&direct.program);
        cmd.arg0(direct.arg0).args(&direct.args);
        prepare(&mut cmd, work, task, &cwd, ctx, output).env("PWD", pwd);
        child = cmd.spawn().ok();
    }
    let direct = child.is_some();
    let mut child = match child {
        Some(c) => c,
        None => {
            let mut cmd = tokio::process::Command::new("/bin/sh");
            cmd.arg("-c").arg(command);
            match prepare(&mut cmd, work, task, &cwd, ctx, output).spawn() {
                Ok(c) => c,
                Err(e) => {
                    return failed(format!("cannot start /bin/sh in {}: {e}", cwd.display()));
                }
            }
        }
    };
    let pid = child.id();
    on_start(pid).await;
    let readers = [
        child.stdout.take().map(|o| {
            tokio::spawn(pump(
                o,
                Stream::Stdout,
                lines.clone(),
                work.limits.line_bytes,
            ))
        }),
        child.stderr.take().map(|o| {
            tokio::spawn(pump(
                o,
                Stream::Stderr,
                lines.clone(),
                work.limits.line_bytes,
            ))
        }),
    ];
    let timeout = task.timeout.map(|t| t.0).unwrap_or(Duration::MAX);
    let pgid = pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw);
    let mut timed_out = false;
    let mut killed = false;
    let status = tokio::select! {
        s = child.wait() => s,
        _ = tokio::time::sleep(timeout) => {
            timed_out = true;
            let _ = lines.send((Stream::System, format!("[gale] timeout of {} reached: sending SIGTERM to the process group", task.timeout.unwrap_or_default()))).await;
            terminate(&mut child, pgid, work.kill_grace, &lines).await
        }
        _ = kill.cancelled() => {
            killed = true;
            let grace = if work.hard_kill.load(std::sync::atomic::Ordering::Acquire) {
                Duration::ZERO
            } else {
                work.kill_grace
            };
            terminate(&mut child, pgid, grace, &lines).await
        }
    };
    // Whatever the shell left behind in its group goes too.
    if let Some(pg) = pgid {
        let _ = killpg(pg, Signal::SIGKILL);
    }
    // A process outside the group (e.g. started with setsid) may still hold the
    // pipes. Stop reading them then: a reader's line sender would otherwise keep
    // the attempt's log, and so the attempt, open until that process ends.
    let read_until = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut cut_off = false;
    for r in readers.into_iter().flatten() {
        let abort = r.abort_handle();
        if tokio::time::timeout_at(read_until, r).await.is_err() {
            abort.abort();
            cut_off = true;
        }
    }
    if cut_off {
        let _ = lines
            .send((
                Stream::System,
                "[gale] output still open 5s after the task ended (held by a process outside its group): no longer read".into(),
            ))
            .await;
    }
    // Plain syscalls on a small local file: cheaper inline than a blocking-pool hop.
    let owner = work.task_env.task_uid();
    let outputs = read_outputs(output, work.limits.output_bytes, owner, &lines).await;

    let status = match status {
        Ok(s) => s,
        Err(e) => return failed(format!("waiting for the task's process failed: {e}")),
    };
    let code = status.code();
    let (kind, message) = if timed_out {
        (
            OutcomeKind::TimedOut,
            Some(format!(
                "timed out after {}",
                task.timeout.unwrap_or_default()
            )),
        )
    } else if killed {
        (OutcomeKind::Killed, Some("killed".to_owned()))
    } else {
        match code {
            Some(0) => (OutcomeKind::Success, None),
            Some(EXIT_SKIP) => (
                OutcomeKind::Skipped,
                Some(format!("exited with {EXIT_SKIP}: skipped")),
            ),
            Some(c) => (OutcomeKind::Failed, Some(format!("exited with code {c}"))),
            None => {
                use std::os::unix::process::ExitStatusExt;
                let sig = status.signal().unwrap_or(0);
                (OutcomeKind::Failed, Some(format!("killed by signal {sig}")))
            }
        }
    };
    // A program the shell ran and a signal killed shows as the shell's exit
    // status, 128 + the signal: the same for one started directly.
    let code = match code {
        None if direct => {
            use std::os::unix::process::ExitStatusExt;
            status.signal().map(|sig| 128 + sig)
        }
        code => code,
    };
    Outcome {
        kind,
        exit_code: code,
        message,
        outputs,
        pid,
        command: None,
    }
}

/// SIGTERM to the group, then SIGKILL after the grace (at once when it is zero).
async fn terminate(
    child: &mut tokio::process::Child,
    pgid: Option<Pid>,
    grace: Duration,
    lines: &LineTx,
) -> std::io::Result<std::process::ExitStatus> {
    if grace.is_zero() {
        if let Some(pg) = pgid {
            let _ = killpg(pg, Signal::SIGKILL);
        }
        return child.wait().await;
    }
    if let Some(pg) = pgid {
        let _ = killpg(pg, Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + grace;
    let status = tokio::time::timeout_at(deadline, child.wait()).await.ok();
    // The shell ends at SIGTERM at once; what it started gets the rest of the
    // grace to finish, as a program started directly does.
    let group_alive = || async move {
        match pgid {
            Some(pg) => tokio::task::spawn_blocking(move || group_has_live_process(pg))
                .await
                .unwrap_or(true),
            None => false,
        }
    };
    if status.is_some() {
        while tokio::time::Instant::now() < deadline && group_alive().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if status.is_none() || group_alive().await {
        let _ = lines
            .send((
                Stream::System,
                format!(
                    "[gale] still running {}s after SIGTERM: sending SIGKILL",
                    grace.as_secs()
                ),
            ))
            .await;
        if let Some(pg) = pgid {
            let _ = killpg(pg, Signal::SIGKILL);
        }
    }
    match status {
        Some(s) => s,
        None => child.wait().await,
    }
}

/// Whether a process of group `pg` is still running. A zombie does not count: an
/// orphan the shell left waits as one for its new parent (which may never reap
/// it, e.g. a container's first process), but `kill(-pg, 0)` still finds it.
fn group_has_live_process(pg: Pid) -> bool {
    if killpg(pg, None).is_err() {
        return false;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    procs.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold anything but the last ')'.
        let mut fields = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
        pgrp == Some(pg.as_raw()) && state != Some("Z") && state != Some("X")
    })
}

/// Splits a pipe into lines (cut at `max_line` bytes) and sends them on.
pub(super) async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: Stream,
    lines: LineTx,
    max_line: usize,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut line: Vec<u8> = Vec::new();
    let mut cut = false;
    let emit = |line: &mut Vec<u8>, cut: &mut bool| {
        let mut text = String::from_utf8_lossy(line).into_owned();
        if text.ends_with('\r') {
            text.pop();
        }
        if *cut {
            text.push_str(" [gale: line cut]");
        }
        line.clear();
        *cut = false;
        text
    };
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                let text = emit(&mut line, &mut cut);
                if lines.send((stream, text)).await.is_err() {
                    return;
                }
            } else if line.len() < max_line {
                line.push(b);
            } else {
                cut = true;
            }
        }
    }
    if !line.is_empty() || cut {
        let text = emit(&mut line, &mut cut);
        let _ = lines.send((stream, text)).await;
    }
}

/// Reads `key=value` lines from the task's `$GALE_OUTPUT` file, and removes
/// the file.
///
/// Only a regular file that `owner` (the user the task ran as) owns, opened
/// without following a symbolic link: otherwise a task could point the path
/// at a file only the worker may read (its database, a key) and have it
/// stored as its outputs.
pub(super) async fn read_outputs(
    path: &Path,
    max_bytes: u64,
    owner: u32,
    lines: &LineTx,
) -> BTreeMap<String, String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut out = BTreeMap::new();
    // Most tasks write no outputs: one failed open is all they cost.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .and_then(|f| {
            let meta = f.metadata()?;
            if !meta.is_file() || meta.uid() != owner || meta.nlink() != 1 {
                return Err(std::io::Error::other(
                    "not a regular file of the task's own (a link, a device or another user's file)",
                ));
            }
            Ok(f)
        });
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => {
            let _ = std::fs::remove_file(path);
            let _ = lines
                .send((
                    Stream::System,
                    format!("[gale] cannot read $GALE_OUTPUT: {e}: outputs ignored"),
                ))
                .await;
            return out;
        }
    };
    let _ = std::fs::remove_file(path);
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    if size > max_bytes {
        let _ = lines
            .send((Stream::System, format!("[gale] $GALE_OUTPUT is {size} bytes, more than the {max_bytes} allowed: outputs ignored")))
            .await;
        return out;
    }
    let mut text = String::new();
    if file.take(max_bytes).read_to_string(&mut text).is_err() {
        let _ = lines
            .send((
                Stream::System,
                "[gale] $GALE_OUTPUT is not valid UTF-8: outputs ignored".into(),
            ))
            .await;
        return out;
    }
    for (n, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match l.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.insert(k.trim().to_owned(), v.to_owned());
            }
            _ => {
                let _ = lines
                    .send((
                        Stream::System,
                        format!(
                            "[gale] $GALE_OUTPUT line {} is not key=value: ignored",
                            n + 1
                        ),
                    ))
                    .await;
            }
        }
    }
    out
}
