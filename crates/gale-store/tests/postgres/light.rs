//! Light calls on the notification connection: one that waits on a row lock
//! or is given up by its caller must not hold that connection (every light
//! call and the liveness probe queue behind it), and a lock timeout there is
//! not a lost connection.

use std::time::Duration;

use gale_store::WorkerId;
use gale_store::postgres::{PgOptions, PgStore};
use gale_store::prelude::*;
use jiff::Timestamp;

use super::{
    create_flat_run, pool_closes, queue_task, register_worker, seed_flat_dag, start_listening,
};

/// Whether the workers were woken within `secs`: the listener wakes them
/// after every (re)connect.
async fn woken_within(notifier: &gale_store::Notifier, secs: u64) -> bool {
    tokio::time::timeout(Duration::from_secs(secs), notifier.workers.notified())
        .await
        .is_ok()
}

#[tokio::test]
async fn a_renewal_held_by_a_row_lock_gives_up_without_losing_the_connection() {
    let Some(url) = gale_pgtest::shared_database("light_calls_and_row_locks") else {
        return;
    };
    let opts = PgOptions {
        idle_close: Duration::from_millis(300),
        ..PgOptions::default()
    };
    let store = PgStore::connect_with(&url, Duration::from_secs(10), opts)
        .await
        .expect("connect");
    let dag = seed_flat_dag(&store, "locked", 1).await;
    register_worker(&store, "locked-worker", store.now().await.expect("now")).await;
    let (_, tis) = create_flat_run(&store, &dag, 0).await;
    queue_task(&store, tis[0]).await;
    let worker = WorkerId("locked-worker".into());
    let claims = store
        .claim(&worker, "h", &["default".to_owned()], 1)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1, "the queued task is claimed");
    let held = [(tis[0], claims[0].task.try_number)];

    let (notifier, stop, listening) = start_listening(&store).await;
    let pool_closes = || pool_closes(&store);
    pool_closes().await;
    let renewed = store
        .heartbeat_attempts(&worker, &held)
        .await
        .expect("a renewal");
    assert_eq!(
        renewed,
        vec![tis[0]],
        "renewed on the notification connection"
    );
    assert_eq!(store.pool_open(), 0, "a renewal is a light call");

    // Another session holds the attempt's row (an operator marking its run).
    let (locker, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect the locking session");
    tokio::spawn(connection);
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM task_instances WHERE id = {} FOR UPDATE",
            tis[0].0
        ))
        .await
        .expect("lock the row");

    // The renewal gives up at the session's lock timeout with a retryable
    // error, and the connection stays lent: the next light call runs there.
    let err = store
        .heartbeat_attempts(&worker, &held)
        .await
        .expect_err("the row is locked");
    assert!(err.is_retryable(), "a lock timeout is retried: {err}");
    assert!(err.to_string().contains("55P03"), "a lock timeout: {err}");
    store
        .heartbeat_node("locked-worker", Timestamp::now())
        .await
        .expect("heartbeat_node");
    assert_eq!(
        store.pool_open(),
        0,
        "a lock timeout does not take the notification connection out of use"
    );
    // Nor does the probe, which waited behind the renewal, call it an
    // outage: no reconnect (each is followed by a wake-up) in its window.
    assert!(
        !woken_within(&notifier, 4).await,
        "the listener connected again after a lock timeout"
    );
    // Three renewals queued behind each other on that connection wait 3 s
    // in all, longer than the probe's window, and the probe queued behind
    // them times out. The server answered each (a lock timeout is an
    // answer), so that is no outage either: each ends with its own 55P03.
    let (a, b, c) = tokio::join!(
        store.heartbeat_attempts(&worker, &held),
        store.heartbeat_attempts(&worker, &held),
        store.heartbeat_attempts(&worker, &held),
    );
    for out in [a, b, c] {
        let err = out.expect_err("the row is still locked");
        assert!(
            err.to_string().contains("55P03"),
            "each queued renewal ends with its own lock timeout, not an outage: {err}"
        );
    }
    assert!(
        !woken_within(&notifier, 1).await,
        "the listener connected again after lock timeouts queued past the probe's window"
    );
    assert_eq!(
        store.pool_open(),
        0,
        "still lent after queued lock timeouts"
    );

    // A renewal its caller gives up on while it waits is still in flight on
    // that connection: it is taken out of use at once (the next light call
    // goes to the pool) and the listener connects again.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(200),
        store.heartbeat_attempts(&worker, &held),
    )
    .await;
    assert!(abandoned.is_err(), "the renewal was still waiting");
    store
        .heartbeat_node("locked-worker", Timestamp::now())
        .await
        .expect("heartbeat_node after an abandoned call");
    assert_eq!(
        store.pool_open(),
        1,
        "the call after an abandoned one runs on the pool, not behind it"
    );
    tokio::time::timeout(Duration::from_secs(10), notifier.workers.notified())
        .await
        .expect("the listener connects again");

    locker.batch_execute("COMMIT").await.expect("unlock");
    pool_closes().await;
    let renewed = store
        .heartbeat_attempts(&worker, &held)
        .await
        .expect("a renewal once the row is free");
    assert_eq!(renewed, vec![tis[0]]);
    assert_eq!(store.pool_open(), 0, "lent again after reconnecting");
    stop.cancel();
    listening.await.expect("the listener stops");
}
