//! Conformance checks: The attempt queue: claims (priority, queues, exclusivity), fenced results, retries.

use super::*;

/// `limit`, and starts an attempt: try 1, the worker's id, an attempt row.
pub async fn claim_priority_queues_and_limit<S: Store + ?Sized>(store: &S) {
    let source = r#"
id: claims
tasks:
  low:
    run: echo low
    priority: 1
  high:
    run: echo high
    priority: 10
  mid:
    run: echo mid
    priority: 5
  gpu:
    run: echo gpu
    priority: 100
    queue: gpu
"#;
    let dag = seed(store, "dags/claims.yaml", source).await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    queue_tasks(store, dag.id(), run, &["low", "high", "mid", "gpu"]).await;

    assert!(
        store
            .claim(&"w1".into(), "host-1", &queues(&["default"]), 0)
            .await
            .expect("claim limit 0")
            .is_empty(),
        "a limit of 0 claims nothing"
    );
    assert!(
        store
            .claim(&"w1".into(), "host-1", &[], 10)
            .await
            .expect("claim no queues")
            .is_empty(),
        "no queues claims nothing"
    );
    assert!(
        store
            .claim(&"w1".into(), "host-1", &queues(&["nope"]), 10)
            .await
            .expect("claim unknown queue")
            .is_empty(),
        "a queue without work claims nothing"
    );

    let before = store.now().await.expect("now");
    let claims = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 2)
        .await
        .expect("claim");
    let names: Vec<&str> = claims.iter().map(|c| c.task.task_id.as_str()).collect();
    assert_eq!(
        names,
        vec!["high", "mid"],
        "claim must take the highest priority first and respect the limit"
    );
    for c in &claims {
        let t = &c.task;
        assert_eq!(t.state, TaskState::Running, "{}", t.task_id);
        assert_eq!(t.try_number, 1, "the first claim is try 1");
        assert_eq!(t.worker_id.as_ref().map(WorkerId::as_str), Some("w1"));
        let hb = t.heartbeat_at.expect("a claim sets heartbeat_at");
        assert!(
            hb.as_microsecond() >= before.as_microsecond(),
            "heartbeat_at comes from the store's clock"
        );
        assert!(t.started_at.is_some());
        assert_eq!(c.run.id, run, "the claim carries its run");
        assert_eq!(c.run.dag_id, dag.dag.id);
        let stored = ti_of(store, run, t.task_id.as_str()).await;
        assert_eq!(stored.state, TaskState::Running);
        assert_eq!(stored.try_number, 1);
        assert_eq!(stored.worker_id.as_ref().map(WorkerId::as_str), Some("w1"));

        let attempts = store.attempts(t.id).await.expect("attempts");
        assert_eq!(attempts.len(), 1, "a claim creates one attempt row");
        let a = &attempts[0];
        assert_eq!(a.ti_id, t.id);
        assert_eq!(a.try_number, 1);
        assert_eq!(a.run_id, run);
        assert_eq!(a.task_id, t.task_id);
        assert_eq!(a.worker_id.as_str(), "w1");
        assert_eq!(a.host.as_deref(), Some("host-1"));
        assert_eq!(a.state, "running");
        assert_eq!(a.exit_code, None);
        assert_eq!(a.ended_at, None);
    }

    let rows = tasks_of(store, run).await;
    assert_eq!(find(&rows, "low").state, TaskState::Queued);
    assert_eq!(
        find(&rows, "gpu").state,
        TaskState::Queued,
        "claim must not take work from queues it did not list"
    );

    let second = store
        .claim(&"w2".into(), "host-2", &queues(&["default"]), 10)
        .await
        .expect("claim w2");
    let names: Vec<&str> = second.iter().map(|c| c.task.task_id.as_str()).collect();
    assert_eq!(
        names,
        vec!["low"],
        "a second worker gets only what is still queued"
    );
    assert_eq!(
        second[0].task.worker_id.as_ref().map(WorkerId::as_str),
        Some("w2")
    );
    assert!(
        store
            .claim(&"w2".into(), "host-2", &queues(&["default"]), 10)
            .await
            .expect("claim w2 again")
            .is_empty()
    );

    let gpu = store
        .claim(
            &"w3".into(),
            "host-3",
            &queues(&["io", "gpu", "default"]),
            10,
        )
        .await
        .expect("claim w3");
    assert_eq!(gpu.len(), 1);
    assert_eq!(gpu[0].task.task_id.as_str(), "gpu");
    assert_eq!(gpu[0].task.queue, "gpu");

    // record_process fills in the attempt row.
    let high = &claims[0].task;
    store
        .record_process(high.id, 1, Some(4242), "echo high")
        .await
        .expect("record_process");
    let a = &store.attempts(high.id).await.expect("attempts")[0];
    assert_eq!(a.pid, Some(4242));
    assert_eq!(a.command.as_deref(), Some("echo high"));

    let w1: BTreeSet<TiId> = ids(&store
        .worker_attempts(&"w1".into())
        .await
        .expect("worker_attempts"));
    assert_eq!(
        w1,
        claims.iter().map(|c| c.task.id).collect::<BTreeSet<_>>()
    );
}

/// Concurrent claims by two workers never hand out the same task instance.
pub async fn claim_is_exclusive<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "many", 12).await;
    let default = queues(&["default"]);
    let grab = async |worker: &str| {
        let mut got = Vec::new();
        loop {
            let claims = store
                .claim(&worker.into(), "host", &default, 2)
                .await
                .expect("claim");
            if claims.is_empty() {
                return got;
            }
            got.extend(claims.into_iter().map(|c| c.task.id));
        }
    };
    let (a, b) = tokio::join!(grab("wa"), grab("wb"));
    let sa: BTreeSet<TiId> = a.iter().copied().collect();
    let sb: BTreeSet<TiId> = b.iter().copied().collect();
    assert_eq!(sa.len(), a.len(), "a worker got a task instance twice");
    assert_eq!(sb.len(), b.len(), "a worker got a task instance twice");
    assert!(
        sa.is_disjoint(&sb),
        "two workers claimed the same task instance: {a:?} {b:?}"
    );
    assert_eq!(
        sa.union(&sb).count(),
        12,
        "every queued task instance is claimed once"
    );
    for t in tasks_of(store, run).await {
        assert_eq!(t.try_number, 1, "{} claimed more than once", t.task_id);
        assert_eq!(store.attempts(t.id).await.expect("attempts").len(), 1);
    }
}

/// `finish_attempt` applies only to the running attempt with that try number under
/// that worker; it records state, outputs and the attempt's outcome.
pub async fn finish_attempt_is_fenced<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "fence", 2).await;
    let claims = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 2);
    let t1 = find(
        &claims.iter().map(|c| c.task.clone()).collect::<Vec<_>>(),
        "t1",
    )
    .clone();

    let outputs = BTreeMap::from([
        ("rows".to_owned(), "42".to_owned()),
        ("path".to_owned(), "/tmp/out.csv".to_owned()),
    ]);
    let good = Finish {
        exit_code: Some(0),
        message: Some("ok".into()),
        outputs: outputs.clone(),
        ..finish(t1.id, 1, "w1", TaskState::Success, "success")
    };

    let wrong_worker = Finish {
        worker_id: "w2".into(),
        ..good.clone()
    };
    assert!(
        !store
            .finish_attempt(&wrong_worker)
            .await
            .expect("finish_attempt"),
        "a finish from another worker must be refused"
    );
    let wrong_try = Finish {
        try_number: 2,
        ..good.clone()
    };
    assert!(
        !store
            .finish_attempt(&wrong_try)
            .await
            .expect("finish_attempt"),
        "a finish for another try must be refused"
    );
    let wrong_ti = Finish {
        ti: TiId(t1.id.0 + 1_000_000),
        ..good.clone()
    };
    assert!(
        !store
            .finish_attempt(&wrong_ti)
            .await
            .expect("finish_attempt")
    );
    let t = ti_of(store, run, "t1").await;
    assert_eq!(
        t.state,
        TaskState::Running,
        "a refused finish changes nothing"
    );
    assert!(t.outputs.is_empty(), "a refused finish changes nothing");
    assert_eq!(t.ended_at, None);
    let a = &store.attempts(t1.id).await.expect("attempts")[0];
    assert_eq!(a.state, "running", "a refused finish changes nothing");
    assert_eq!(a.exit_code, None);
    assert_eq!(a.message, None);
    assert_eq!(a.ended_at, None);

    assert!(
        store.finish_attempt(&good).await.expect("finish_attempt"),
        "the fence holder's finish must apply"
    );
    let t = ti_of(store, run, "t1").await;
    assert_eq!(t.state, TaskState::Success);
    assert_eq!(t.outputs, outputs, "outputs must round-trip");
    assert_eq!(t.try_number, 1);
    assert!(t.ended_at.is_some());
    let attempts = store.attempts(t1.id).await.expect("attempts");
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!(a.state, "success", "the attempt row records the outcome");
    assert_eq!(a.exit_code, Some(0));
    assert_eq!(a.message.as_deref(), Some("ok"));
    assert!(a.ended_at.is_some());

    assert!(
        !store.finish_attempt(&good).await.expect("finish_attempt"),
        "a repeated finish must be refused"
    );
    let timed_out = Finish {
        state: TaskState::Failed,
        outcome: Outcome::TimedOut,
        ..good.clone()
    };
    assert!(
        !store
            .finish_attempt(&timed_out)
            .await
            .expect("finish_attempt")
    );
    assert_eq!(ti_of(store, run, "t1").await.state, TaskState::Success);
    assert_eq!(
        store.attempts(t1.id).await.expect("attempts")[0].state,
        "success"
    );

    // A failed attempt that will be retried: state up_for_retry with retry_at, the
    // attempt row saying what happened.
    let t2 = ti_of(store, run, "t2").await;
    let retry_at = day(5);
    let failed = Finish {
        retry_at: Some(retry_at),
        exit_code: Some(3),
        message: Some("exit status 3".into()),
        ..finish(t2.id, 1, "w1", TaskState::UpForRetry, "failed")
    };
    assert!(store.finish_attempt(&failed).await.expect("finish_attempt"));
    let t = ti_of(store, run, "t2").await;
    assert_eq!(t.state, TaskState::UpForRetry);
    assert_eq!(t.retry_at, Some(retry_at));
    let a = &store.attempts(t2.id).await.expect("attempts")[0];
    assert_eq!(a.state, "failed");
    assert_eq!(a.exit_code, Some(3));
    assert_eq!(a.message.as_deref(), Some("exit status 3"));
}

/// `finish_attempts` applies each result of a batch through the same fence as
/// `finish_attempt`, and says which it recorded, in order.
pub async fn finish_attempts_fences_each<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "batch", 4).await;
    let claims = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 4);
    let ti = |name: &str| {
        claims
            .iter()
            .find(|c| c.task.task_id.as_str() == name)
            .expect("claimed")
            .task
            .id
    };
    let batch = vec![
        Finish {
            exit_code: Some(0),
            outputs: BTreeMap::from([("n".to_owned(), "1".to_owned())]),
            pid: Some(4242),
            command: Some("echo n=1".into()),
            ..finish(ti("t1"), 1, "w1", TaskState::Success, "success")
        },
        // Another worker's late result: refused.
        finish(ti("t2"), 1, "w2", TaskState::Success, "success"),
        Finish {
            retry_at: Some(day(3)),
            exit_code: Some(2),
            message: Some("exited with code 2".into()),
            ..finish(ti("t3"), 1, "w1", TaskState::UpForRetry, "failed")
        },
        // A try that is not running: refused.
        finish(ti("t4"), 2, "w1", TaskState::Success, "success"),
    ];
    let recorded = store
        .finish_attempts(&batch)
        .await
        .expect("finish_attempts");
    assert_eq!(recorded, vec![true, false, true, false]);
    let t1 = ti_of(store, run, "t1").await;
    assert_eq!(t1.state, TaskState::Success);
    assert_eq!(t1.outputs.get("n").map(String::as_str), Some("1"));
    let a1 = &store.attempts(t1.id).await.expect("attempts")[0];
    assert_eq!((a1.state.as_str(), a1.exit_code), ("success", Some(0)));
    assert_eq!(a1.command.as_deref(), Some("echo n=1"));
    let t3 = ti_of(store, run, "t3").await;
    assert_eq!(
        (t3.state, t3.retry_at),
        (TaskState::UpForRetry, Some(day(3)))
    );
    let a3 = &store.attempts(t3.id).await.expect("attempts")[0];
    assert_eq!(a3.message.as_deref(), Some("exited with code 2"));
    for name in ["t2", "t4"] {
        let t = ti_of(store, run, name).await;
        assert_eq!(
            t.state,
            TaskState::Running,
            "{name}: a refused result changes nothing"
        );
        assert_eq!(
            store.attempts(t.id).await.expect("attempts")[0].state,
            "running"
        );
    }
    // Sent again (its answer lost): nothing applies twice.
    let again = store
        .finish_attempts(&batch)
        .await
        .expect("finish_attempts");
    assert_eq!(again, vec![false, false, false, false]);
    assert_eq!(
        store.finish_attempts(&[]).await.expect("empty batch"),
        Vec::<bool>::new()
    );
}

/// Moves a task instance waiting for its retry back to queued, as the
/// scheduler does once its retry time has come.
async fn queue_retry<S: Store + ?Sized>(store: &S, dag: &Seeded, ti: TiId) {
    let moved = store
        .apply_transitions(&[Transition {
            ti,
            from: TaskState::UpForRetry,
            to: TaskState::Scheduled,
            retry_at: None,
        }])
        .await
        .expect("apply_transitions");
    assert_eq!(moved, 1, "up_for_retry -> scheduled");
    assert_eq!(
        store.enqueue(dag.id(), &[ti], None).await.expect("enqueue"),
        1,
        "scheduled -> queued"
    );
}

/// A batch can hold a late result of a try that was reaped beside the result
/// of its retry on the same worker: only the running try's applies, and the
/// reaped try's attempt record keeps what the reaper wrote. A NUL in a result
/// (which PostgreSQL text cannot hold) does not fail the batch.
pub async fn finish_attempts_tells_tries_apart<S: Store + ?Sized>(store: &S) {
    let (dag, run) = queued_run(store, "tries", 1).await;
    let first = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    let ti = first[0].task.id;
    // The worker went silent: try 1 is reaped for a retry.
    assert!(
        store
            .reap_attempt(&reap(ti, 1, "w1", Duration::ZERO))
            .await
            .expect("reap_attempt")
    );
    queue_retry(store, &dag, ti).await;
    let second = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    assert_eq!(second[0].task.try_number, 2);
    let batch = vec![
        Finish {
            message: Some("late".into()),
            ..finish(ti, 1, "w1", TaskState::Success, "success")
        },
        Finish {
            message: Some("nul \0 inside".into()),
            outputs: BTreeMap::from([("k".to_owned(), "a\0b".to_owned())]),
            ..finish(ti, 2, "w1", TaskState::Success, "success")
        },
    ];
    let recorded = store
        .finish_attempts(&batch)
        .await
        .expect("finish_attempts");
    assert_eq!(recorded, vec![false, true], "only the running try applies");
    let attempts = store.attempts(ti).await.expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts[0].state, "lost",
        "the reaped try's record keeps what the reaper wrote: {attempts:#?}"
    );
    assert_ne!(attempts[0].message.as_deref(), Some("late"));
    assert_eq!(attempts[1].state, "success");
    assert!(
        attempts[1]
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("nul ")),
        "{attempts:#?}"
    );
    let t = ti_of(store, run, "t1").await;
    assert_eq!((t.state, t.try_number), (TaskState::Success, 2));
    assert!(t.outputs.get("k").is_some_and(|v| v.starts_with('a')));
}

/// A retried task instance is claimed with the next try number and a new attempt
/// row; the previous try's worker is fenced off.
pub async fn retry_claims_next_try<S: Store + ?Sized>(store: &S) {
    let (dag, run) = queued_run(store, "retry", 1).await;
    let first = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    let ti = first[0].task.id;
    assert!(
        store
            .finish_attempt(&finish(ti, 1, "w1", TaskState::UpForRetry, "failed"))
            .await
            .expect("finish_attempt")
    );
    queue_retry(store, &dag, ti).await;

    let second = store
        .claim(&"w2".into(), "host-2", &queues(&["default"]), 1)
        .await
        .expect("claim");
    assert_eq!(second.len(), 1);
    let t = &second[0].task;
    assert_eq!(t.id, ti);
    assert_eq!(
        t.try_number, 2,
        "a retry is claimed with the next try number"
    );
    assert_eq!(t.worker_id.as_ref().map(WorkerId::as_str), Some("w2"));
    assert_eq!(t.retry_at, None, "a claim clears retry_at");
    assert_eq!(t.ended_at, None, "a claim clears ended_at");

    let attempts = store.attempts(ti).await.expect("attempts");
    assert_eq!(attempts.len(), 2, "one attempt row per try: {attempts:#?}");
    assert_eq!(attempts[0].try_number, 1);
    assert_eq!(attempts[0].state, "failed", "try 1's record is kept");
    assert_eq!(attempts[0].worker_id.as_str(), "w1");
    assert_eq!(attempts[1].try_number, 2);
    assert_eq!(attempts[1].state, "running");
    assert_eq!(attempts[1].worker_id.as_str(), "w2");

    assert!(
        !store
            .finish_attempt(&finish(ti, 1, "w1", TaskState::Success, "success"))
            .await
            .expect("finish_attempt"),
        "a late finish of try 1 must not touch try 2"
    );
    assert!(
        store
            .heartbeat_attempts(&"w1".into(), &[(ti, 1)])
            .await
            .expect("heartbeat_attempts")
            .is_empty()
    );
    let t = ti_of(store, run, "t1").await;
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(t.try_number, 2);
    assert_eq!(t.worker_id.as_ref().map(WorkerId::as_str), Some("w2"));
}
