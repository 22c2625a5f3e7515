//! The PostgreSQL recipes trust no connection: the `pg_hba` lines of the
//! Patroni recipe and of the local cluster (read from their files), and the
//! Patroni recipe's post-bootstrap script run against a real server, which
//! must give Gale's role the password from its file and nothing else.
//! (`up.sh` itself, and the HA suite on the cluster it starts, check that
//! each PostgreSQL refuses a connection without a password or with a wrong
//! one.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use gale_pgtest::{Setup, server_with_or_skip};
use gale_store::postgres::PgStore;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file)
}

fn read(file: &str) -> String {
    std::fs::read_to_string(deploy(file)).unwrap_or_else(|e| panic!("reading {file}: {e}"))
}

/// The items of the YAML list under the line `key:` indented by `indent`.
fn list_under(text: &str, indent: usize, key: &str) -> Vec<String> {
    let head = format!("{}{key}:", " ".repeat(indent));
    let item = format!("{}- ", " ".repeat(indent + 2));
    let mut lines = text.lines().skip_while(|l| l.trim_end() != head);
    assert!(lines.next().is_some(), "no `{head}` line");
    lines
        .take_while(|l| l.starts_with(&item) || l.trim_start().starts_with('#'))
        .filter(|l| l.starts_with(&item))
        .map(|l| l[item.len()..].trim().to_owned())
        .collect()
}

/// No line trusts; every TCP line asks for scram-sha-256; a local line either
/// does too or lets in only the OS user `postgres` as itself (`peer`).
fn assert_no_trust(file: &str, hba: &[String]) {
    assert!(hba.len() >= 3, "{file}: too few pg_hba lines: {hba:?}");
    for line in hba {
        let words: Vec<&str> = line.split_whitespace().collect();
        let method = words.last().copied().unwrap_or_default();
        assert_ne!(method, "trust", "{file}: {line}");
        match words.first().copied() {
            Some("local") if method == "peer" => {
                assert_eq!(words[2], "postgres", "{file}: peer for whom? {line}");
            }
            Some("local" | "host" | "hostssl" | "$host") => {
                assert_eq!(method, "scram-sha-256", "{file}: {line}");
            }
            _ => panic!("{file}: unexpected pg_hba line {line}"),
        }
    }
}

#[test]
fn the_recipes_trust_no_connection() {
    for file in ["patroni/patroni.yml", "local-cluster/up.sh"] {
        let text = read(file);
        // postgresql.pg_hba replaces the whole file; bootstrap.pg_hba would
        // be appended after initdb's own lines, which match first.
        let hba = list_under(&text, 2, "pg_hba");
        assert_no_trust(file, &hba);
        assert!(
            !text.contains("\n  pg_hba:\n    - local all all trust"),
            "{file}: a trusting pg_hba"
        );
        let initdb = list_under(&text, 2, "initdb");
        assert!(
            initdb.iter().any(|o| o == "auth-host: scram-sha-256"),
            "{file}: initdb's own file must ask TCP connections for passwords: {initdb:?}"
        );
        assert!(
            initdb.iter().all(|o| !o.contains("trust")),
            "{file}: {initdb:?}"
        );
    }
}

#[tokio::test]
async fn the_post_bootstrap_script_gives_gale_its_password_only() {
    let setup = Setup {
        password: Some("superuser-pw".into()),
        tls: None,
        ..Setup::default()
    };
    for with_file in [true, false] {
        let Some(pg) = server_with_or_skip("post_bootstrap_script", &setup) else {
            return;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("gale-db-password");
        if with_file {
            std::fs::write(&file, "gale's pw: 'quoted' \\ and all").expect("password file");
        }
        let bin = gale_pgtest::bin_dir().expect("the PostgreSQL binaries");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("sh")
            .arg(deploy("patroni/gale-post-bootstrap.sh"))
            .arg(pg.url())
            .env("PATH", path)
            .env("GALE_DB_PASSWORD_FILE", &file)
            .env_remove("PGPASSWORD")
            .output()
            .expect("running gale-post-bootstrap.sh");
        assert!(
            out.status.success(),
            "gale-post-bootstrap.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let gale_url = |password: &str| {
            format!(
                "postgres://gale:{password}@127.0.0.1:{}/gale?sslmode=disable",
                pg.port()
            )
        };
        let open =
            |url: String| async move { PgStore::connect(&url, Duration::from_secs(10)).await };
        let refused = |what: &str, res: Result<PgStore, gale_store::Error>| match res {
            Ok(_) => panic!("{what} must be refused"),
            Err(e) => {
                assert!(!e.is_retryable(), "{what}: {e:?}");
                e.to_string()
            }
        };
        let text = refused("a wrong password", open(gale_url("wrong")).await);
        assert!(
            text.contains("password authentication failed for user \"gale\""),
            "{text}"
        );
        let text = refused(
            "no password",
            open(format!("postgres://gale@127.0.0.1:{}/gale", pg.port())).await,
        );
        assert!(text.contains("asks for a password"), "{text}");
        let right = gale_url("gale%27s%20pw%3A%20%27quoted%27%20%5C%20and%20all");
        match with_file {
            true => {
                open(right).await.expect("gale with its password");
            }
            // No file, no password: gale cannot log in until one is set.
            false => {
                refused("a role without a password", open(right).await);
            }
        }
    }
}
