//! A hundred workers on one PostgreSQL, set up as docs/ha.md ("Many workers")
//! says: each worker's pool bounded (`GALE_DATABASE_POOL=1`) and the server's
//! `max_connections` sized by its formula. Idle, each worker holds one
//! connection; a wide run is spread over them and succeeds.

use std::collections::BTreeSet;

use gale_pgtest::Setup;

use crate::harness::*;
use crate::pg::*;

const WORKERS: usize = 100;
const TASKS: usize = 300;

#[test]
fn a_hundred_workers_hold_a_connection_each_and_run_a_wide_dag() {
    let test = "a_hundred_workers_hold_a_connection_each_and_run_a_wide_dag";
    // The formula: workers × (1 + pool) + the scheduler's 1 + 8, and room
    // for the CLI commands of the test.
    let setup = Setup {
        max_connections: Some(u32::try_from(WORKERS * 2 + 9 + 30).expect("small")),
        ..Setup::default()
    };
    let Some(server) = gale_pgtest::server_with_or_skip(test, &setup) else {
        return;
    };
    let url = server
        .create_database("gale")
        .expect("creating the database");
    let home = Home::new();
    let mut dag = String::from("id: wide\ntasks:\n");
    for i in 0..TASKS {
        dag.push_str(&format!("  t{i}:\n    run: sleep 0.2\n"));
    }
    home.write_dag("wide.yaml", &dag);
    let dags = home.dags().display().to_string();
    let pg = Pg::new(&home, &url);
    let _scheduler = pg.start_registered("scheduler", &["scheduler", "--dags-folder", &dags]);
    let workers_pg = Pg::new(&home, &format!("{url}?application_name=gale-worker"));
    let _workers: Vec<_> = (0..WORKERS)
        .map(|i| {
            workers_pg.start_with_env(
                &format!("worker-{i}"),
                &["worker", "--concurrency", "2"],
                &[("GALE_DATABASE_POOL", "1"), ("GALE_LOG", "warn")],
            )
        })
        .collect();
    wait_until("every worker to register", || {
        let n = pg
            .nodes()
            .iter()
            .filter(|n| n["roles"] == serde_json::json!(["worker"]) && n["health"] == "running")
            .count();
        (n == WORKERS).then_some(())
    });
    let worker_connections = || {
        sql(
            &server,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gale-worker'",
        )
        .trim()
        .parse::<usize>()
        .expect("a count")
    };
    // Started, they go idle: their pools close, the notification connection stays.
    let idle = wait_until("the idle workers to hold one connection each", || {
        let n = worker_connections();
        (n <= WORKERS + WORKERS / 10).then_some(n)
    });
    assert!(idle >= WORKERS, "every worker listens: {idle} connections");

    pg.wait_dag("wide");
    let run = pg.trigger("wide", &[]);
    let done = wait_until("the wide run to finish", || {
        let v = pg.json(&["runs", "show", &run.to_string()])["run"].clone();
        (v["state"] != "running" && v["state"] != "queued").then_some(v)
    });
    assert_eq!(done["state"], "success", "{done:#}");
    let ran_on: BTreeSet<String> = sql(
        &server,
        &format!("SELECT DISTINCT worker_id FROM attempts WHERE run_id = {run}"),
    )
    .lines()
    .map(str::trim)
    .filter(|l| !l.is_empty())
    .map(str::to_owned)
    .collect();
    assert!(
        ran_on.len() >= WORKERS / 2,
        "{TASKS} tasks of 0.2 s ran on only {} of {WORKERS} workers",
        ran_on.len()
    );
    let failed = sql(
        &server,
        &format!("SELECT count(*) FROM attempts WHERE run_id = {run} AND state <> 'success'"),
    );
    assert_eq!(failed.trim(), "0", "every attempt succeeded the first time");
    // And idle again afterwards.
    wait_until("the workers to go back to one connection each", || {
        (worker_connections() <= WORKERS + WORKERS / 10).then_some(())
    });
}
