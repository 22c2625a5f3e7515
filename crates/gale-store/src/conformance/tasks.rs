//! Conformance checks: Task instances: conditional transitions, state counts, queueing within `max_active_tasks`.

use super::*;

/// A transition applies only if the task is still in `from`; only applied ones count.
pub async fn run_state_counts_follow_transitions<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/flat.yaml", &flat_dag_source("flat", 3, "")).await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    let other = create(store, &new_run(&dag, "manual__2", RunType::Manual, day(2))).await;
    let counts = |c: Vec<(TaskState, u32)>| {
        let mut c = c;
        c.sort_by_key(|(s, _)| s.as_str());
        c
    };
    let got = store.run_state_counts(run).await.expect("run_state_counts");
    assert_eq!(counts(got), [(TaskState::None, 3)]);
    let rows = tasks_of(store, run).await;
    store
        .apply_transitions(&[
            Transition {
                ti: find(&rows, "t1").id,
                from: TaskState::None,
                to: TaskState::Scheduled,
                retry_at: None,
            },
            Transition {
                ti: find(&rows, "t2").id,
                from: TaskState::None,
                to: TaskState::Skipped,
                retry_at: None,
            },
        ])
        .await
        .expect("apply_transitions");
    let got = store.run_state_counts(run).await.expect("run_state_counts");
    assert_eq!(
        counts(got),
        [
            (TaskState::None, 1),
            (TaskState::Scheduled, 1),
            (TaskState::Skipped, 1)
        ]
    );
    let got = store
        .run_state_counts(other)
        .await
        .expect("run_state_counts");
    assert_eq!(
        counts(got),
        [(TaskState::None, 3)],
        "other runs are not counted"
    );
    let missing = store
        .run_state_counts(RunId(999_999))
        .await
        .expect("run_state_counts");
    assert!(missing.is_empty());

    // run_activity: pending (none/scheduled/up_for_retry) and in flight
    // (queued/running), each true as soon as one task instance is.
    let activity = |pending, in_flight| RunActivity { pending, in_flight };
    assert_eq!(
        store.run_activity(run).await.expect("run_activity"),
        activity(true, false)
    );
    let rows = tasks_of(store, run).await;
    let t1 = find(&rows, "t1").id;
    assert_eq!(
        store
            .enqueue(&dag.dag.id, &[t1], None)
            .await
            .expect("enqueue"),
        1
    );
    assert_eq!(
        store.run_activity(run).await.expect("run_activity"),
        activity(true, true),
        "t3 still waits"
    );
    store
        .apply_transitions(&[Transition {
            ti: find(&rows, "t3").id,
            from: TaskState::None,
            to: TaskState::UpstreamFailed,
            retry_at: None,
        }])
        .await
        .expect("apply_transitions");
    assert_eq!(
        store.run_activity(run).await.expect("run_activity"),
        activity(false, true),
        "only t1 is left, queued"
    );
    assert_eq!(
        store
            .run_activity(RunId(999_999))
            .await
            .expect("run_activity"),
        activity(false, false)
    );
}

pub async fn apply_transitions_is_conditional<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/flat.yaml", &flat_dag_source("flat", 3, "")).await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    let rows = tasks_of(store, run).await;
    let (t1, t2, t3) = (
        find(&rows, "t1").id,
        find(&rows, "t2").id,
        find(&rows, "t3").id,
    );
    let tr = |ti, from, to| Transition {
        ti,
        from,
        to,
        retry_at: None,
    };

    let n = store
        .apply_transitions(&[
            tr(t1, TaskState::None, TaskState::Scheduled),
            tr(t2, TaskState::Running, TaskState::Success),
            tr(t3, TaskState::None, TaskState::Skipped),
        ])
        .await
        .expect("apply_transitions");
    assert_eq!(n, 2, "only transitions whose `from` matches are counted");
    let rows = tasks_of(store, run).await;
    assert_eq!(find(&rows, "t1").state, TaskState::Scheduled);
    assert_eq!(
        find(&rows, "t2").state,
        TaskState::None,
        "a transition whose `from` does not match must change nothing"
    );
    assert_eq!(find(&rows, "t2").ended_at, None);
    assert_eq!(find(&rows, "t3").state, TaskState::Skipped);
    assert!(
        find(&rows, "t3").ended_at.is_some(),
        "a terminal transition sets ended_at"
    );

    // A stale scheduler repeating the same decision changes nothing.
    let n = store
        .apply_transitions(&[
            tr(t1, TaskState::None, TaskState::Scheduled),
            tr(t1, TaskState::None, TaskState::UpstreamFailed),
        ])
        .await
        .expect("apply_transitions");
    assert_eq!(n, 0);
    assert_eq!(ti_of(store, run, "t1").await.state, TaskState::Scheduled);

    let retry_at = day(3);
    let n = store
        .apply_transitions(&[Transition {
            ti: t1,
            from: TaskState::Scheduled,
            to: TaskState::UpForRetry,
            retry_at: Some(retry_at),
        }])
        .await
        .expect("apply_transitions");
    assert_eq!(n, 1);
    let t = ti_of(store, run, "t1").await;
    assert_eq!(t.state, TaskState::UpForRetry);
    assert_eq!(t.retry_at, Some(retry_at), "retry_at must round-trip");

    // A ready task nothing holds back goes straight to queued, from none or from
    // up_for_retry, stamped for its queue wait, and a worker can claim it.
    let n = store
        .apply_transitions(&[
            tr(t1, TaskState::UpForRetry, TaskState::Queued),
            tr(t2, TaskState::None, TaskState::Queued),
        ])
        .await
        .expect("apply_transitions to queued");
    assert_eq!(n, 2);
    for ti in ["t1", "t2"] {
        let t = ti_of(store, run, ti).await;
        assert_eq!(t.state, TaskState::Queued, "{ti}");
        assert!(
            t.queued_at.is_some(),
            "{ti}: a move to queued sets queued_at"
        );
        assert_eq!(t.retry_at, None, "{ti}");
    }
    let claimed: BTreeSet<TiId> = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 10)
        .await
        .expect("claim")
        .iter()
        .map(|c| c.task.id)
        .collect();
    assert_eq!(claimed, BTreeSet::from([t1, t2]));

    assert_eq!(
        store
            .apply_transitions(&[])
            .await
            .expect("apply_transitions([])"),
        0
    );
}

/// `enqueue` moves scheduled task instances in the order given and never lets a
/// DAG have more than `max_active_tasks` queued plus running, across all its runs.
pub async fn enqueue_respects_max_active_tasks<S: Store + ?Sized>(store: &S) {
    let dag = seed(
        store,
        "dags/limited.yaml",
        &flat_dag_source("limited", 3, "max_active_tasks: 2"),
    )
    .await;
    let max = dag.dag.max_active_tasks;
    assert_eq!(max, Some(2));
    // Another DAG's active tasks do not count against this one's limit.
    let (_other, _) = queued_run(store, "other", 3).await;

    let run1 = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    let run2 = create(store, &new_run(&dag, "manual__2", RunType::Manual, day(2))).await;
    let mut scheduled = Vec::new();
    for run in [run1, run2] {
        let rows = tasks_of(store, run).await;
        let transitions: Vec<Transition> = ["t3", "t1", "t2"]
            .iter()
            .map(|id| Transition {
                ti: find(&rows, id).id,
                from: TaskState::None,
                to: TaskState::Scheduled,
                retry_at: None,
            })
            .collect();
        assert_eq!(
            store
                .apply_transitions(&transitions)
                .await
                .expect("apply_transitions"),
            3
        );
        scheduled.push(transitions.iter().map(|t| t.ti).collect::<Vec<_>>());
    }

    let n = store
        .enqueue(dag.id(), &scheduled[0], max)
        .await
        .expect("enqueue");
    assert_eq!(n, 2, "enqueue must stop at max_active_tasks");
    let rows = tasks_of(store, run1).await;
    assert_eq!(
        find(&rows, "t3").state,
        TaskState::Queued,
        "enqueue goes in the order given"
    );
    assert!(find(&rows, "t3").queued_at.is_some());
    assert_eq!(find(&rows, "t1").state, TaskState::Queued);
    assert_eq!(find(&rows, "t2").state, TaskState::Scheduled);

    let n = store
        .enqueue(dag.id(), &scheduled[1], max)
        .await
        .expect("enqueue");
    assert_eq!(
        n, 0,
        "queued task instances of another run of the DAG count against the limit"
    );

    // A running attempt counts too.
    let claims = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 100)
        .await
        .expect("claim");
    let mine: Vec<_> = claims
        .iter()
        .filter(|c| c.task.run_id == run1)
        .map(|c| c.task.clone())
        .collect();
    assert_eq!(
        mine.len(),
        2,
        "both queued tasks of run1 claimed: {claims:#?}"
    );
    let n = store
        .enqueue(dag.id(), &scheduled[1], max)
        .await
        .expect("enqueue");
    assert_eq!(n, 0, "running task instances count against the limit");

    assert!(
        store
            .finish_attempt(&finish(
                mine[0].id,
                mine[0].try_number,
                "w1",
                TaskState::Success,
                "success"
            ))
            .await
            .expect("finish_attempt")
    );
    let n = store
        .enqueue(dag.id(), &scheduled[1], max)
        .await
        .expect("enqueue");
    assert_eq!(n, 1, "a finished task frees one slot");
    let rows = tasks_of(store, run2).await;
    assert_eq!(find(&rows, "t3").state, TaskState::Queued);
    assert_eq!(find(&rows, "t1").state, TaskState::Scheduled);

    // Task instances not in `scheduled` are not moved and use no room.
    let n = store
        .enqueue(dag.id(), &[mine[1].id, scheduled[1][0]], None)
        .await
        .expect("enqueue");
    assert_eq!(n, 0, "only scheduled task instances are enqueued");
    assert_eq!(
        ti_of(store, run1, mine[1].task_id.as_str()).await.state,
        TaskState::Running
    );

    let n = store
        .enqueue(dag.id(), &scheduled[1], None)
        .await
        .expect("enqueue");
    assert_eq!(n, 2, "without a limit every scheduled one is enqueued");
}
