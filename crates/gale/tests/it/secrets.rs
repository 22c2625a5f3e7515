//! Variables and connections as tasks use them, with real processes:
//!
//! - a `psql` task reads a connection made with `gale connections add`,
//!   through `env_from` and through templates, against a real PostgreSQL;
//! - the environment, a secrets directory and the store resolve a name in
//!   that order;
//! - a task that prints every secret it was handed leaves only `***` in its
//!   stored log, outputs and the API's answers, and the database files hold
//!   none of them in clear;
//! - rotating the key while runs read and writers set secrets loses no
//!   value, fails no run and leaves nothing under the old key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::harness::{Home, Standalone, states};
use crate::web;

/// A key file in `home`, owner-only, made by `gale secrets new-key`.
fn key_file(home: &Home) -> PathBuf {
    let key = home.ok(&["secrets", "new-key"]).stdout.trim().to_owned();
    assert_eq!(key.len(), 64, "a key is 64 hex digits: {key}");
    let path = home.path().join("test.key");
    write_owner_only(&path, &format!("{key}\n"));
    path
}

fn write_owner_only(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).expect("writing a key file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Every byte of the SQLite database and its WAL, as text.
fn database_bytes(home: &Home) -> String {
    let mut all = Vec::new();
    for name in ["gale.db", "gale.db-wal"] {
        if let Ok(bytes) = std::fs::read(home.path().join(name)) {
            all.extend(bytes);
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

fn start(home: &Home, key: &Path, env: &[(&str, &str)], more: &[&str]) -> Standalone {
    let dags = home.dags().display().to_string();
    let key = key.display().to_string();
    let mut args = vec![
        "--dags-folder",
        dags.as_str(),
        "--no-examples",
        "--attempt-lease",
        "3s",
        "--secret-key-file",
        key.as_str(),
    ];
    args.extend_from_slice(more);
    home.start_with_env(&args, env)
}

#[test]
fn a_psql_task_reads_a_connection_through_env_from_and_templates() {
    let setup = gale_pgtest::Setup {
        password: Some("wh-pass-4417".into()),
        ..Default::default()
    };
    let Some(server) = gale_pgtest::server_with_or_skip("psql_connection", &setup) else {
        return;
    };
    let url = server
        .create_database("warehouse")
        .expect("create the warehouse");
    server
        .psql(
            "warehouse",
            "CREATE TABLE items (n int); INSERT INTO items VALUES (1), (2), (3)",
        )
        .expect("seed the warehouse");
    let home = Home::new();
    let key = key_file(&home);
    let key_arg = key.display().to_string();
    // Airflow's URI form, with the extra as its query.
    home.ok(&[
        "--secret-key-file",
        &key_arg,
        "connections",
        "add",
        "warehouse",
        "--uri",
        &format!("{url}?application_name=gale-test"),
    ]);
    let out = home.ok(&[
        "--secret-key-file",
        &key_arg,
        "connections",
        "get",
        "warehouse",
    ]);
    assert!(
        !out.stdout.contains("wh-pass-4417"),
        "shown without --reveal: {out}"
    );
    home.write_dag(
        "wh.yaml",
        r#"
id: wh
tasks:
  by_env:
    run: psql -X -At -c "select sum(n) from items" && echo "pw=$PGPASSWORD"
    env_from: {connection: warehouse, prefix: PG}
  by_template:
    run: >-
      psql -X -At -h {{ conn.warehouse.host }} -p {{ conn.warehouse.port }}
      -U {{ conn.warehouse.login }} -d {{ conn.warehouse.schema }}
      -c "insert into items values (40) returning n"
    env:
      PGPASSWORD: "{{ conn.warehouse.password }}"
  by_uri:
    needs: [by_template]
    run: >-
      psql -X -At {{ conn.warehouse.uri }} -c "select count(*) || ':' || current_setting('application_name') from items"
"#,
    );
    let _standalone = start(&home, &key, &[], &[]);
    home.wait_dag("wh");
    let run = home.trigger("wh", &[]);
    let done = home.wait_run(run);
    let tasks = home.tasks(run);
    assert_eq!(done["run"]["state"], "success", "{tasks:?}");
    let by_env = home.logs(run, "by_env", None);
    assert!(by_env.contains("6"), "the sum of the seeded rows: {by_env}");
    assert!(by_env.contains("pw=***"), "the password masked: {by_env}");
    assert!(home.logs(run, "by_template", None).contains("40"));
    let by_uri = home.logs(run, "by_uri", None);
    assert!(
        by_uri.contains("4:gale-test"),
        "the URI carries the extra too: {by_uri}"
    );
    // The insert really reached the warehouse.
    assert_eq!(
        server
            .psql("warehouse", "select sum(n) from items")
            .expect("sum"),
        "46"
    );
    for t in ["by_env", "by_template", "by_uri"] {
        assert!(!home.logs(run, t, None).contains("wh-pass-4417"));
    }
    let shown = serde_json::to_string(&tasks).expect("json");
    assert!(!shown.contains("wh-pass-4417"), "task rows: {shown}");
}

#[test]
fn the_environment_comes_before_the_secrets_directory_before_the_store() {
    let home = Home::new();
    let key = key_file(&home);
    let key_arg = key.display().to_string();
    for name in ["order_a", "order_b", "order_c"] {
        home.ok(&[
            "--secret-key-file",
            &key_arg,
            "variables",
            "set",
            name,
            &format!("store-{name}"),
        ]);
    }
    home.ok(&[
        "--secret-key-file",
        &key_arg,
        "connections",
        "add",
        "api",
        "--uri",
        "http://store-host:80",
    ]);
    let dir = home.path().join("secrets");
    std::fs::create_dir_all(dir.join("variables")).expect("mkdir");
    std::fs::create_dir_all(dir.join("connections")).expect("mkdir");
    std::fs::write(dir.join("variables/order_a"), "dir-a\n").expect("write");
    std::fs::write(dir.join("variables/order_b"), "dir-b\n").expect("write");
    std::fs::write(dir.join("connections/api"), "http://dir-host:81\n").expect("write");
    let seen = home.file("seen.txt");
    home.write_dag(
        "order.yaml",
        &format!(
            "id: order\ntasks:\n  t:\n    run: printf '%s ' {{{{ var.order_a }}}} {{{{ var.order_b }}}} {{{{ var.order_c }}}} {{{{ conn.api.host }}}} > {seen} && echo a={{{{ var.order_a }}}}\n"
        ),
    );
    let dir_arg = dir.display().to_string();
    let _standalone = start(
        &home,
        &key,
        &[("GALE_VAR_ORDER_A", "env-a")],
        &["--secrets-dir", &dir_arg],
    );
    home.wait_dag("order");
    let run = home.trigger("order", &[]);
    assert_eq!(home.wait_run(run)["run"]["state"], "success");
    assert_eq!(
        std::fs::read_to_string(&seen).expect("the task's file"),
        "env-a dir-b store-order_c dir-host "
    );
    // What came from the environment and the directory is secret: masked.
    let log = home.logs(run, "t", None);
    assert!(log.contains("a=***") && !log.contains("env-a"), "{log}");
}

#[test]
fn a_task_that_prints_every_secret_leaves_only_masked_text() {
    let home = Home::new();
    let key = key_file(&home);
    let key_arg = key.display().to_string();
    let pem = "-----BEGIN KEY-----\nline-one-of-a-private-key\nline-two-of-a-private-key\n-----END KEY-----";
    let cli = |args: &[&str]| {
        let mut all = vec!["--secret-key-file", key_arg.as_str()];
        all.extend_from_slice(args);
        home.ok(&all)
    };
    cli(&["variables", "set", "api_token", "tok-3f9a1c77", "--secret"]);
    cli(&["variables", "set", "--secret", "deploy_key", "--", pem]);
    cli(&["variables", "set", "region", "eu-west-1"]);
    cli(&[
        "connections",
        "add",
        "svc",
        "--conn-type",
        "http",
        "--host",
        "svc.example",
        "--login",
        "robot",
        "--password",
        "pw-9c2e51",
        "--extra",
        r#"{"client_secret": "cs-77aa01", "timeout": "30"}"#,
    ]);
    home.write_dag(
        "leak.yaml",
        r#"
id: leak
tasks:
  t:
    run: |
      echo "token={{ var.api_token }} region={{ var.region }}"
      echo "pw={{ conn.svc.password }} secret={{ conn.svc.extra.client_secret }} uri={{ conn.svc.uri }}"
      printf '%s\n' {{ var.deploy_key }}
      echo "env=$SVC_PASSWORD key=$KEY"
      echo "out={{ var.api_token }}" >> "$GALE_OUTPUT"
      echo "token={{ var.api_token }}" >&2
      exit 3
    env_from:
      - {connection: svc, prefix: SVC_}
      - {variable: api_token, name: KEY}
"#,
    );
    let standalone = start(&home, &key, &[], &[]);
    let web = web::connect(&home, &standalone);
    let viewer = web.with_token(&web::user_token(&home, "viewer1", "viewer"));
    home.wait_dag("leak");
    let run = home.trigger("leak", &[]);
    assert_eq!(home.wait_run(run)["run"]["state"], "failed");
    let secrets = [
        "tok-3f9a1c77",
        "pw-9c2e51",
        "cs-77aa01",
        "line-one-of-a-private-key",
        "line-two-of-a-private-key",
    ];
    let log = home.logs(run, "t", None);
    assert!(
        log.contains("region=eu-west-1"),
        "a plain variable is shown: {log}"
    );
    assert!(log.contains("token=***") && log.contains("pw=***"), "{log}");
    let tasks = home.tasks(run);
    let mut shown = vec![log, serde_json::to_string(&tasks).expect("json")];
    for client in [&web, &viewer] {
        for path in [
            format!("/api/v1/runs/{run}/tasks"),
            format!("/api/v1/runs/{run}/tasks/t"),
            format!("/api/v1/runs/{run}/tasks/t/logs"),
            format!("/api/v1/runs/{run}"),
            "/api/v1/variables".into(),
            "/api/v1/variables/api_token".into(),
            "/api/v1/connections/svc".into(),
        ] {
            let r = client.get(&path);
            shown.push(format!("{path}: {} {}", r.status, r.text()));
        }
    }
    let masked = viewer.get("/api/v1/variables/api_token");
    assert_eq!(
        masked.status,
        200,
        "a viewer reads a variable: {}",
        masked.text()
    );
    assert!(masked.text().contains("***"), "{}", masked.text());
    for text in &shown {
        for s in secrets {
            assert!(!text.contains(s), "{s} shows in: {text}");
        }
    }
    // Nor anywhere in the database files.
    drop(standalone);
    let raw = database_bytes(&home);
    for s in secrets {
        assert!(!raw.contains(s), "{s} is in the database in clear");
    }
}

#[test]
fn rotating_the_key_under_load_loses_nothing() {
    let home = Home::new();
    let key = key_file(&home);
    let key_arg = key.display().to_string();
    let set = |name: &str, value: &str| {
        home.ok(&[
            "--secret-key-file",
            &key_arg,
            "variables",
            "set",
            name,
            value,
            "--secret",
        ]);
    };
    for i in 0..20 {
        set(&format!("v{i}"), &format!("first-{i}"));
    }
    home.ok(&[
        "--secret-key-file",
        &key_arg,
        "connections",
        "add",
        "c0",
        "--uri",
        "postgres://u:conn-pw-1@h:5432/d",
    ]);
    home.write_dag(
        "reader.yaml",
        "id: reader\nmax_active_runs: 4\ntasks:\n  t:\n    run: test -n {{ var.v0 }} && test -n {{ var.v19 }} && test -n {{ conn.c0.password }}\n",
    );
    let standalone = start(&home, &key, &[], &[]);
    home.wait_dag("reader");
    let stop = Arc::new(AtomicBool::new(false));
    let mut last = BTreeMap::new();
    for i in 0..20 {
        last.insert(format!("v{i}"), format!("first-{i}"));
    }
    std::thread::scope(|s| {
        // Runs that read the secrets throughout.
        let runs = s.spawn(|| {
            let mut ids = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                ids.push(home.trigger("reader", &[]));
                std::thread::sleep(std::time::Duration::from_millis(150));
            }
            ids
        });
        // A writer that keeps setting secrets while the key changes.
        let writer = s.spawn(|| {
            let mut last = BTreeMap::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let (name, value) = (format!("v{}", n % 20), format!("second-{n}"));
                set(&name, &value);
                last.insert(name, value);
                n += 1;
            }
            last
        });
        std::thread::sleep(std::time::Duration::from_secs(2));
        let new_key = home.ok(&["secrets", "new-key"]).stdout.trim().to_owned();
        let old = std::fs::read_to_string(&key).expect("the key file");
        write_owner_only(&key, &format!("{new_key}\n{old}"));
        // Every process reads the key file again within a second.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        home.ok(&["--secret-key-file", &key_arg, "secrets", "rotate-key"]);
        std::thread::sleep(std::time::Duration::from_secs(2));
        stop.store(true, Ordering::SeqCst);
        let ids = runs.join().expect("the run thread");
        last.extend(writer.join().expect("the writer thread"));
        assert!(ids.len() > 5, "runs went on during the rotation: {ids:?}");
        for id in ids {
            let done = home.wait_run(id);
            assert_eq!(
                done["run"]["state"],
                "success",
                "run {id}: {:?}",
                states(&home.tasks(id))
            );
        }
        // Any value a writer sealed under the old key just before the change
        // is re-sealed by a second pass.
        home.ok(&["--secret-key-file", &key_arg, "secrets", "rotate-key"]);
        // Only the new key is left: everything still opens, every last value.
        write_owner_only(&key, &format!("{new_key}\n"));
        let status = home.gale(&["--secret-key-file", &key_arg, "secrets", "status"]);
        assert_eq!(
            status.code, 0,
            "every value under the one key left: {status}"
        );
        for (name, value) in &last {
            let got = home.json(&[
                "--secret-key-file",
                &key_arg,
                "variables",
                "get",
                name,
                "--reveal",
            ]);
            assert_eq!(got["value"], value.as_str(), "{name}: {got}");
        }
        let conn = home.json(&[
            "--secret-key-file",
            &key_arg,
            "connections",
            "get",
            "c0",
            "--reveal",
        ]);
        assert_eq!(conn["password"], "conn-pw-1", "{conn}");
    });
    drop(standalone);
    // The raw rows: every sealed value under the new key, none in clear.
    let db = rusqlite::Connection::open(home.path().join("gale.db")).expect("open raw");
    let ids: Vec<String> = db
        .prepare("SELECT DISTINCT key_id FROM variables WHERE key_id IS NOT NULL UNION SELECT DISTINCT key_id FROM connections WHERE key_id IS NOT NULL")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        ids.len(),
        1,
        "one key seals everything after the rotation: {ids:?}"
    );
    let clear: i64 = db
        .query_row(
            "SELECT count(*) FROM variables WHERE value IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(clear, 0, "no secret variable holds its value in clear");
}
