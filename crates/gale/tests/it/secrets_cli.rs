//! `gale variables`, `gale connections` and `gale secrets` as separate
//! processes on a SQLite GALE_HOME:
//!
//! - plain and secret variables set, read, listed and deleted; a secret one
//!   refused (with the how-to) until a key file exists; `***` unless
//!   `--reveal`, which the audit log records; values from the environment
//!   and a secrets directory shown with where they came from;
//! - no secret value or connection password in any column of the raw tables;
//! - connections from a URI and from fields, masked and revealed; imports of
//!   what `airflow connections export` writes (JSON with `extra` as JSON
//!   text, YAML, `.env`); export, delete everything, import gives the same
//!   connections back; bad files import nothing and name the bad entry;
//! - variables import and export (Airflow's and Gale's formats);
//! - key rotation: a new first key, `rotate-key`, every value under it in
//!   `secrets status`, still readable once the old key is gone.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};

use crate::harness::{Home, Out};

/// Values that must never reach the database in clear.
const VAR_SECRET: &str = "s3cr3t-var-value";
const PG_PASSWORD: &str = "pg-pass-/1";
const API_PASSWORD: &str = "hunter2-api";
const API_KEY: &str = "k-secret-9";

/// `gale ARGS` on `home` with `stdin` as its input and `env` set.
fn gale(home: &Home, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Out {
    let mut cmd = home.command(args);
    cmd.envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starting gale");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("a stdin pipe");
        pipe.write_all(text.as_bytes()).expect("writing stdin");
    }
    let out = child.wait_with_output().expect("waiting for gale");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok_in(home: &Home, args: &[&str], stdin: &str) -> Out {
    let out = gale(home, args, Some(stdin), &[]);
    assert_eq!(out.code, 0, "`gale {}` failed: {out}", args.join(" "));
    out
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("creating a private file");
    f.write_all(text.as_bytes())
        .expect("writing a private file");
}

/// A fresh key from `gale secrets new-key`.
fn new_key(home: &Home) -> String {
    let key = home.ok(&["secrets", "new-key"]).stdout.trim().to_owned();
    assert!(
        key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "not a key: {key:?}"
    );
    key
}

/// `gale secrets status -o json`: its exit code, the configured keys and the
/// ones it lacks, each with how many values are sealed under it.
type Counts = Vec<(String, u64)>;

fn key_status(home: &Home) -> (i32, Counts, Counts) {
    let out = home.gale(&["secrets", "status", "-o", "json"]);
    let status = out.json();
    let pairs = |k: &str| -> Counts {
        status[k]
            .as_array()
            .unwrap_or_else(|| panic!("no {k} in {status:#}"))
            .iter()
            .map(|e| {
                (
                    e["key_id"].as_str().expect("a key id").to_owned(),
                    e["values"].as_u64().expect("a count"),
                )
            })
            .collect()
    };
    (out.code, pairs("keys"), pairs("missing"))
}

/// The configured keys of a status that must be fine.
fn key_counts(home: &Home) -> Counts {
    let (code, keys, missing) = key_status(home);
    assert_eq!((code, &missing), (0, &Vec::new()), "secrets status");
    keys
}

/// Every column of every row of `table`, as text.
fn raw_table(home: &Home, table: &str) -> Vec<String> {
    let db = rusqlite::Connection::open(home.path().join("gale.db")).expect("opening gale.db");
    let mut stmt = db
        .prepare(&format!("SELECT * FROM {table}"))
        .expect("reading a table");
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |row| {
            let mut cells = Vec::new();
            for i in 0..n {
                let v: rusqlite::types::Value = row.get(i)?;
                cells.push(format!("{v:?}"));
            }
            Ok(cells)
        })
        .expect("querying a table");
    rows.flat_map(|r| r.expect("a row")).collect()
}

/// Entries of the audit log with `action`.
fn audit(home: &Home, action: &str) -> Vec<Value> {
    home.json(&["audit", "list", "--action", action])
        .as_array()
        .expect("a list")
        .clone()
}

#[test]
fn variables_plain_and_secret() {
    let home = Home::new();
    home.ok(&["variables", "set", "region", "eu-west-1"]);
    assert_eq!(
        home.ok(&["variables", "get", "region"]).stdout,
        "eu-west-1\n"
    );

    // No key yet: a secret is refused, saying how to make one.
    let refused = gale(
        &home,
        &["variables", "set", "api_secret", "--secret"],
        Some(&format!("{VAR_SECRET}\n")),
        &[],
    );
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.contains("no secret key is configured")
            && refused.stderr.contains("gale secrets new-key"),
        "{refused}"
    );
    assert!(
        !home
            .ok(&["variables", "list"])
            .stdout
            .contains("api_secret")
    );

    // The home's key file, as `gale secrets new-key` prints a key.
    let key = new_key(&home);
    write_private(&home.path().join("secret.key"), &format!("{key}\n"));
    let set = ok_in(
        &home,
        &[
            "variables",
            "set",
            "api_secret",
            "--secret",
            "--description",
            "the API's",
        ],
        &format!("{VAR_SECRET}\n"),
    );
    assert!(!set.stdout.contains(VAR_SECRET), "{set}");
    assert_eq!(home.ok(&["variables", "get", "api_secret"]).stdout, "***\n");
    let masked = home.json(&["variables", "get", "api_secret"]);
    assert_eq!(masked["value"], "***");
    assert_eq!(masked["secret"], true);
    assert_eq!(masked["description"], "the API's");
    assert!(audit(&home, "variable.reveal").is_empty());
    let revealed = home.ok(&["variables", "get", "api_secret", "--reveal"]);
    assert_eq!(
        revealed.stdout,
        format!("{VAR_SECRET}\n"),
        "one newline dropped"
    );
    let reveals = audit(&home, "variable.reveal");
    assert_eq!(reveals.len(), 1, "{reveals:#?}");
    assert_eq!(reveals[0]["target"], "variable/api_secret");
    assert_eq!(reveals[0]["outcome"], "success");

    // Set again without --secret: still secret; the description kept.
    ok_in(&home, &["variables", "set", "api_secret", "-"], "second\n");
    let again = home.json(&["variables", "get", "api_secret"]);
    assert_eq!(
        (again["secret"].clone(), again["value"].clone()),
        (json!(true), json!("***"))
    );
    assert_eq!(again["description"], "the API's");
    ok_in(
        &home,
        &["variables", "set", "api_secret", "--secret"],
        &format!("{VAR_SECRET}\n"),
    );

    // A name that looks secret is secret; JSON is checked.
    ok_in(
        &home,
        &["variables", "set", "db_password"],
        "pw-from-name\n",
    );
    assert_eq!(
        home.json(&["variables", "get", "db_password"])["secret"],
        true
    );
    home.ok(&["variables", "set", "cfg", "--json", r#"{"a": [1, 2]}"#]);
    let bad = home.gale(&["variables", "set", "cfg2", "--json", "{nope"]);
    assert_eq!(bad.code, 1, "{bad}");
    assert!(
        bad.stderr.contains("variable cfg2: the value is not JSON"),
        "{bad}"
    );
    let bad = home.gale(&["variables", "set", "bad name", "x"]);
    assert_eq!(bad.code, 1, "{bad}");
    assert!(bad.stderr.contains("invalid variable name"), "{bad}");

    let list = home.ok(&["variables", "list"]);
    assert!(
        list.stdout.contains("NAME") && list.stdout.contains("SECRET"),
        "{list}"
    );
    for line in ["region", "api_secret", "db_password", "cfg"] {
        assert!(list.stdout.contains(line), "{list}");
    }
    assert!(!list.stdout.contains(VAR_SECRET) && !list.stdout.contains("pw-from-name"));
    let listed = home.json(&["variables", "list"]);
    let cfg = listed
        .as_array()
        .expect("a list")
        .iter()
        .find(|v| v["name"] == "cfg")
        .expect("cfg listed");
    assert_eq!(cfg["json"], true);
    assert!(!listed.to_string().contains(VAR_SECRET));

    // Not a column of the table holds a secret in clear.
    let cells = raw_table(&home, "variables");
    assert!(cells.iter().any(|c| c.contains("eu-west-1")), "{cells:?}");
    for c in &cells {
        assert!(
            !c.contains(VAR_SECRET) && !c.contains("pw-from-name"),
            "{c}"
        );
    }
    // And the audit log holds none either.
    let log = home
        .ok(&["audit", "list", "--json", "--limit", "1000"])
        .stdout;
    assert!(
        log.contains("variable.set") && !log.contains(VAR_SECRET),
        "{log}"
    );

    // What a task would get: the environment first, then a secrets directory.
    let from_env = gale(
        &home,
        &["variables", "get", "region"],
        None,
        &[("GALE_VAR_REGION", "from-env")],
    );
    assert_eq!(from_env.code, 0, "{from_env}");
    assert_eq!(
        from_env.stdout, "***\n",
        "values from the environment are secret"
    );
    assert!(from_env.stderr.contains("the environment"), "{from_env}");
    let from_env = gale(
        &home,
        &["variables", "get", "region", "--reveal", "-o", "json"],
        None,
        &[("GALE_VAR_REGION", "from-env")],
    );
    assert_eq!(from_env.json()["value"], "from-env");
    let dir = tempfile::tempdir().expect("a secrets directory");
    std::fs::create_dir(dir.path().join("variables")).expect("variables/");
    std::fs::write(dir.path().join("variables").join("only_dir"), "dir-value\n").expect("a file");
    let dir_arg = dir.path().display().to_string();
    let from_dir = home.json(&[
        "--secrets-dir",
        &dir_arg,
        "variables",
        "get",
        "only_dir",
        "--reveal",
    ]);
    assert_eq!(from_dir["value"], "dir-value");
    assert!(
        from_dir["source"]
            .as_str()
            .is_some_and(|s| s.contains("secrets directory")),
        "{from_dir:#}"
    );

    // Unknown names: exit 4, saying where it looked.
    let missing = home.gale(&["variables", "get", "nope"]);
    assert_eq!(missing.code, 4, "{missing}");
    assert!(missing.stderr.contains("no variable nope") && missing.stderr.contains("the store"));
    assert_eq!(home.gale(&["variables", "get", "nope", "--reveal"]).code, 4);
    home.ok(&["variables", "delete", "region"]);
    assert_eq!(home.gale(&["variables", "get", "region"]).code, 4);
    let again = home.gale(&["variables", "delete", "region"]);
    assert_eq!(again.code, 4, "{again}");
    assert!(again.stderr.contains("no variable region"), "{again}");

    // Without the key, a secret cannot be read back (and says why).
    std::fs::remove_file(home.path().join("secret.key")).expect("removing the key");
    let locked = home.gale(&["variables", "get", "api_secret", "--reveal"]);
    assert_eq!(locked.code, 1, "{locked}");
    assert!(
        locked.stderr.contains("no secret key is configured"),
        "{locked}"
    );
    assert_eq!(home.ok(&["variables", "get", "api_secret"]).stdout, "***\n");
}

/// An Airflow 2.x `airflow connections export conns.json`: every field, null
/// when unset, `extra` as JSON text.
const AIRFLOW_JSON: &str = r#"{
  "warehouse": {
    "conn_type": "postgres",
    "description": "the warehouse",
    "login": "etl",
    "password": "wh-pass",
    "host": "wh.example.com",
    "port": 5432,
    "schema": "dw",
    "extra": "{\"sslmode\": \"require\", \"connect_timeout\": 10}"
  },
  "slack": {
    "conn_type": "http",
    "description": null,
    "login": null,
    "password": "xoxb-slack-token",
    "host": "https://hooks.slack.com",
    "port": null,
    "schema": null,
    "extra": null
  }
}
"#;

/// `airflow connections export conns.yaml`.
const AIRFLOW_YAML: &str = "\
s3_logs:
  conn_type: aws
  description: log bucket
  extra: '{\"region_name\": \"eu-west-1\", \"aws_secret_access_key\": \"aws-secret-1\"}'
  host: null
  login: AKIAEXAMPLE
  password: null
  port: null
  schema: null
";

/// `airflow connections export conns.env --file-format env`.
const AIRFLOW_ENV: &str = "\
redis_cache=redis://:redis-pass@cache.example.com:6379/0
mysql_app=mysql://app:my%23pass@mysql.example.com:3306/app?charset=utf8mb4
";

fn reveal(home: &Home, key: &str, name: &str) -> Value {
    home.json(&[
        "--secret-key-file",
        key,
        "connections",
        "get",
        name,
        "--reveal",
    ])
}

#[test]
fn connections_add_get_import_export() {
    let home = Home::new();
    let keys = tempfile::tempdir().expect("a key folder");
    let key_file = keys.path().join("gale.key");
    let made = home.ok(&[
        "secrets",
        "new-key",
        "--file",
        &key_file.display().to_string(),
    ]);
    assert!(made.stdout.contains("mode 0600"), "{made}");
    let mode = std::fs::metadata(&key_file)
        .expect("the key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = key_file.display().to_string();
    let k = key.as_str();

    // From a URI on standard input, and from fields with the password on stdin.
    let added = ok_in(
        &home,
        &[
            "--secret-key-file",
            k,
            "connections",
            "add",
            "pg",
            "--conn-uri",
            "-",
        ],
        "postgres://etl:pg-pass-%2F1@db.example.com:5432/analytics?sslmode=require\n",
    );
    assert!(!added.stderr.contains("warning"), "{added}");
    ok_in(
        &home,
        &[
            "--secret-key-file",
            k,
            "connections",
            "add",
            "api",
            "--conn-type",
            "http",
            "--conn-host",
            "api.example.com",
            "--port",
            "8443",
            "--login",
            "bot",
            "--password",
            "-",
            "--extra",
            r#"{"api_key": "k-secret-9", "timeout": "30"}"#,
            "--description",
            "the API",
        ],
        &format!("{API_PASSWORD}\n"),
    );
    let pg = reveal(&home, k, "pg");
    assert_eq!(pg["conn_type"], "postgres");
    assert_eq!(pg["password"], PG_PASSWORD);
    assert_eq!(pg["port"], 5432);
    assert_eq!(pg["schema"], "analytics");
    assert_eq!(pg["extra"], json!({"sslmode": "require"}));
    assert_eq!(pg["source"], "the store");

    let masked = home.json(&["--secret-key-file", k, "connections", "get", "api"]);
    assert_eq!(masked["password"], "***");
    assert_eq!(masked["extra"], json!({"api_key": "***", "timeout": "30"}));
    assert_eq!(
        (masked["host"].clone(), masked["login"].clone()),
        (json!("api.example.com"), json!("bot"))
    );
    let table = home.ok(&["--secret-key-file", k, "connections", "get", "api"]);
    assert!(table.stdout.contains("api.example.com"), "{table}");
    assert!(
        !table.stdout.contains(API_PASSWORD) && !table.stdout.contains(API_KEY),
        "{table}"
    );
    assert!(audit(&home, "connection.reveal").len() == 1);
    let api = reveal(&home, k, "api");
    assert_eq!(api["password"], API_PASSWORD);
    assert_eq!(api["extra"]["api_key"], API_KEY);
    assert_eq!(api["description"], "the API");
    let reveals = audit(&home, "connection.reveal");
    assert_eq!(reveals.len(), 2, "{reveals:#?}");
    assert_eq!(reveals[0]["target"], "connection/api");

    // Refusals name what is wrong.
    let exists = gale(
        &home,
        &[
            "--secret-key-file",
            k,
            "connections",
            "add",
            "pg",
            "--conn-type",
            "http",
        ],
        None,
        &[],
    );
    assert_eq!(exists.code, 1, "{exists}");
    assert!(exists.stderr.contains("connection pg exists"), "{exists}");
    let bad = home.gale(&["connections", "add", "x", "--uri", "nonsense-with-secret"]);
    assert_eq!(bad.code, 1, "{bad}");
    assert!(bad.stderr.contains("not a connection URI"), "{bad}");
    assert!(
        !bad.stderr.contains("nonsense-with-secret"),
        "the URI is never echoed: {bad}"
    );
    let bad = home.gale(&[
        "connections",
        "add",
        "x",
        "--conn-type",
        "http",
        "--extra",
        "[1]",
    ]);
    assert_eq!(bad.code, 1, "{bad}");
    assert!(
        bad.stderr.contains("--extra must be a JSON object"),
        "{bad}"
    );
    let nokey = gale(
        &home,
        &[
            "connections",
            "add",
            "x",
            "--conn-type",
            "http",
            "--password",
            "-",
        ],
        Some("pw\n"),
        &[],
    );
    assert_eq!(nokey.code, 1, "{nokey}");
    assert!(
        nokey.stderr.contains("no secret key is configured"),
        "{nokey}"
    );
    assert_eq!(home.gale(&["connections", "get", "nope"]).code, 4);
    assert_eq!(home.gale(&["connections", "delete", "nope"]).code, 4);

    // Airflow's three export formats.
    let files = tempfile::tempdir().expect("a folder for files");
    let file = |name: &str, text: &str| -> String {
        let path: PathBuf = files.path().join(name);
        std::fs::write(&path, text).expect("writing a file");
        path.display().to_string()
    };
    for (name, text, count) in [
        ("airflow.json", AIRFLOW_JSON, 2),
        ("airflow.yaml", AIRFLOW_YAML, 1),
        ("airflow.env", AIRFLOW_ENV, 2),
    ] {
        let f = file(name, text);
        let out = home.ok(&["--secret-key-file", k, "connections", "import", &f]);
        assert!(
            out.stdout
                .contains(&format!("imported {count} connections")),
            "{out}"
        );
    }
    let wh = reveal(&home, k, "warehouse");
    assert_eq!(wh["password"], "wh-pass");
    assert_eq!(
        wh["extra"],
        json!({"sslmode": "require", "connect_timeout": 10})
    );
    assert_eq!(wh["description"], "the warehouse");
    assert_eq!(reveal(&home, k, "slack")["host"], "https://hooks.slack.com");
    let s3 = reveal(&home, k, "s3_logs");
    assert_eq!(s3["login"], "AKIAEXAMPLE");
    assert_eq!(s3["extra"]["aws_secret_access_key"], "aws-secret-1");
    let s3 = home.json(&["--secret-key-file", k, "connections", "get", "s3_logs"]);
    assert_eq!(
        s3["extra"],
        json!({"region_name": "eu-west-1", "aws_secret_access_key": "***"})
    );
    let mysql = reveal(&home, k, "mysql_app");
    assert_eq!(
        (mysql["password"].clone(), mysql["port"].clone()),
        (json!("my#pass"), json!(3306))
    );
    assert_eq!(mysql["extra"], json!({"charset": "utf8mb4"}));
    assert_eq!(reveal(&home, k, "redis_cache")["password"], "redis-pass");
    // Already stored: kept, unless --overwrite.
    let again = home.ok(&[
        "--secret-key-file",
        k,
        "connections",
        "import",
        &file("airflow.json", AIRFLOW_JSON),
    ]);
    assert!(
        again.stdout.contains("imported 0") && again.stdout.contains("2 already stored"),
        "{again}"
    );

    // Nothing in the raw table in clear.
    let cells = raw_table(&home, "connections");
    assert!(
        cells.iter().any(|c| c.contains("db.example.com")),
        "{cells:?}"
    );
    for secret in [
        PG_PASSWORD,
        API_PASSWORD,
        API_KEY,
        "wh-pass",
        "xoxb-slack-token",
        "aws-secret-1",
        "redis-pass",
        "my#pass",
    ] {
        assert!(
            cells.iter().all(|c| !c.contains(secret)),
            "{secret} in {cells:?}"
        );
    }
    let listed = home.ok(&["connections", "list", "-o", "json"]).stdout;
    assert!(
        !listed.contains(PG_PASSWORD) && listed.contains("warehouse"),
        "{listed}"
    );

    // A bad entry: nothing imported, and the message names it.
    let bad = file(
        "bad.json",
        r#"{"fine": "http://h.example.com", "broken": {"host": "x"}, "worse": "not-a-uri"}"#,
    );
    let out = home.gale(&["--secret-key-file", k, "connections", "import", &bad]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("broken: `conn_type` is missing") && out.stderr.contains("worse:"),
        "{out}"
    );
    assert_eq!(
        home.gale(&["connections", "get", "fine"]).code,
        4,
        "nothing imported"
    );
    let bad = file("bad.env", "ok=http://h\nno equals sign here\n");
    let out = home.gale(&["--secret-key-file", k, "connections", "import", &bad]);
    assert!(
        out.code == 1 && out.stderr.contains("bad.env:2: expected NAME=URI"),
        "{out}"
    );

    // Export, delete everything, import: the same connections, in each format.
    let names: Vec<String> = home
        .json(&["connections", "list"])
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["name"].as_str().expect("a name").to_owned())
        .collect();
    assert_eq!(names.len(), 7, "{names:?}");
    let before: Vec<Value> = names.iter().map(|n| reveal(&home, k, n)).collect();
    for format in ["json", "yaml", "env"] {
        let path = files
            .path()
            .join(format!("export.{format}"))
            .display()
            .to_string();
        let out = home.ok(&["--secret-key-file", k, "connections", "export", &path]);
        assert!(out.stdout.contains("exported 7 connections"), "{out}");
        let mode = std::fs::metadata(&path)
            .expect("the export")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{path}");
        let text = std::fs::read_to_string(&path).expect("reading the export");
        assert!(
            text.contains(API_PASSWORD),
            "an export holds the secrets: {text}"
        );
        if format == "json" {
            let parsed: Value = serde_json::from_str(&text).expect("JSON");
            assert!(
                parsed["api"]["extra"].is_string(),
                "extra as JSON text, as Airflow writes it"
            );
            assert_eq!(parsed["pg"]["port"], 5432);
        }
        for n in &names {
            home.ok(&["connections", "delete", n]);
        }
        assert_eq!(home.json(&["connections", "list"]), json!([]));
        home.ok(&["--secret-key-file", k, "connections", "import", &path]);
        let after: Vec<Value> = names.iter().map(|n| reveal(&home, k, n)).collect();
        if format == "env" {
            // A URI has no description.
            let strip = |v: &[Value]| -> Vec<Value> {
                v.iter()
                    .map(|c| {
                        let mut c = c.clone();
                        c["description"] = Value::Null;
                        c
                    })
                    .collect()
            };
            assert_eq!(strip(&after), strip(&before));
        } else {
            assert_eq!(after, before, "{format}");
        }
    }
    let exports = audit(&home, "connection.reveal")
        .into_iter()
        .filter(|e| e["target"] == "connection/*")
        .count();
    assert_eq!(exports, 3);
    // To standard output too.
    let out = home.ok(&[
        "--secret-key-file",
        k,
        "connections",
        "export",
        "--format",
        "env",
    ]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("pg=postgres://etl:")),
        "{out}"
    );

    // A connection from the environment shadows the store's, and is masked.
    let env = gale(
        &home,
        &["connections", "get", "pg", "-o", "json"],
        None,
        &[("GALE_CONN_PG", "postgres://envuser:env-pass@envhost/envdb")],
    );
    assert_eq!(env.code, 0, "{env}");
    let env = env.json();
    assert_eq!(
        (env["host"].clone(), env["password"].clone()),
        (json!("envhost"), json!("***"))
    );
    assert!(
        env["source"]
            .as_str()
            .is_some_and(|s| s.contains("environment")),
        "{env:#}"
    );
}

#[test]
fn variables_import_export() {
    let home = Home::new();
    let files = tempfile::tempdir().expect("a folder for files");
    let file = |name: &str, text: &str| -> String {
        let path = files.path().join(name);
        std::fs::write(&path, text).expect("writing a file");
        path.display().to_string()
    };
    // Airflow's `variables export`: values, JSON ones as JSON.
    let airflow = file(
        "airflow.json",
        r#"{"bucket": "s3://logs", "limits": {"max": 3, "tags": ["a"]}, "api_token": "tok-123"}"#,
    );
    // Without a key the secret one (by its name) stops the whole import.
    let out = home.gale(&["variables", "import", &airflow]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("no secret key is configured") && out.stderr.contains("api_token"),
        "{out}"
    );
    assert_eq!(
        home.json(&["variables", "list"]),
        json!([]),
        "nothing imported"
    );

    write_private(
        &home.path().join("secret.key"),
        &format!("{}\n", new_key(&home)),
    );
    let out = home.ok(&["variables", "import", &airflow]);
    assert!(out.stdout.contains("imported 3 variables"), "{out}");
    let limits = home.json(&["variables", "get", "limits"]);
    assert_eq!(limits["json"], true);
    let parsed: Value =
        serde_json::from_str(limits["value"].as_str().expect("text")).expect("JSON");
    assert_eq!(parsed, json!({"max": 3, "tags": ["a"]}));
    assert_eq!(
        home.json(&["variables", "get", "api_token"])["value"],
        "***"
    );

    // Gale's format, in YAML, on standard input.
    let yaml = "region:\n  value: eu-west-1\n  description: where\nsigning_key:\n  value: sk-777\n  secret: true\n";
    let out = ok_in(&home, &["variables", "import", "-"], yaml);
    assert!(
        out.stdout
            .contains("imported 2 variables from standard input"),
        "{out}"
    );
    let region = home.json(&["variables", "get", "region"]);
    assert_eq!(
        (region["value"].clone(), region["description"].clone()),
        (json!("eu-west-1"), json!("where"))
    );
    assert_eq!(
        home.json(&["variables", "get", "signing_key"])["secret"],
        true
    );

    // A bad entry: nothing imported, and the message names it.
    let bad = file(
        "bad.json",
        r#"{"good": "x", "bad name": "y", "cfg": {"value": "{not json", "json": true}}"#,
    );
    let out = home.gale(&["variables", "import", &bad]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("2 of 3 entries are bad"), "{out}");
    assert!(
        out.stderr.contains("\"bad name\"")
            && out.stderr.contains("variable cfg: the value is not JSON"),
        "{out}"
    );
    assert_eq!(
        home.gale(&["variables", "get", "good"]).code,
        4,
        "nothing imported"
    );
    let out = home.gale(&["variables", "import", &file("list.yaml", "- a\n- b\n")]);
    assert!(
        out.code == 1 && out.stderr.contains("expected a mapping"),
        "{out}"
    );
    let out = home.gale(&["variables", "import", &file("broken.json", "{\"a\": ")]);
    assert!(
        out.code == 1 && out.stderr.contains("is not valid JSON"),
        "{out}"
    );
    let out = home.gale(&[
        "variables",
        "import",
        &file("exists.json", r#"{"region": "x"}"#),
        "--on-existing",
        "fail",
    ]);
    assert!(
        out.code == 1 && out.stderr.contains("variable region is already stored"),
        "{out}"
    );

    // Export, delete everything, import: the same variables.
    let path = files.path().join("export.json").display().to_string();
    home.ok(&["variables", "export", &path]);
    let mode = std::fs::metadata(&path)
        .expect("the export")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let first = std::fs::read_to_string(&path).expect("reading the export");
    let parsed: Value = serde_json::from_str(&first).expect("JSON");
    assert_eq!(
        parsed["signing_key"],
        json!({"value": "sk-777", "description": null, "secret": true})
    );
    assert_eq!(parsed["limits"]["value"], json!({"max": 3, "tags": ["a"]}));
    assert_eq!(parsed.as_object().map(|m| m.len()), Some(5));
    let exports: Vec<Value> = audit(&home, "variable.reveal")
        .into_iter()
        .filter(|e| e["target"] == "variable/*")
        .collect();
    assert_eq!(exports.len(), 1, "{exports:#?}");
    for name in ["bucket", "limits", "api_token", "region", "signing_key"] {
        home.ok(&["variables", "delete", name]);
    }
    assert_eq!(home.json(&["variables", "list"]), json!([]));
    home.ok(&["variables", "import", &path]);
    assert_eq!(
        home.ok(&["variables", "export"]).stdout,
        first,
        "the same export"
    );
    let yaml = files.path().join("export.yaml").display().to_string();
    home.ok(&["variables", "export", &yaml]);
    for name in ["bucket", "limits", "api_token", "region", "signing_key"] {
        home.ok(&["variables", "delete", name]);
    }
    home.ok(&["variables", "import", &yaml]);
    assert_eq!(
        home.ok(&["variables", "export"]).stdout,
        first,
        "the same after YAML"
    );
}

#[test]
fn rotate_key() {
    let home = Home::new();
    let key_file = home.path().join("secret.key");
    home.ok(&[
        "secrets",
        "new-key",
        "--file",
        &key_file.display().to_string(),
    ]);
    let old = std::fs::read_to_string(&key_file)
        .expect("the key file")
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .expect("a key line")
        .to_owned();
    let none = home.ok(&["secrets", "status"]);
    assert!(none.stdout.contains("keys from the key file"), "{none}");

    ok_in(
        &home,
        &["variables", "set", "token", "--secret"],
        &format!("{VAR_SECRET}\n"),
    );
    home.ok(&["variables", "set", "plain", "visible"]);
    ok_in(
        &home,
        &["connections", "add", "pg", "--uri", "-"],
        "postgres://u:pg-pass-%2F1@h/db\n",
    );
    let keys = key_counts(&home);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let old_id = keys[0].0.clone();
    assert_eq!(keys[0].1, 2, "the secret variable and the connection");

    // The new key first, the old one below.
    let new = new_key(&home);
    std::fs::write(&key_file, format!("{new}\n{old}\n")).expect("rewriting the key file");
    let keys = key_counts(&home);
    let new_id = keys[0].0.clone();
    assert_ne!(new_id, old_id);
    assert_eq!(keys, vec![(new_id.clone(), 0), (old_id.clone(), 2)]);

    // Dropping the old key before rotating: status fails, values do not open.
    std::fs::write(&key_file, format!("{new}\n")).expect("rewriting the key file");
    let status = home.gale(&["secrets", "status"]);
    assert_eq!(status.code, 1, "{status}");
    assert!(
        status.stderr.contains(&old_id) && status.stderr.contains("2 values"),
        "{status}"
    );
    let (code, keys, missing) = key_status(&home);
    assert_eq!(code, 1);
    assert_eq!(keys, vec![(new_id.clone(), 0)]);
    assert_eq!(missing, vec![(old_id.clone(), 2)]);
    let sealed = home.gale(&["variables", "get", "token", "--reveal"]);
    assert_eq!(sealed.code, 1, "{sealed}");
    assert!(
        sealed.stderr.contains(&old_id) && sealed.stderr.contains("not among this process's keys"),
        "{sealed}"
    );

    std::fs::write(&key_file, format!("{new}\n{old}\n")).expect("rewriting the key file");
    let rotated = home.ok(&["secrets", "rotate-key"]);
    assert!(
        rotated
            .stdout
            .contains(&format!("re-sealed 2 values under key {new_id}")),
        "{rotated}"
    );
    let keys = key_counts(&home);
    assert_eq!(keys, vec![(new_id.clone(), 2), (old_id.clone(), 0)]);
    let entry = &audit(&home, "secrets.rotate")[0];
    assert_eq!(entry["detail"]["key_id"], json!(new_id));
    assert_eq!(entry["detail"]["resealed"], 2);

    // The old line removed: everything still reads.
    std::fs::write(&key_file, format!("{new}\n")).expect("rewriting the key file");
    assert_eq!(key_counts(&home), vec![(new_id.clone(), 2)]);
    assert_eq!(
        home.ok(&["variables", "get", "token", "--reveal"]).stdout,
        format!("{VAR_SECRET}\n")
    );
    assert_eq!(
        reveal(&home, &key_file.display().to_string(), "pg")["password"],
        PG_PASSWORD
    );
    // GALE_SECRET_KEY holds the same key as well as a file.
    let by_env = gale(
        &home,
        &["variables", "get", "token", "--reveal"],
        None,
        &[("GALE_SECRET_KEY", &new)],
    );
    assert_eq!(by_env.stdout, format!("{VAR_SECRET}\n"), "{by_env}");
    let wrong = gale(
        &home,
        &["variables", "get", "token", "--reveal"],
        None,
        &[("GALE_SECRET_KEY", &old)],
    );
    assert_eq!(wrong.code, 1, "{wrong}");

    let help = home.ok(&["secrets", "rotate-key", "--help"]).stdout;
    assert!(
        help.contains("first line of the key file") && help.contains("gale secrets status"),
        "{help}"
    );
}
