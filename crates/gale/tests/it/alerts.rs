//! Alerts end to end, on a standalone: a real SMTP server (aiosmtpd with
//! STARTTLS required and AUTH) and a real HTTP receiver get the failure,
//! retry, success, recovery and deadline alerts of real runs, with their
//! content, masked secrets and working links; a mail server down for a
//! minute gets its alerts when it returns, one that refuses for good ends in
//! a visible failed delivery tried once; a run of 2,000 failing tasks is one
//! digest per window, not 2,000 messages.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Home, Out, Standalone, wait_until};
use crate::receivers::{Hook, Seen, Smtp, free_port};
use crate::web;

/// The secret a task prints: only `***` may reach an alert.
const TOKEN: &str = "tok-SECRET-4711";
const SIGNING: &str = "hook-signing-secret-42";

/// Adds a channel from its JSON document (`gale alerts channels add --from-json`).
pub fn add_channel(home: &Home, spec: &Value) -> Out {
    let file = home.file(&format!(
        "channel-{}.json",
        spec["name"].as_str().expect("a name")
    ));
    std::fs::write(&file, spec.to_string()).expect("write the channel");
    home.ok(&["alerts", "channels", "add", "--from-json", &file])
}

/// A webhook channel to `hook`, signed, a default for `defaults`.
pub fn add_hook(home: &Home, name: &str, hook: &Hook, defaults: &[&str]) -> Out {
    add_channel(
        home,
        &json!({"name": name, "kind": "webhook", "url": hook.url,
                "signing_secret": SIGNING, "defaults": defaults}),
    )
}

/// Every event the hook accepted (answered 200), in order, a digest's
/// events each on its own, with the key of the message that carried it.
pub fn hook_events(seen: &[Seen]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for s in seen.iter().filter(|s| s.status == 200) {
        let doc = s.json();
        let key = s
            .headers
            .get("idempotency-key")
            .cloned()
            .unwrap_or_default();
        if doc["kind"] == "digest" {
            for e in doc["events"].as_array().into_iter().flatten() {
                out.push((key.clone(), e.clone()));
            }
        } else {
            out.push((key, doc));
        }
    }
    out
}

/// The HMAC the hook's secret gives `timestamp.body`, by Python's hmac
/// module (not Gale's code).
fn python_hmac(secret: &str, timestamp: &str, body: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), \
             (sys.argv[2] + '.' + sys.stdin.read()).encode(), hashlib.sha256).hexdigest())",
            secret,
            timestamp,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(body.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3 hmac");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn start(home: &Home, env: &[(&str, &str)]) -> (Standalone, String) {
    let port = free_port().to_string();
    let base = format!("http://127.0.0.1:{port}");
    let mut all = vec![("GALE_BASE_URL", base.as_str())];
    all.extend_from_slice(env);
    let dags = home.dags().display().to_string();
    let s = home.start_with_env(
        &["--dags-folder", &dags, "--no-examples", "--port", &port],
        &all,
    );
    // Channels' secrets are sealed under the key the standalone makes.
    let key = home.path().join("secret.key");
    wait_until("the standalone's secret key", || key.exists().then_some(()));
    (s, base)
}

#[test]
fn every_kind_of_alert_arrives_by_mail_and_webhook_with_its_content() {
    let home = Home::new();
    let Some((cert, key)) = crate::tls::self_signed(&home) else {
        return;
    };
    let Some(smtp) = Smtp::start(home.path(), &cert, &key) else {
        return;
    };
    let hook = Hook::start();
    let marker = home.file("flaky-once");
    home.write_dag(
        "alerting.yaml",
        &format!(
            r#"
params:
  token: {{ default: "{TOKEN}", secret: true }}
  code: 1
alerts: {{ on_failure: [mail, hook], on_success: [hook], on_recovery: [hook] }}
deadline: {{ after: 2s, from: queued }}
tasks:
  flaky:
    run: 'echo "token={{{{ params.token }}}}"; test -e {marker} || {{ touch {marker}; exit 1; }}'
    retries: 1
    retry_delay: 1s
    alerts: {{ on_retry: [hook], on_recovery: [hook] }}
  slow:
    needs: [flaky]
    run: sleep 4
  breaker:
    needs: [slow]
    run: 'echo "failing with {{{{ params.token }}}}"; exit {{{{ params.code }}}}'
    alerts: {{ on_failure: [mail] }}
"#
        ),
    );
    let (standalone, base) = start(
        &home,
        &[
            ("GALE_ALERT_WINDOW", "1s"),
            ("GALE_SMTP_FROM", "gale@example.test"),
        ],
    );
    let web = web::connect(&home, &standalone);
    add_channel(
        &home,
        &json!({"name": "mail", "kind": "email", "to": ["ops@example.test"],
                "smtp": smtp.url(), "password": smtp.password, "ca_file": cert}),
    );
    add_hook(&home, "hook", &hook, &[]);
    home.wait_dag("alerting");

    // Run 1: a retry that recovers, a missed deadline, a task that fails
    // and so the run.
    let first = home.trigger("alerting", &[]);
    assert_eq!(home.wait_run(first)["run"]["state"], "failed");
    // Run 2: all succeed, after a failed run: a success and a recovery.
    let second = home.trigger("alerting", &["--conf", r#"{"code": 0}"#]);
    assert_eq!(home.wait_run(second)["run"]["state"], "success");

    let want: BTreeSet<(&str, i64)> = [
        ("task.retry", first),
        ("task.recovered", first),
        ("run.deadline", first),
        ("run.failed", first),
        ("run.deadline", second),
        ("run.success", second),
        ("run.recovered", second),
    ]
    .into();
    let events = wait_until("every webhook alert to arrive", || {
        let events = hook_events(&hook.seen());
        let got: BTreeSet<(String, i64)> = events
            .iter()
            .map(|(_, e)| {
                (
                    e["kind"].as_str().unwrap_or("").to_owned(),
                    e["run_id"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        want.iter()
            .all(|(k, r)| got.contains(&((*k).to_owned(), *r)))
            .then_some(events)
    });
    let by_kind = |kind: &str, run: i64| -> Value {
        events
            .iter()
            .find(|(_, e)| e["kind"] == kind && e["run_id"] == run)
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| panic!("no {kind} of run {run} in {events:#?}"))
    };
    let retry = by_kind("task.retry", first);
    assert_eq!(retry["dag_id"], "alerting");
    assert_eq!(retry["task_id"], "flaky");
    assert_eq!(retry["try_number"], 1);
    assert_eq!(retry["state"], "up_for_retry");
    assert_eq!(by_kind("task.recovered", first)["try_number"], 2);
    let failed = by_kind("run.failed", first);
    assert_eq!(failed["state"], "failed");
    assert_eq!(
        failed["details"]["failed_tasks"][0]["task_id"], "breaker",
        "{failed}"
    );
    assert_eq!(
        by_kind("run.recovered", second)["details"]["previous_run_id"],
        first
    );
    // Nothing for a task that names no channel, nor a success of run 1.
    assert!(
        !events.iter().any(|(_, e)| e["kind"] == "task.success"),
        "{events:#?}"
    );

    // Every body holds the secret only masked; the signature checks out.
    let all_bodies: String = hook.seen().iter().map(|s| s.body.clone()).collect();
    assert!(!all_bodies.contains(TOKEN), "the secret reached a webhook");
    for s in hook.seen() {
        assert_eq!(s.path, "/hook");
        let ts = s.headers.get("x-gale-timestamp").expect("a timestamp");
        let sig = s.headers.get("x-gale-signature").expect("a signature");
        assert_eq!(
            *sig,
            format!("sha256={}", python_hmac(SIGNING, ts, &s.body))
        );
        assert!(s.headers.contains_key("idempotency-key"), "{:?}", s.headers);
    }
    // A retry's log tail shows the line, masked.
    let tail: Vec<String> = serde_json::from_value(retry["log_tail"].clone()).unwrap_or_default();
    assert!(tail.iter().any(|l| l == "token=***"), "{tail:?}");
    // The link opens the task's page.
    let link = retry["link"].as_str().expect("a link");
    assert!(link.starts_with(&base), "{link}");
    let page = web.get(link.trim_start_matches(&base));
    assert_eq!(page.status, 200, "{link}: {}", page.text());
    assert!(page.text().contains("flaky"));

    // The mail: the task's failure and the run's, through STARTTLS and AUTH.
    let mails = wait_until("the failure mails", || {
        let m = smtp.messages();
        let joined = m.join("\n");
        (joined.contains("task.failed") && joined.contains("run.failed")).then_some(m)
    });
    let joined = mails.join("\n");
    assert!(!joined.contains(TOKEN), "the secret reached a mail");
    assert!(
        joined.contains("failing with ***"),
        "the failed task's log tail: {joined}"
    );
    assert!(
        joined.contains("breaker") && joined.contains("alerting"),
        "{joined}"
    );
    assert!(
        joined.contains(&format!("{base}/runs/{first}")),
        "a link: {joined}"
    );
    assert!(
        joined.to_ascii_lowercase().contains("message-id: <"),
        "{joined}"
    );
    assert!(joined.contains("To: ops@example.test"), "{joined}");

    // Every delivery is recorded as sent, each key once per channel.
    let listed = home.json(&["alerts", "deliveries"]);
    let rows = listed.as_array().expect("a list");
    assert!(rows.len() >= want.len(), "{listed}");
    assert!(rows.iter().all(|d| d["state"] == "sent"), "{listed:#}");
    drop(standalone);
}

#[test]
fn a_mail_server_down_for_a_minute_gets_its_alerts_and_a_refusing_one_fails_once() {
    let home = Home::new();
    let Some((cert, key)) = crate::tls::self_signed(&home) else {
        return;
    };
    let Some(mut smtp) = Smtp::start(home.path(), &cert, &key) else {
        return;
    };
    smtp.down();
    home.write_dag(
        "breaks.yaml",
        "alerts: { on_failure: [mail] }\ntasks:\n  t: { run: 'exit 1' }\n",
    );
    let (standalone, _base) = start(
        &home,
        &[
            ("GALE_ALERT_WINDOW", "1s"),
            ("GALE_SMTP_FROM", "gale@example.test"),
        ],
    );
    add_channel(
        &home,
        &json!({"name": "mail", "kind": "email", "to": ["ops@example.test"],
                "smtp": smtp.url(), "password": smtp.password, "ca_file": cert}),
    );
    home.wait_dag("breaks");
    let run = home.trigger("breaks", &[]);
    assert_eq!(home.wait_run(run)["run"]["state"], "failed");
    let down_since = Instant::now();
    // While it is down: pending, tried again with backoff, the error shown.
    // (A claim counts its attempt up as it starts: between two tries the
    // row is `sending` for the moment one is in flight.)
    let row = wait_until("a failed try of the delivery", || {
        let rows = home.json(&["alerts", "deliveries", "--run", &run.to_string()]);
        let row = rows.as_array()?.first()?.clone();
        (row["attempts"].as_u64()? >= 2 && row["state"] == "pending").then_some(row)
    });
    assert_eq!(row["state"], "pending", "{row}");
    assert!(
        row["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{row}"
    );
    if let Some(left) = Duration::from_secs(60).checked_sub(down_since.elapsed()) {
        std::thread::sleep(left);
    }
    assert!(smtp.messages().is_empty());
    smtp.up("accept");
    let mail = wait_until("the mail once the server is back", || smtp.messages().pop());
    assert!(mail.contains("run.failed"), "{mail}");
    let rows = home.json(&["alerts", "deliveries", "--run", &run.to_string()]);
    let row = &rows[0];
    assert_eq!(row["state"], "sent", "{rows}");
    let attempts = row["attempts"].as_u64().expect("attempts");
    // Backed off: 5 s doubling gives 4 or 5 tries over a minute, not hundreds.
    assert!(
        (2..=8).contains(&attempts),
        "attempts over a minute down: {attempts}"
    );

    // A server that refuses for good: one try, a failed delivery, its words.
    smtp.up("refuse");
    let refused = home.trigger("breaks", &[]);
    assert_eq!(home.wait_run(refused)["run"]["state"], "failed");
    let row = wait_until("the refused delivery to fail", || {
        let rows = home.json(&["alerts", "deliveries", "--run", &refused.to_string()]);
        let row = rows.as_array()?.first()?.clone();
        (row["state"] == "failed").then_some(row)
    });
    assert!(
        row["last_error"].as_str().unwrap_or("").contains("554"),
        "{row}"
    );
    std::thread::sleep(Duration::from_secs(5));
    let rows = home.json(&["alerts", "deliveries", "--run", &refused.to_string()]);
    assert_eq!(rows[0]["attempts"], 1, "a refusal is not retried: {rows}");
    assert_eq!(rows[0]["state"], "failed");
    drop(standalone);
}

#[test]
fn two_thousand_failing_tasks_are_one_digest_per_window() {
    let home = Home::new();
    let hook = Hook::start();
    let mut dag = String::from(
        "alerts: { on_failure: [] }\ndefaults: { alerts: { on_failure: [hook] } }\ntasks:\n",
    );
    for i in 0..2000 {
        dag.push_str(&format!("  t{i:04}: {{ run: 'exit 1' }}\n"));
    }
    home.write_dag("storm.yaml", &dag);
    let (standalone, _base) = start(&home, &[("GALE_ALERT_WINDOW", "20s")]);
    add_hook(&home, "hook", &hook, &[]);
    home.wait_dag("storm");
    let began = Instant::now();
    let run = home.trigger("storm", &[]);
    assert_eq!(home.wait_run(run)["run"]["state"], "failed");
    // A digest lists its first 100 events and counts them all.
    let counted = |seen: &[Seen]| -> u64 {
        seen.iter()
            .map(|s| {
                let d = s.json();
                if d["kind"] == "digest" {
                    d["counts"]["task.failed"].as_u64().unwrap_or(0)
                } else {
                    u64::from(d["kind"] == "task.failed")
                }
            })
            .sum()
    };
    let seen = wait_until("all 2,000 failures to arrive", || {
        let seen = hook.seen();
        (counted(&seen) >= 2000).then_some(seen)
    });
    assert_eq!(counted(&seen), 2000, "each failure once");
    let windows = began.elapsed().as_secs() / 20 + 1;
    let messages = seen.len() as u64;
    assert!(
        messages <= windows + 1,
        "{messages} messages for 2,000 failures over {windows} windows"
    );
    // A digest counts every event it carries (up to a claim's 1,000) but
    // lists only the first 100 in full.
    let digest = seen
        .iter()
        .map(Seen::json)
        .filter(|d| d["kind"] == "digest")
        .max_by_key(|d| d["count"].as_u64().unwrap_or(0))
        .expect("a digest");
    let count = digest["count"].as_u64().unwrap_or(0);
    assert!(count > 100, "the largest digest: {count} events");
    assert_eq!(
        digest["events"].as_array().map(Vec::len),
        Some(100),
        "{count} events"
    );
    let listed = hook_events(&seen);
    assert!(
        listed
            .iter()
            .all(|(_, e)| e["kind"] == "task.failed" && e["run_id"] == run)
    );
    let tasks: BTreeSet<&str> = listed
        .iter()
        .filter_map(|(_, e)| e["task_id"].as_str())
        .collect();
    assert_eq!(tasks.len(), listed.len(), "no task listed twice");
    drop(standalone);
}

#[test]
fn a_dag_naming_a_channel_that_does_not_exist_is_warned_about() {
    let home = Home::new();
    home.write_dag(
        "warned.yaml",
        "alerts: { on_failure: [ops-mail] }\ntasks:\n  a: { run: 'true', alerts: { on_retry: [pager] } }\n",
    );
    home.ok(&["db", "migrate"]);
    let file = home.dags().join("warned.yaml").display().to_string();
    let out = home.ok(&["dags", "validate", &file]);
    for name in ["ops-mail", "pager"] {
        assert!(
            out.stdout
                .contains(&format!("alert channel {name} does not exist")),
            "{out}"
        );
    }
    let key = home.path().join("secret.key").display().to_string();
    home.ok(&["secrets", "new-key", "--file", &key]);
    add_channel(
        &home,
        &json!({"name": "pager", "kind": "command", "argv": ["/bin/true"]}),
    );
    let out = home.ok(&["dags", "validate", &file]);
    assert!(out.stdout.contains("alert channel ops-mail"), "{out}");
    assert!(!out.stdout.contains("alert channel pager"), "{out}");
    // A channel name that cannot be one is an error, not a warning.
    home.write_dag(
        "bad.yaml",
        "alerts: { on_failure: ['no spaces'] }\ntasks:\n  a: { run: 'true' }\n",
    );
    let bad = home.dags().join("bad.yaml").display().to_string();
    let out = home.gale(&["dags", "validate", &bad]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("alerts.on_failure"), "{out}");
}

/// `gale ARGS` on `home` with `stdin` piped in.
fn gale_in(home: &Home, args: &[&str], stdin: &str) -> Out {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = home
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting gale");
    child
        .stdin
        .take()
        .expect("a stdin pipe")
        .write_all(stdin.as_bytes())
        .expect("writing stdin");
    let out = child.wait_with_output().expect("waiting for gale");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn channels_read_a_piped_url_on_replace_list_their_targets_and_name_what_is_missing() {
    let home = Home::new();
    home.ok(&["db", "migrate"]);
    let key = home.path().join("secret.key").display().to_string();
    home.ok(&["secrets", "new-key", "--file", &key]);
    let masked = |c: &Value| c["secret"]["url"].as_str().unwrap_or("").to_owned();
    for kind in ["--webhook", "--slack"] {
        let name = &format!("ch{}", &kind[2..]);
        let add = ["alerts", "channels", "add", name, kind];
        let out = gale_in(&home, &add, "http://127.0.0.1:59039/first?token=s3cret\n");
        assert_eq!(out.code, 0, "{out}");
        let c = home.json(&["alerts", "channels", "get", name]);
        assert_eq!(masked(&c), "http://127.0.0.1:59039/***", "{c}");
        // Without --replace: refused, saying how to change it.
        let out = gale_in(&home, &add, "http://127.0.0.1:1/x\n");
        assert_eq!(out.code, 1, "{out}");
        assert!(out.stderr.contains("give --replace"), "{out}");
        // A URL piped in with --replace is the new one.
        let mut replace = add.to_vec();
        replace.push("--replace");
        let out = gale_in(&home, &replace, "http://127.0.0.1:59040/second\n");
        assert_eq!(out.code, 0, "{out}");
        let c = home.json(&["alerts", "channels", "get", name]);
        assert_eq!(masked(&c), "http://127.0.0.1:59040/***", "{c}");
        // Nothing piped in: the stored one is kept.
        home.ok(&replace);
        let c = home.json(&["alerts", "channels", "get", name]);
        assert_eq!(masked(&c), "http://127.0.0.1:59040/***", "{c}");
    }
    home.ok(&[
        "alerts",
        "channels",
        "add",
        "ops-mail",
        "--email",
        "ops@example.com,oncall@example.com",
        "--description",
        "the ops team",
    ]);
    add_channel(
        &home,
        &json!({"name": "pager", "kind": "command", "argv": ["/bin/true", "--urgent"]}),
    );
    let out = home.ok(&["alerts", "channels", "list"]);
    let header = out.stdout.lines().next().unwrap_or("");
    for col in ["NAME", "KIND", "TARGET", "DEFAULT FOR", "DESCRIPTION"] {
        assert!(header.contains(col), "{out}");
    }
    for (name, target) in [
        ("chwebhook", "http://127.0.0.1:59040/***"),
        ("chslack", "http://127.0.0.1:59040/***"),
        ("ops-mail", "ops@example.com, oncall@example.com"),
        ("pager", "/bin/true --urgent"),
    ] {
        let row = out
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {out}"));
        assert!(row.contains(target), "{target:?} not in {row:?}");
    }
    assert!(
        !out.stdout.contains("s3cret") && !out.stdout.contains("second"),
        "{out}"
    );

    // A channel that does not exist: exit 4, in the API's words.
    for cmd in [
        &["alerts", "channels", "get", "nope"][..],
        &["alerts", "channels", "delete", "nope"],
        &["alerts", "test", "nope"],
    ] {
        let out = home.gale(cmd);
        assert_eq!(out.code, 4, "`gale {}`: {out}", cmd.join(" "));
        assert!(out.stderr.contains(r#"no alert channel "nope""#), "{out}");
    }

    // Every option of `add` says what it is.
    let help = home.ok(&["alerts", "channels", "add", "--help"]).stdout;
    for (flag, words) in [
        ("--password-file <FILE>", "the SMTP server's password"),
        ("--password-stdin", "from standard input"),
        ("--description <DESCRIPTION>", "shown in listings"),
    ] {
        let flag = format!("\n      {flag}\n");
        let at = help
            .find(&flag)
            .unwrap_or_else(|| panic!("no {flag} in {help}"));
        let rest = &help[at + flag.len()..];
        let next = rest.find("\n  -").unwrap_or(rest.len());
        assert!(rest[..next].contains(words), "{flag}: {help}");
    }
}

#[test]
fn a_delivery_to_a_closed_port_shows_why_in_the_table() {
    let home = Home::new();
    let closed = free_port();
    home.write_dag(
        "closed.yaml",
        "alerts: { on_failure: closed-hook }\ntasks:\n  a: { run: 'exit 3' }\n",
    );
    let (standalone, _) = start(&home, &[("GALE_ALERT_MAX_ATTEMPTS", "1")]);
    add_channel(
        &home,
        &json!({"name": "closed-hook", "kind": "webhook",
                "url": format!("http://127.0.0.1:{closed}/hook")}),
    );
    home.wait_dag("closed");
    let run = home.trigger("closed", &[]);
    assert_eq!(home.wait_run(run)["run"]["state"], "failed");
    wait_until("the delivery to fail", || {
        let rows = home.json(&["alerts", "deliveries", "--run", &run.to_string()]);
        let row = rows.as_array()?.first()?.clone();
        row["last_error"].is_string().then_some(row)
    });
    let out = home.ok(&["alerts", "deliveries", "--run", &run.to_string()]);
    let want = format!("http://127.0.0.1:{closed}: Connection refused");
    assert!(out.stdout.contains(&want), "{want:?} not in {out}");
    assert!(!out.stdout.contains("client error ("), "{out}");
    drop(standalone);
}

#[test]
fn gale_alerts_test_reports_the_answer_and_a_refusal() {
    let home = Home::new();
    home.ok(&["db", "migrate"]);
    let key = home.path().join("secret.key").display().to_string();
    home.ok(&["secrets", "new-key", "--file", &key]);
    let hook = Hook::start();
    add_hook(&home, "hook", &hook, &[]);

    let ok = home.ok(&["alerts", "test", "hook"]);
    assert!(ok.stdout.contains("HTTP 200"), "the server's answer: {ok}");
    let seen = hook.seen();
    assert_eq!(seen.len(), 1, "one test message");
    assert_eq!(seen[0].json()["kind"], "test");

    hook.answer(400);
    let refused = home.gale(&["alerts", "test", "hook"]);
    assert_eq!(refused.code, 1, "a refusal exits 1: {refused}");
    let said = format!("{}{}", refused.stdout, refused.stderr);
    assert!(
        said.contains("400"),
        "the refusal, in the server's words: {said}"
    );
    assert!(
        !said.contains(&hook.url),
        "the secret URL is not shown: {said}"
    );

    // A server that is not there at all.
    let closed = format!("http://127.0.0.1:{}/x", free_port());
    add_channel(
        &home,
        &json!({"name": "gone", "kind": "webhook", "url": closed}),
    );
    let gone = home.gale(&["alerts", "test", "gone"]);
    assert_eq!(gone.code, 1, "{gone}");
    let said = format!("{}{}", gone.stdout, gone.stderr);
    assert!(said.contains("Connection refused"), "{said}");
}
