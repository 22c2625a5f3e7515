//! Tests of running attempts: line pumping, output files, timeouts, kill grace and direct starts.

use super::*;

async fn pumped(input: &[u8], max_line: usize) -> Vec<String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    pump(input, Stream::Stdout, tx, max_line).await;
    let mut out = Vec::new();
    while let Ok((stream, text)) = rx.try_recv() {
        assert_eq!(stream, Stream::Stdout);
        out.push(text);
    }
    out
}

#[tokio::test]
async fn pump_splits_lines_and_keeps_a_last_line_without_newline() {
    assert_eq!(pumped(b"a\r\nb\n\nlast", 100).await, ["a", "b", "", "last"]);
}

#[tokio::test]
async fn pump_cuts_long_lines_and_says_so() {
    let out = pumped(b"0123456789\nok\n", 4).await;
    assert_eq!(out, ["0123 [gale: line cut]", "ok"]);
}

#[tokio::test]
async fn pump_replaces_invalid_utf8() {
    let out = pumped(b"caf\xff\n", 100).await;
    assert_eq!(out, ["caf\u{fffd}"]);
}

#[tokio::test]
async fn outputs_are_key_value_lines_and_bad_lines_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    std::fs::write(&path, "path=/tmp/a b\n\nrows = 42\nnot a pair\nk=v=w\n").unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let outputs = read_outputs(&path, 1024, nix::unistd::geteuid().as_raw(), &tx).await;
    assert_eq!(outputs.get("path").map(String::as_str), Some("/tmp/a b"));
    assert_eq!(outputs.get("rows").map(String::as_str), Some(" 42"));
    assert_eq!(outputs.get("k").map(String::as_str), Some("v=w"));
    assert_eq!(outputs.len(), 3);
    assert!(!path.exists(), "the outputs file is removed once read");
    let (_, warning) = rx.try_recv().unwrap();
    assert!(warning.contains("line 4 is not key=value"), "{warning}");
}

#[tokio::test]
async fn oversized_outputs_are_ignored_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    std::fs::write(&path, "k=".to_owned() + &"x".repeat(100)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    assert!(
        read_outputs(&path, 10, nix::unistd::geteuid().as_raw(), &tx)
            .await
            .is_empty()
    );
    assert!(
        rx.try_recv()
            .unwrap()
            .1
            .contains("more than the 10 allowed")
    );
}

/// Runs `command` as a task in `dir`; returns the outcome and the output lines.
async fn shell(command: &str, dir: &Path) -> (Outcome, Vec<String>) {
    shell_killed_after(command, dir, None).await
}

/// Like `shell`, and kills the task (SIGTERM, 1 s of grace) after `kill_after`.
async fn shell_killed_after(
    command: &str,
    dir: &Path,
    kill_after: Option<Duration>,
) -> (Outcome, Vec<String>) {
    let dag = gale_model::dag::parse(
        "t.yaml",
        "t",
        &format!("tasks:\n  a:\n    run: {}\n", serde_json::json!(command)),
    )
    .expect("a valid DAG");
    let task = &dag.tasks[0];
    let ctx = Context {
        dag_id: "t".into(),
        task_id: "a".into(),
        run_id: "1".into(),
        run_number: 1,
        run_type: "manual".into(),
        try_number: 1,
        ds: String::new(),
        ds_nodash: String::new(),
        ts: String::new(),
        logical_date: String::new(),
        data_interval_start: String::new(),
        data_interval_end: String::new(),
        params: Default::default(),
        conf: Default::default(),
        tasks: Default::default(),
        lookup: None,
        prev: Default::default(),
    };
    let http = reqwest::Client::new();
    let hard_kill = std::sync::atomic::AtomicBool::new(false);
    let task_env = crate::TaskEnv::filtered();
    let work = Work {
        opts_cwd: dir,
        kill_grace: Duration::from_secs(1),
        hard_kill: &hard_kill,
        limits: Limits::default(),
        http: &http,
        task_env: &task_env,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let kill = CancellationToken::new();
    if let Some(after) = kill_after {
        let kill = kill.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            kill.cancel();
        });
    }
    let outcome = run_shell(
        &work,
        task,
        command,
        &ctx,
        &dir.join("output"),
        tx,
        kill,
        |_| async {},
    )
    .await;
    let mut lines = Vec::new();
    while let Ok((_, text)) = rx.try_recv() {
        lines.push(text);
    }
    (outcome, lines)
}

/// Writes an executable file `name` with `text` into `dir`.
fn script(dir: &Path, name: &str, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn plain_and_shell_commands_behave_as_under_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    let dir = &dir.path().canonicalize().unwrap();
    let exec = |name: &str, text: &str| script(dir, name, text);
    // Started directly: argv[0] as written, the task's directory as $PWD.
    exec("tool", "#!/bin/sh\necho \"$0|$1|$2|$PWD|$GALE_TASK_ID\"\n");
    let (outcome, lines) = shell("./tool  one\ttwo", dir).await;
    assert_eq!(outcome.kind, OutcomeKind::Success, "{lines:?}");
    assert_eq!(lines, [format!("./tool|one|two|{}|a", dir.display())]);
    // A script without `#!` cannot be exec'd: the shell runs it instead.
    exec("bare", "echo \"bare:$*\"\nexit 3\n");
    let (outcome, lines) = shell("./bare x y", dir).await;
    assert_eq!(outcome.exit_code, Some(3), "{lines:?}");
    assert_eq!(lines, ["bare:x y"]);
    // A program that is nowhere: the shell's own message and status.
    let (outcome, lines) = shell("no-such-program-anywhere arg", dir).await;
    assert_eq!(outcome.exit_code, Some(127));
    assert!(lines.iter().any(|l| l.contains("not found")), "{lines:?}");
    // Shell syntax still goes through the shell.
    let (outcome, lines) = shell("echo $GALE_TASK_ID > f; cat f; exit 4", dir).await;
    assert_eq!(outcome.exit_code, Some(4));
    assert_eq!(lines, ["a"]);
}

#[tokio::test]
async fn a_program_started_directly_reports_what_the_shell_would() {
    let dir = tempfile::tempdir().unwrap();
    let real = &dir.path().canonicalize().unwrap();
    let exec = |name: &str, text: &str| script(real, name, text);
    // A signal's death: the shell would report 128 + the signal.
    exec("selfkill", "#!/bin/sh\nkill -9 $$\n");
    let (outcome, _) = shell("./selfkill", real).await;
    assert_eq!(outcome.exit_code, Some(137));
    assert_eq!(outcome.message.as_deref(), Some("killed by signal 9"));
    let (outcome, _) = shell("./selfkill; exit $?", real).await;
    assert_eq!(outcome.exit_code, Some(137), "the shell's own report");
    // Through a symbolic link, with no inherited $PWD naming it: the physical path.
    exec("pwd-of", "#!/bin/sh\necho \"$PWD\"\n");
    let link = real.join("link");
    std::os::unix::fs::symlink(real, &link).unwrap();
    let (_, lines) = shell("./pwd-of", &link).await;
    let (_, via_shell) = shell("./pwd-of;", &link).await;
    assert_eq!(lines, [real.display().to_string()]);
    assert_eq!(lines, via_shell);
}

#[tokio::test]
async fn a_killed_task_gets_its_grace_under_the_shell_too() {
    let dir = tempfile::tempdir().unwrap();
    let dir = &dir.path().canonicalize().unwrap();
    script(
        dir,
        "graceful",
        "#!/bin/sh\ntrap 'sleep 0.2; echo cleaned up; exit 0' TERM\necho ready\nwhile :; do sleep 0.05; done\n",
    );
    // Directly, and under a shell that itself dies at SIGTERM at once: both
    // times the program's handler finishes within the grace.
    for command in ["./graceful", "./graceful; true"] {
        let (outcome, lines) =
            shell_killed_after(command, dir, Some(Duration::from_millis(300))).await;
        assert_eq!(outcome.kind, OutcomeKind::Killed, "{command}");
        assert!(
            lines.iter().any(|l| l == "cleaned up"),
            "{command}: the handler was cut short: {lines:?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains("sending SIGKILL")),
            "{command}: {lines:?}"
        );
    }
}

#[test]
fn a_store_time_is_carried_forward_by_the_elapsed_time_and_saturates() {
    let start: jiff::Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
    assert_eq!(carried_forward(start, 0), start);
    assert_eq!(
        carried_forward(start, 90_500),
        "2026-03-01T12:01:30.5Z".parse::<jiff::Timestamp>().unwrap()
    );
    assert_eq!(carried_forward(start, u64::MAX), jiff::Timestamp::MAX);
}

#[tokio::test]
async fn reads_before_a_start_outwait_an_outage_but_not_a_kill_or_a_real_error() {
    let calls = std::sync::atomic::AtomicU32::new(0);
    let kill = CancellationToken::new();
    // Unavailable twice, then an answer.
    let got = read_retrying(&kill, || async {
        match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 | 1 => Err(gale_store::Error::Unavailable(
                "the database stopped answering".into(),
            )),
            n => Ok(n),
        }
    })
    .await;
    assert_eq!(got.ok(), Some(2));
    // An error that waiting cannot cure comes back at once.
    calls.store(0, std::sync::atomic::Ordering::SeqCst);
    let got: gale_store::Result<u32> = read_retrying(&kill, || async {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(gale_store::Error::Database("a bug".into()))
    })
    .await;
    assert!(matches!(got, Err(gale_store::Error::Database(_))));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A killed attempt (its lease fenced) stops waiting.
    kill.cancel();
    let got: gale_store::Result<u32> = read_retrying(&kill, || async {
        Err(gale_store::Error::Unavailable("down".into()))
    })
    .await;
    assert!(got.is_err());
}

#[tokio::test]
async fn outputs_pointing_at_another_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "key=sekrit\n").unwrap();
    let me = nix::unistd::geteuid().as_raw();
    type Link = fn(&std::path::Path, &std::path::Path);
    let cases: [(&str, Link); 2] = [
        ("symlink", |from, to| {
            std::os::unix::fs::symlink(from, to).unwrap()
        }),
        ("hard link", |from, to| {
            std::fs::hard_link(from, to).unwrap()
        }),
    ];
    for (what, link) in cases {
        let path = dir.path().join(format!("out-{}", what.replace(' ', "-")));
        link(&secret, &path);
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        assert!(
            read_outputs(&path, 1024, me, &tx).await.is_empty(),
            "{what}"
        );
        let (_, warning) = rx.try_recv().unwrap();
        assert!(warning.contains("outputs ignored"), "{what}: {warning}");
    }
    // Another user's file, even a regular one.
    let path = dir.path().join("out-other");
    std::fs::write(&path, "key=v\n").unwrap();
    let (tx, _rx) = tokio::sync::mpsc::channel(64);
    assert!(read_outputs(&path, 1024, me + 1, &tx).await.is_empty());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "key=sekrit\n");
}
