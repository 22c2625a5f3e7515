//! The store conformance suite against a real PostgreSQL (started by the test
//! process from the machine's binaries), plus PostgreSQL-only behaviour:
//! concurrent schedulers and workers racing on one database.

use std::time::Duration;

use gale_store::postgres::PgStore;
use gale_store::{Store, conformance};

/// A fresh, migrated store on its own database; `None` (a loud skip) when
/// PostgreSQL cannot be started outside CI.
async fn fresh(test: &str) -> Option<PgStore> {
    let url = gale_pgtest::shared_database(test)?;
    Some(
        PgStore::connect(&url, Duration::from_secs(10))
            .await
            .expect("connect to the test database"),
    )
}

/// One `#[tokio::test]` per conformance check, each on a fresh database.
macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let Some(store) = fresh(stringify!($check)).await else { return };
                conformance::$check(&store).await;
            }
        )*
    };
}

conformance_tests!(
    upsert_dag_versions,
    duplicate_dag_id_is_refused,
    sync_files_marks_absent_files,
    renamed_dag_id_retires_the_old_one,
    import_errors_round_trip,
    set_paused,
    create_run_one_per_slot,
    create_run_moves_cursor,
    create_run_task_instances,
    promote_runs_respects_max_active_runs,
    promote_runs_skips_paused_dags,
    apply_transitions_is_conditional,
    enqueue_respects_max_active_tasks,
    enqueue_respects_pools,
    slot_ledger,
    claim_priority_queues_and_limit,
    claim_is_exclusive,
    finish_attempt_is_fenced,
    retry_claims_next_try,
    heartbeat_returns_only_held_attempts,
    expired_attempts_and_reap,
    reap_refund_try,
    reaper_respects_the_workers_lease,
    logs_paging,
    run_state_counts_follow_transitions,
    nodes_round_trip,
);

#[tokio::test]
async fn migrating_twice_is_a_no_op_and_reports_the_version() {
    let Some(store) = fresh("migrating_twice").await else {
        return;
    };
    assert_eq!(
        store.schema_version().await.expect("schema_version"),
        gale_store::postgres::SCHEMA_VERSION
    );
    // A second process opening the same database: nothing to do, same version.
    let url = gale_pgtest::shared_database("migrating_twice_b").expect("server already up");
    let a = PgStore::connect(&url, Duration::from_secs(10));
    let b = PgStore::connect(&url, Duration::from_secs(10));
    let (a, b) = tokio::join!(a, b);
    let (a, b) = (a.expect("first"), b.expect("second, concurrently"));
    assert_eq!(
        a.schema_version().await.expect("version"),
        b.schema_version().await.expect("version")
    );
    assert!(!a.endpoint().contains("password"));
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_retryable_error() {
    let started = std::time::Instant::now();
    // Nothing listens on port 1.
    let err = match PgStore::connect(
        "postgres://gale@127.0.0.1:1/gale",
        Duration::from_millis(300),
    )
    .await
    {
        Ok(_) => panic!("connecting to a closed port must fail"),
        Err(e) => e,
    };
    assert!(err.is_retryable(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("127.0.0.1:1"),
        "the error names the endpoint: {text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up within its wait"
    );
}
