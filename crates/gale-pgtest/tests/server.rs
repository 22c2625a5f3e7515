//! These tests need PostgreSQL binaries: without them they print SKIPPED and
//! pass, except under `CI=true`, where they fail.

use std::thread::sleep;
use std::time::{Duration, Instant};

use gale_pgtest::{
    PgServer, Setup, server_or_skip, server_with_or_skip, shared_database, shared_server,
};

/// Polls `check` for up to 10 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn starts_creates_database_and_queries() {
    let Some(pg) = server_or_skip("starts_creates_database_and_queries") else {
        return;
    };
    let url = pg.create_database("app").unwrap();
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/app", pg.port())
    );
    assert_eq!(pg.psql("app", "select 1").unwrap(), "1");
    assert_eq!(pg.url(), pg.url_for("postgres"));

    let err = pg.psql("app", "select * from missing").unwrap_err();
    assert!(err.contains("psql") && err.contains("missing"), "{err}");
}

#[test]
fn committed_data_survives_a_crash_and_restart() {
    let Some(pg) = server_or_skip("committed_data_survives_a_crash_and_restart") else {
        return;
    };
    pg.psql(
        "postgres",
        "create table t (v int); insert into t values (42)",
    )
    .unwrap();
    pg.stop_immediate().unwrap();
    assert!(pg.psql("postgres", "select 1").is_err());
    pg.restart().unwrap();
    assert_eq!(pg.psql("postgres", "select v from t").unwrap(), "42");
    pg.stop_fast().unwrap();
    pg.restart().unwrap();
    assert!(
        pg.log_tail(50)
            .contains("database system is ready to accept connections")
    );
}

#[test]
fn standby_streams_and_is_promoted() {
    let Some(primary) = server_or_skip("standby_streams_and_is_promoted") else {
        return;
    };
    let standby = PgServer::start_standby(&primary).unwrap();
    assert_ne!(standby.port(), primary.port());
    assert_eq!(
        standby
            .psql("postgres", "select pg_is_in_recovery()")
            .unwrap(),
        "t"
    );

    primary
        .psql(
            "postgres",
            "create table t (v text); insert into t values ('from primary')",
        )
        .unwrap();
    eventually("the row on the standby", || {
        standby
            .psql("postgres", "select v from t")
            .is_ok_and(|v| v == "from primary")
    });
    assert!(
        standby
            .psql("postgres", "insert into t values ('x')")
            .is_err()
    );

    primary.stop_immediate().unwrap();
    standby.promote().unwrap();
    assert_eq!(
        standby
            .psql("postgres", "select pg_is_in_recovery()")
            .unwrap(),
        "f"
    );
    standby
        .psql("postgres", "insert into t values ('after promotion')")
        .unwrap();
    assert_eq!(
        standby.psql("postgres", "select count(*) from t").unwrap(),
        "2"
    );
}

#[test]
fn shared_databases_are_fresh() {
    let Some(a) = shared_database("shared databases/are fresh") else {
        return;
    };
    let Some(b) = shared_database("shared databases/are fresh") else {
        return;
    };
    assert_ne!(a, b);
    let pg = shared_server("shared_databases_are_fresh").unwrap();
    for url in [a, b] {
        let db = url.rsplit('/').next().unwrap();
        assert!(db.starts_with("shared_databases_are_fresh_"), "{db}");
        assert_eq!(pg.psql(db, "select current_database()").unwrap(), db);
    }
}

/// With a password, the URL carries it, psql gives it, and a standby
/// streams with it (pg_basebackup -R wrote it into primary_conninfo).
#[test]
fn a_server_with_a_password_streams_to_its_standby() {
    let setup = Setup {
        password: Some("pw-for-test".into()),
        ..Setup::default()
    };
    let Some(primary) = server_with_or_skip("a_server_with_a_password", &setup) else {
        return;
    };
    assert_eq!(
        primary.url(),
        format!(
            "postgres://postgres:pw-for-test@127.0.0.1:{}/postgres",
            primary.port()
        )
    );
    assert_eq!(primary.password(), Some("pw-for-test"));
    assert_eq!(
        primary
            .psql(
                "postgres",
                "select count(*) from pg_hba_file_rules where auth_method = 'scram-sha-256'"
            )
            .unwrap(),
        "2"
    );
    let standby = PgServer::start_standby(&primary).unwrap();
    primary
        .psql(
            "postgres",
            "create table t (v int); insert into t values (7)",
        )
        .unwrap();
    eventually("the row on the standby", || {
        standby
            .psql("postgres", "select v from t")
            .is_ok_and(|v| v == "7")
    });
}
