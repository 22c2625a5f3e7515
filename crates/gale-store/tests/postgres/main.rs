//! The store conformance suite against a real PostgreSQL (started by the test
//! process from the machine's binaries), plus PostgreSQL-only behaviour:
//! concurrent schedulers and workers racing on one database.

mod light;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use gale_model::dag::{content_hash, parse};
use gale_model::{Dag, RunId, TaskState};
use gale_store::postgres::{PgOptions, PgStore};
use gale_store::prelude::*;
use gale_store::{NewRun, NewTask, Notifier, RunMark, RunType, TiId, Transition, conformance};
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

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

gale_store::for_each_check!(conformance_tests);

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

/// Each applied migration is recorded, one that is missing is applied at the next start, and one this
/// gale does not have is refused.
#[tokio::test]
async fn migrations_are_recorded_one_by_one() {
    let Some(url) = gale_pgtest::shared_database("migration_gaps") else {
        return;
    };
    let store = PgStore::connect(&url, Duration::from_secs(10))
        .await
        .expect("connect");
    drop(store);
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("a plain connection");
    tokio::spawn(conn);
    let read = |rows: Vec<tokio_postgres::Row>| {
        rows.iter().map(|r| r.get::<_, i64>(0)).collect::<Vec<_>>()
    };
    let q = "SELECT version FROM gale_schema ORDER BY version";
    assert_eq!(
        read(client.query(q, &[]).await.expect("versions")),
        (1..=gale_store::postgres::SCHEMA_VERSION).collect::<Vec<_>>()
    );
    client
        .batch_execute("DROP TABLE audit_log; DELETE FROM gale_schema WHERE version = 8;")
        .await
        .expect("undo migration 8");
    let store = PgStore::connect(&url, Duration::from_secs(10))
        .await
        .expect("reconnect applies the missing migration");
    assert!(
        store
            .list_audit(&gale_store::AuditFilter::default())
            .await
            .expect("the audit table is back")
            .is_empty()
    );
    drop(store);
    assert_eq!(
        read(client.query(q, &[]).await.expect("versions")),
        (1..=gale_store::postgres::SCHEMA_VERSION).collect::<Vec<_>>()
    );
    let newer = gale_store::postgres::SCHEMA_VERSION + 1;
    client
        .batch_execute(&format!(
            "INSERT INTO gale_schema (version) VALUES ({newer})"
        ))
        .await
        .expect("record a version from a newer gale");
    let err = match PgStore::connect(&url, Duration::from_secs(10)).await {
        Ok(_) => panic!("an unknown migration must be refused"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(
        text.contains(&format!("version {newer}")) && text.contains("newer"),
        "{err}"
    );
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

/// A DAG of `n` independent `true` tasks, stored; returns it with its hash.
async fn seed_flat_dag(store: &PgStore, id: &str, n: usize) -> (Dag, String) {
    let mut source = format!("id: {id}\ntasks:\n");
    for i in 0..n {
        source.push_str(&format!("  t{i}:\n    run: 'true'\n"));
    }
    let file = format!("dags/{id}.yaml");
    let dag = parse(&file, id, &source).expect("fixture parses");
    let hash = content_hash(&source);
    store
        .upsert_dag(&dag, &file, &source, &hash, "host:/dags")
        .await
        .expect("upsert_dag");
    (dag, hash)
}

/// Starts `store`'s listener and waits for the wake-up that follows its
/// connecting; returns the notifier, the stop token and the listener's task.
async fn start_listening(
    store: &PgStore,
) -> (
    Arc<Notifier>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let notifier = Arc::new(Notifier::default());
    let stop = CancellationToken::new();
    let listening = tokio::spawn({
        let (store, notifier, stop) = (store.clone(), notifier.clone(), stop.clone());
        async move { store.listen(notifier, stop).await }
    });
    tokio::time::timeout(Duration::from_secs(10), notifier.workers.notified())
        .await
        .expect("the wake-up that follows connecting");
    (notifier, stop, listening)
}

/// Waits (up to 10 s) for `store`'s pool to close its idle connections.
async fn pool_closes(store: &PgStore) {
    for _ in 0..100 {
        if store.pool_open() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the pool kept {} idle connections open", store.pool_open());
}

/// Queues task instance `ti` (none to queued), as a scheduler would.
async fn queue_task(store: &PgStore, ti: TiId) {
    store
        .apply_transitions(&[Transition {
            ti,
            from: TaskState::None,
            to: TaskState::Queued,
            retry_at: None,
        }])
        .await
        .expect("apply_transitions");
}

/// Records a running worker node `id` (lease 10 s, queue `default`).
async fn register_worker(store: &PgStore, id: &str, now: Timestamp) {
    store
        .register_node(&gale_store::NodeRow {
            node_id: id.into(),
            host: "h".into(),
            pid: 1,
            roles: vec!["worker".into()],
            version: "0".into(),
            state: gale_store::NodeState::Running,
            started_at: now,
            heartbeat_at: now,
            clock_skew_us: 0,
            running_attempts: 0,
            attempt_lease_ms: 10_000,
            queues: vec!["default".into()],
        })
        .await
        .expect("register_node");
}

/// A manual run of `dag` on day `day`; returns it with its task instances.
async fn create_flat_run(
    store: &PgStore,
    (dag, hash): &(Dag, String),
    day: u32,
) -> (RunId, Vec<TiId>) {
    let at = Timestamp::from_second(1_767_225_600 + i64::from(day) * 86_400).unwrap();
    let run = store
        .create_run(&NewRun {
            dag_id: dag.id.clone(),
            run_key: format!("manual__{day}"),
            run_type: RunType::Manual,
            version_hash: hash.clone(),
            logical_date: at,
            interval_start: at,
            interval_end: at,
            conf: serde_json::Map::new(),
            tasks: NewTask::for_dag(dag),
        })
        .await
        .expect("create_run")
        .expect("a run");
    let tis = store
        .run_tasks(run)
        .await
        .expect("run_tasks")
        .iter()
        .map(|t| t.id)
        .collect();
    (run, tis)
}

/// Workers in other processes learn of queued work from `NOTIFY gale_queued`,
/// whichever write queued it: a scheduler's enqueue under limits, or a ready
/// task's transition straight to queued.
#[tokio::test]
async fn queuing_wakes_the_workers_of_other_processes() {
    let Some(url) = gale_pgtest::shared_database("queuing_wakes_workers") else {
        return;
    };
    let connect = || PgStore::connect(&url, Duration::from_secs(10));
    let (listener, writer) = (
        connect().await.expect("connect"),
        connect().await.expect("connect"),
    );
    let dag = seed_flat_dag(&writer, "wake", 2).await;
    let (_, tis) = create_flat_run(&writer, &dag, 0).await;
    let notifier = Arc::new(Notifier::default());
    let stop = CancellationToken::new();
    let listening = tokio::spawn({
        let (notifier, stop) = (notifier.clone(), stop.clone());
        async move { listener.listen(notifier, stop).await }
    });
    let woken = || tokio::time::timeout(Duration::from_secs(10), notifier.workers.notified());
    woken().await.expect("the wake-up that follows connecting");
    let to = |ti, from, to| Transition {
        ti,
        from,
        to,
        retry_at: None,
    };

    let n = writer
        .apply_transitions(&[to(tis[0], TaskState::None, TaskState::Queued)])
        .await
        .expect("apply_transitions");
    assert_eq!(n, 1);
    woken()
        .await
        .expect("a transition to queued must wake other processes' workers");

    writer
        .apply_transitions(&[to(tis[1], TaskState::None, TaskState::Scheduled)])
        .await
        .expect("apply_transitions");
    assert_eq!(
        writer
            .enqueue(&dag.0.id, &tis[1..], Some(5))
            .await
            .expect("enqueue"),
        1
    );
    woken()
        .await
        .expect("an enqueue must wake other processes' workers");
    stop.cancel();
    listening.await.expect("the listener ends when stopped");
}

/// A run cancelled while a worker claims its tasks: every attempt a claim opened
/// is ended with the run, none is left `running` under a failed task (a claim
/// committing between `mark_run`'s attempt and task updates used to be).
#[tokio::test]
async fn cancel_racing_claims_leaves_no_attempt_running() {
    let Some(store) = fresh("cancel_racing_claims").await else {
        return;
    };
    let dag = seed_flat_dag(&store, "race", 40).await;
    let mut stuck = Vec::new();
    for round in 0..12u32 {
        let (run, tis) = create_flat_run(&store, &dag, round).await;
        let scheduled: Vec<Transition> = tis
            .iter()
            .map(|&ti| Transition {
                ti,
                from: TaskState::None,
                to: TaskState::Scheduled,
                retry_at: None,
            })
            .collect();
        store
            .apply_transitions(&scheduled)
            .await
            .expect("apply_transitions");
        store.enqueue(&dag.0.id, &tis, None).await.expect("enqueue");
        let default = vec!["default".to_owned()];
        let claims = async {
            loop {
                match store.claim(&"w".into(), "h", &default, 1).await {
                    Ok(c) if c.is_empty() => break,
                    Ok(_) => {}
                    Err(e) => assert!(e.is_retryable(), "{e}"),
                }
            }
        };
        let cancel = async {
            tokio::time::sleep(Duration::from_micros(200 * u64::from(round % 10))).await;
            loop {
                match store.mark_run(run, RunMark::Cancel, "op").await {
                    Ok(done) => break done,
                    Err(e) => assert!(e.is_retryable(), "{e}"),
                }
            }
        };
        let ((), cancelled) = tokio::join!(claims, cancel);
        assert!(cancelled);
        for ti in &tis {
            for a in store.attempts(*ti).await.expect("attempts") {
                if a.state == "running" {
                    stuck.push((round, *ti));
                }
            }
        }
    }
    assert!(
        stuck.is_empty(),
        "attempts left running under a cancelled run: {stuck:?}"
    );
}

/// A multi-host URL whose first host accepts TCP and never answers (a frozen
/// server: its kernel completes the handshake, nothing reads): connections go
/// to the next host, which is the primary, instead of waiting on the first.
#[tokio::test]
async fn a_frozen_host_before_the_primary_does_not_hold_up_connecting() {
    let Some(url) = gale_pgtest::shared_database("frozen_first_host") else {
        return;
    };
    // postgres://USER@HOST:PORT/DB
    let rest = url.strip_prefix("postgres://").expect("a postgres:// URL");
    let (user, rest) = rest.split_once('@').expect("a user");
    let (addr, db) = rest.split_once('/').expect("a database");
    let (host, port) = addr.rsplit_once(':').expect("a port");
    let frozen = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let frozen_port = frozen.local_addr().expect("addr").port();
    let multi = format!(
        "host=127.0.0.1,{host} port={frozen_port},{port} user={user} dbname={db} connect_timeout=1"
    );
    let store = tokio::time::timeout(
        Duration::from_secs(60),
        PgStore::connect(&multi, Duration::from_secs(30)),
    )
    .await
    .expect("connecting must not wait on the frozen host for ever")
    .expect("the primary behind the frozen host is found");
    // Many connections at once: each new one finds the primary again.
    let store = Arc::new(store);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.now().await })
        })
        .collect();
    for call in calls {
        call.await
            .expect("join")
            .expect("a call through the multi-host URL");
    }
    drop(frozen);
}

/// An idle process holds one connection: its pool closes the connections it
/// left idle, and the light calls an idle process makes (its node heartbeat,
/// a worker's claim, the alert deliverer's look, the cluster watch's reads)
/// run on the notification connection meanwhile. Real work opens the pool
/// again, and it closes again once idle.
#[tokio::test]
async fn an_idle_process_keeps_one_connection() {
    let Some(url) = gale_pgtest::shared_database("idle_keeps_one_connection") else {
        return;
    };
    let opts = PgOptions {
        idle_close: Duration::from_millis(300),
        ..PgOptions::default()
    };
    let store = PgStore::connect_with(
        &format!("{url}?application_name=gale-idle"),
        Duration::from_secs(10),
        opts,
    )
    .await
    .expect("connect");
    let observer = PgStore::connect(&url, Duration::from_secs(10))
        .await
        .expect("connect the observer");
    // The server's count, once a closed connection's backend has gone.
    let open_on_server = || async {
        let mut n = 0;
        for _ in 0..50 {
            n = observer
                .count_connections("gale-idle")
                .await
                .expect("count the connections");
            if n == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        n
    };
    let dag = seed_flat_dag(&store, "idle", 1).await;
    let now = store.now().await.expect("now");
    register_worker(&store, "idle-worker", now).await;

    let (_notifier, stop, listening) = start_listening(&store).await;
    let pool_closes = || pool_closes(&store);
    pool_closes().await;
    assert_eq!(
        open_on_server().await,
        1,
        "the notification connection alone"
    );

    let worker = gale_store::WorkerId("idle-worker".into());
    let queues = vec!["default".to_owned()];
    for _ in 0..5 {
        store
            .heartbeat_node("idle-worker", Timestamp::now())
            .await
            .expect("heartbeat_node");
        let claims = store.claim(&worker, "h", &queues, 4).await.expect("claim");
        assert!(claims.is_empty(), "nothing is queued");
        store.list_channels().await.expect("list_channels");
        store.primary_identity().await.expect("primary_identity");
        let due = store
            .claim_deliveries(
                "idle-worker",
                10,
                Duration::from_secs(60),
                Duration::from_secs(60),
            )
            .await
            .expect("claim_deliveries");
        assert!(due.is_empty(), "no alert is due");
        assert_eq!(
            store.pool_open(),
            0,
            "light calls open no pooled connection"
        );
    }
    assert_eq!(open_on_server().await, 1, "still the one connection");
    let beat = store
        .list_nodes()
        .await
        .expect("list_nodes")
        .into_iter()
        .find(|n| n.node_id == "idle-worker")
        .expect("the node")
        .heartbeat_at;
    assert!(
        beat > now,
        "the heartbeats on the notification connection were written"
    );

    // Real work (a run) opens the pool; a claim with the pool empty still
    // takes the queued task.
    let (_, tis) = create_flat_run(&store, &dag, 0).await;
    assert!(
        store.pool_open() >= 1,
        "a run is made on a pooled connection"
    );
    queue_task(&store, tis[0]).await;
    pool_closes().await;
    let claims = store.claim(&worker, "h", &queues, 4).await.expect("claim");
    assert_eq!(claims.len(), 1, "the queued task is claimed: {claims:?}");
    assert_eq!(claims[0].task.id, tis[0]);
    assert_eq!(store.pool_open(), 0);
    assert_eq!(open_on_server().await, 1);

    stop.cancel();
    listening.await.expect("the listener stops");
    // Without the notification connection, light calls use the pool.
    store
        .heartbeat_node("idle-worker", Timestamp::now())
        .await
        .expect("heartbeat_node");
    assert_eq!(store.pool_open(), 1);
}
