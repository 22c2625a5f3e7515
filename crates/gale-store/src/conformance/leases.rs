//! Conformance checks: Leases: heartbeats, expired attempts, reaping, refunds, the worker's own lease.

use super::*;

/// worker with that try.
pub async fn heartbeat_returns_only_held_attempts<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "beat", 3).await;
    let w1 = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 2)
        .await
        .expect("claim w1");
    let w2 = store
        .claim(&"w2".into(), "host-2", &queues(&["default"]), 2)
        .await
        .expect("claim w2");
    assert_eq!((w1.len(), w2.len()), (2, 1));
    let (a, b, c) = (w1[0].task.clone(), w1[1].task.clone(), w2[0].task.clone());

    tokio::time::sleep(Duration::from_millis(5)).await;
    let renewed: BTreeSet<TiId> = store
        .heartbeat_attempts(&"w1".into(), &[(a.id, 1), (b.id, 1)])
        .await
        .expect("heartbeat_attempts")
        .into_iter()
        .collect();
    assert_eq!(renewed, BTreeSet::from([a.id, b.id]));
    let fresh = ti_of(store, run, a.task_id.as_str()).await;
    assert!(
        fresh.heartbeat_at > a.heartbeat_at,
        "a heartbeat must move heartbeat_at forward: {:?} -> {:?}",
        a.heartbeat_at,
        fresh.heartbeat_at
    );

    assert!(
        store
            .heartbeat_attempts(&"w1".into(), &[(c.id, 1)])
            .await
            .expect("heartbeat_attempts")
            .is_empty(),
        "a worker cannot renew another worker's attempt"
    );
    assert_eq!(
        ti_of(store, run, c.task_id.as_str()).await.heartbeat_at,
        c.heartbeat_at,
        "a refused heartbeat changes nothing"
    );
    assert!(
        store
            .heartbeat_attempts(&"w1".into(), &[(a.id, 2)])
            .await
            .expect("heartbeat_attempts")
            .is_empty(),
        "a heartbeat for another try is refused"
    );

    // The scheduler moves `a` away (say, it timed out): w1 no longer holds it.
    let n = store
        .apply_transitions(&[Transition {
            ti: a.id,
            from: TaskState::Running,
            to: TaskState::UpForRetry,
            retry_at: None,
        }])
        .await
        .expect("apply_transitions");
    assert_eq!(n, 1);
    let renewed = store
        .heartbeat_attempts(&"w1".into(), &[(a.id, 1), (b.id, 1)])
        .await
        .expect("heartbeat_attempts");
    assert_eq!(
        renewed,
        vec![b.id],
        "an attempt moved away by another transition must not be renewed"
    );
    assert_eq!(
        ti_of(store, run, a.task_id.as_str()).await.state,
        TaskState::UpForRetry,
        "a heartbeat must not bring an attempt back"
    );

    let held: Vec<TiId> = store
        .worker_attempts(&"w1".into())
        .await
        .expect("worker_attempts")
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        held,
        vec![b.id],
        "worker_attempts lists running attempts only"
    );
    let held: Vec<TiId> = store
        .worker_attempts(&"w2".into())
        .await
        .expect("worker_attempts")
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(held, vec![c.id]);
    assert!(
        store
            .heartbeat_attempts(&"w1".into(), &[])
            .await
            .expect("heartbeat_attempts([])")
            .is_empty()
    );
}

/// `expired_attempts` lists running attempts whose heartbeat is older than the
/// lease; `reap_attempt` ends one once, recording `lost` and the message.
pub async fn expired_attempts_and_reap<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "reap", 3).await;
    let claims = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 3)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 3);
    let (a, b, c) = (
        claims[0].task.clone(),
        claims[1].task.clone(),
        claims[2].task.clone(),
    );

    let hour = Duration::from_secs(3600);
    assert!(
        store
            .expired_attempts(hour)
            .await
            .expect("expired_attempts")
            .is_empty(),
        "fresh attempts are not expired"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let renewed = store
        .heartbeat_attempts(&"w1".into(), &[(b.id, 1)])
        .await
        .expect("heartbeat_attempts");
    assert_eq!(renewed, vec![b.id]);

    let expired = ids(&store
        .expired_attempts(Duration::from_millis(200))
        .await
        .expect("expired_attempts"));
    assert_eq!(
        expired,
        BTreeSet::from([a.id, c.id]),
        "attempts whose heartbeat is older than the lease, and only those"
    );
    let all = ids(&store
        .expired_attempts(Duration::ZERO)
        .await
        .expect("expired_attempts"));
    assert_eq!(all, BTreeSet::from([a.id, b.id, c.id]));

    let lost = Reap {
        to: TaskState::UpForRetry,
        retry_at: Some(day(4)),
        ..reap(a.id, 1, "w1", Duration::from_millis(1))
    };
    assert!(
        !store
            .reap_attempt(&Reap {
                lease: hour,
                ..lost.clone()
            })
            .await
            .expect("reap_attempt"),
        "an attempt heartbeating within the lease must not be reaped"
    );
    assert!(
        !store
            .reap_attempt(&Reap {
                worker_id: "w9".into(),
                ..lost.clone()
            })
            .await
            .expect("reap_attempt"),
        "reap is fenced on the worker"
    );
    assert!(
        !store
            .reap_attempt(&Reap {
                try_number: 2,
                ..lost.clone()
            })
            .await
            .expect("reap_attempt"),
        "reap is fenced on the try number"
    );
    assert_eq!(
        ti_of(store, run, a.task_id.as_str()).await.state,
        TaskState::Running
    );

    assert!(
        store.reap_attempt(&lost).await.expect("reap_attempt"),
        "an expired attempt must be reaped"
    );
    let t = ti_of(store, run, a.task_id.as_str()).await;
    assert_eq!(t.state, TaskState::UpForRetry);
    assert_eq!(t.retry_at, Some(day(4)));
    assert_eq!(t.max_tries, a.max_tries, "a lost attempt uses up its try");
    assert!(t.ended_at.is_some());
    let attempts = store.attempts(a.id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].state, "lost", "the attempt row says lost");
    assert_eq!(
        attempts[0].message.as_deref(),
        Some("worker w1 stopped heartbeating")
    );
    // The try ended, at the latest, when its lease did (1 ms after its claim,
    // never renewed): that, not the reap 400 ms later, is what the record says.
    let (started, ended) = (
        attempts[0].started_at,
        attempts[0].ended_at.expect("ended_at"),
    );
    assert_eq!(
        ended.duration_since(started),
        jiff::SignedDuration::from_millis(1),
        "a lost try's end is its lease's end ({started} + 1 ms), not the reap time: {ended}"
    );

    let again = Reap {
        message: "reaped twice".into(),
        ..lost.clone()
    };
    assert!(
        !store.reap_attempt(&again).await.expect("reap_attempt"),
        "a second reap of the same attempt must return false"
    );
    assert_eq!(
        store.attempts(a.id).await.expect("attempts")[0]
            .message
            .as_deref(),
        Some("worker w1 stopped heartbeating"),
        "a refused reap changes nothing"
    );
    // Its worker, thawed, says when the process really stopped: the record
    // ends there. Only for a lost try, and only its own worker's word.
    let stopped = started + jiff::SignedDuration::from_millis(250);
    assert!(
        !store
            .record_stop(a.id, 1, &"w9".into(), stopped)
            .await
            .expect("record_stop"),
        "another worker's word changes nothing"
    );
    assert!(
        !store
            .record_stop(b.id, 1, &"w1".into(), stopped)
            .await
            .expect("record_stop"),
        "a running try's end is not recorded this way"
    );
    assert!(
        store
            .record_stop(a.id, 1, &"w1".into(), stopped)
            .await
            .expect("record_stop")
    );
    let recorded = &store.attempts(a.id).await.expect("attempts")[0];
    assert_eq!(recorded.ended_at, Some(stopped));
    assert_eq!(recorded.state, "lost");
    let message = recorded.message.as_deref().unwrap_or_default();
    assert!(
        message.starts_with("worker w1 stopped heartbeating; its process stopped at ")
            && message.ends_with(" (measured by its worker)"),
        "{message}"
    );

    let expired = ids(&store
        .expired_attempts(Duration::ZERO)
        .await
        .expect("expired_attempts"));
    assert!(
        !expired.contains(&a.id),
        "a reaped attempt is no longer listed"
    );
    assert!(
        !store
            .finish_attempt(&finish(a.id, 1, "w1", TaskState::Success, "success"))
            .await
            .expect("finish_attempt"),
        "the reaped worker's late finish must be refused"
    );

    // Lease zero reaps unconditionally, even a freshly renewed attempt.
    let failed = Reap {
        to: TaskState::Failed,
        ..reap(c.id, 1, "w1", Duration::ZERO)
    };
    assert!(store.reap_attempt(&failed).await.expect("reap_attempt"));
    assert_eq!(
        ti_of(store, run, c.task_id.as_str()).await.state,
        TaskState::Failed
    );
    store
        .heartbeat_attempts(&"w1".into(), &[(b.id, 1)])
        .await
        .expect("heartbeat_attempts");
    assert!(
        store
            .reap_attempt(&reap(b.id, 1, "w1", Duration::ZERO))
            .await
            .expect("reap_attempt"),
        "lease zero reaps regardless of the heartbeat"
    );
}

/// A handed-back attempt (`refund_try`) does not use up a try: max_tries grows by one.
pub async fn reap_refund_try<S: Store + ?Sized>(store: &S) {
    let source = "id: refund\ntasks:\n  t1:\n    run: echo\n    retries: 2\n";
    let dag = seed(store, "dags/refund.yaml", source).await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    queue_tasks(store, dag.id(), run, &["t1"]).await;
    let claims = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    let t = claims[0].task.clone();
    assert_eq!(t.max_tries, 3);

    let handed_back = Reap {
        outcome: Outcome::HandedBack,
        message: "worker w1 is shutting down".into(),
        refund_try: true,
        ..reap(t.id, 1, "w1", Duration::ZERO)
    };
    assert!(
        store
            .reap_attempt(&handed_back)
            .await
            .expect("reap_attempt")
    );
    let after = ti_of(store, run, "t1").await;
    assert_eq!(after.state, TaskState::UpForRetry);
    assert_eq!(after.max_tries, 4, "refund_try must add one to max_tries");
    let a = &store.attempts(t.id).await.expect("attempts")[0];
    assert_eq!(a.state, "handed_back");
    assert_eq!(a.message.as_deref(), Some("worker w1 is shutting down"));
    assert!(
        !store
            .reap_attempt(&handed_back)
            .await
            .expect("reap_attempt"),
        "a second reap must return false"
    );
    assert_eq!(
        ti_of(store, run, "t1").await.max_tries,
        4,
        "a refused reap must not refund again"
    );
}

/// A worker registered with a longer lease than the reaper's is not reaped
/// sooner: it fences itself by its own lease, so an earlier retry could overlap.
pub async fn reaper_respects_the_workers_lease<S: Store + ?Sized>(store: &S) {
    let (_dag, _run) = queued_run(store, "leases", 2).await;
    let now = store.now().await.expect("now");
    store
        .register_node(&NodeRow {
            node_id: "patient".into(),
            host: "h".into(),
            pid: 1,
            roles: vec!["worker".into()],
            version: "0".into(),
            state: NodeState::Running,
            started_at: now,
            heartbeat_at: now,
            clock_skew_us: 0,
            running_attempts: 0,
            attempt_lease_ms: 60_000,
            queues: vec!["default".into()],
        })
        .await
        .expect("register_node");
    let patient = store
        .claim(&"patient".into(), "h", &queues(&["default"]), 1)
        .await
        .expect("claim");
    let unknown = store
        .claim(&"unregistered".into(), "h", &queues(&["default"]), 1)
        .await
        .expect("claim");
    assert_eq!((patient.len(), unknown.len()), (1, 1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = ids(&store
        .expired_attempts(Duration::from_secs(1))
        .await
        .expect("expired_attempts"));
    assert!(
        !expired.contains(&patient[0].task.id),
        "the worker's own 60 s lease has not run out"
    );
    assert!(
        expired.contains(&unknown[0].task.id),
        "a worker without a registered lease is judged by the reaper's"
    );
    let t = &patient[0].task;
    assert!(
        !store
            .reap_attempt(&reap(t.id, t.try_number, "patient", Duration::from_secs(1)))
            .await
            .expect("reap_attempt"),
        "reaping by a shorter lease is refused"
    );
    assert!(
        store
            .reap_attempt(&reap(t.id, t.try_number, "patient", Duration::ZERO))
            .await
            .expect("reap_attempt"),
        "a zero lease (recovery of a dead process) still applies"
    );
}
