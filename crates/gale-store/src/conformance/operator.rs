//! Conformance checks: Operators' actions: marking runs and tasks, clearing.

use super::*;

/// The attempt records of a task instance, with the last one (the one an
/// operator's action ends) checked to say `state` and name `who`.
async fn last_attempt_says<S: Store + ?Sized>(store: &S, ti: TiId, state: &str, who: &str) {
    let attempts = store.attempts(ti).await.expect("attempts");
    let a = attempts
        .last()
        .unwrap_or_else(|| panic!("task instance {ti} has no attempt record"));
    assert_eq!(
        a.state, state,
        "the running attempt of {ti} must be recorded as {state:?}: {a:#?}"
    );
    let message = a.message.as_deref().unwrap_or_default();
    assert!(
        message.contains(who),
        "the attempt's message must name who did it ({who:?}): {message:?}"
    );
    assert!(
        a.ended_at.is_some(),
        "an attempt ended by an operator has ended_at: {a:#?}"
    );
}

/// An operator's action fenced the attempt `try_number` of `ti` off its worker:
/// its lease is not renewed, the worker no longer holds it and its late report
/// changes nothing.
async fn fenced_off<S: Store + ?Sized>(store: &S, ti: TiId, try_number: u32, worker: &str) {
    let before = store
        .get_task(ti)
        .await
        .expect("get_task")
        .expect("the task instance");
    let attempts_before = store.attempts(ti).await.expect("attempts");
    assert!(
        store
            .heartbeat_attempts(&worker.into(), &[(ti, try_number)])
            .await
            .expect("heartbeat_attempts")
            .is_empty(),
        "the worker's heartbeat must no longer renew an attempt an operator ended"
    );
    assert!(
        !ids(&store
            .worker_attempts(&worker.into())
            .await
            .expect("worker_attempts"))
        .contains(&ti),
        "the worker no longer holds an attempt an operator ended"
    );
    let late = Finish {
        exit_code: Some(0),
        message: Some("done after all".into()),
        ..finish(ti, try_number, worker, TaskState::UpForRetry, "failed")
    };
    assert!(
        !store.finish_attempt(&late).await.expect("finish_attempt"),
        "the worker's late finish of an attempt an operator ended must be refused"
    );
    let after = store
        .get_task(ti)
        .await
        .expect("get_task")
        .expect("the task instance");
    assert_eq!(
        after.state, before.state,
        "a refused late finish changes nothing"
    );
    let attempts_after = store.attempts(ti).await.expect("attempts");
    let states = |rows: &[AttemptRow]| -> Vec<(u32, AttemptState, Option<String>)> {
        rows.iter()
            .map(|a| (a.try_number, a.state, a.message.clone()))
            .collect()
    };
    assert_eq!(
        states(&attempts_after),
        states(&attempts_before),
        "a refused late finish must not touch the attempt records"
    );
}

/// `mark_run(Cancel)` fails a queued or running run: its queued and running task
/// instances fail, its other unfinished ones are skipped, finished ones are kept,
/// and the running attempt, recorded `cancelled`, is fenced off its worker.
/// `Success` finishes every unfinished task instance as success; `Failed` applies
/// to any run not failed already. A run already in that state, a finished run
/// (for `Cancel`) and a missing run are refused.
pub async fn mark_run_and_cancel<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/marked.yaml", &flat_dag_source("marked", 7, "")).await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    assert_eq!(store.promote_runs().await.expect("promote_runs"), vec![run]);

    // t1 and t2 succeeded, t3 runs under w1, t4 is queued, t5 scheduled, t6 none
    // and t7 up for retry.
    queue_tasks(store, dag.id(), run, &["t1", "t2", "t3"]).await;
    let claims = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 3)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 3, "t1, t2 and t3 claimed: {claims:#?}");
    for id in ["t1", "t2"] {
        let ti = ti_of(store, run, id).await.id;
        assert!(
            store
                .finish_attempt(&finish(ti, 1, "w1", TaskState::Success, "success"))
                .await
                .expect("finish_attempt")
        );
    }
    queue_tasks(store, dag.id(), run, &["t4"]).await;
    let scheduled = schedule_tasks(store, run, &["t5", "t7"]).await;
    assert_eq!(
        store
            .apply_transitions(&[Transition {
                ti: scheduled[1],
                from: TaskState::Scheduled,
                to: TaskState::UpForRetry,
                retry_at: Some(day(5)),
            }])
            .await
            .expect("apply_transitions"),
        1
    );
    let t3 = ti_of(store, run, "t3").await;
    assert_eq!(t3.state, TaskState::Running);
    assert_eq!(t3.worker_id.as_ref().map(WorkerId::as_str), Some("w1"));

    assert!(
        store
            .mark_run(run, RunMark::Cancel, "alice")
            .await
            .expect("mark_run"),
        "cancelling a running run must apply"
    );
    let row = store.get_run(run).await.expect("get_run").expect("the run");
    assert_eq!(row.state, RunState::Cancelled, "a cancelled run says so");
    assert!(row.ended_at.is_some(), "a cancelled run has ended_at");
    let rows = tasks_of(store, run).await;
    for (id, state) in [
        ("t1", TaskState::Success),
        ("t2", TaskState::Success),
        ("t3", TaskState::Failed),
        ("t4", TaskState::Failed),
        ("t5", TaskState::Skipped),
        ("t6", TaskState::Skipped),
        ("t7", TaskState::Skipped),
    ] {
        assert_eq!(
            find(&rows, id).state,
            state,
            "after a cancel, {id} must be {state} (success kept, queued/running failed, \
             the other unfinished ones skipped)"
        );
        assert!(
            find(&rows, id).ended_at.is_some(),
            "after a cancel, {id} has ended_at"
        );
    }
    last_attempt_says(store, t3.id, "cancelled", "alice").await;
    assert_eq!(
        store.attempts(t3.id).await.expect("attempts").len(),
        1,
        "a cancel adds no attempt record"
    );
    fenced_off(store, t3.id, 1, "w1").await;
    assert_eq!(
        store
            .attempts(find(&rows, "t1").id)
            .await
            .expect("attempts")[0]
            .state,
        "success",
        "a finished attempt's record is not touched by a cancel"
    );

    assert!(
        !store
            .mark_run(run, RunMark::Cancel, "alice")
            .await
            .expect("mark_run"),
        "a finished run cannot be cancelled"
    );
    assert!(
        store
            .mark_run(run, RunMark::Failed, "alice")
            .await
            .expect("mark_run"),
        "a cancelled run may be marked failed"
    );
    assert_eq!(
        store
            .get_run(run)
            .await
            .expect("get_run")
            .expect("the run")
            .state,
        RunState::Failed
    );
    assert!(
        !store
            .mark_run(run, RunMark::Failed, "alice")
            .await
            .expect("mark_run"),
        "marking a failed run failed must return false"
    );

    // Marking the cancelled run success keeps its finished task instances.
    assert!(
        store
            .mark_run(run, RunMark::Success, "bob")
            .await
            .expect("mark_run"),
        "a failed run may be marked success"
    );
    let row = store.get_run(run).await.expect("get_run").expect("the run");
    assert_eq!(row.state, RunState::Success);
    assert!(row.ended_at.is_some());
    let after: Vec<(String, TaskState)> = tasks_of(store, run)
        .await
        .iter()
        .map(|t| (t.task_id.to_string(), t.state))
        .collect();
    let before: Vec<(String, TaskState)> = rows
        .iter()
        .map(|t| (t.task_id.to_string(), t.state))
        .collect();
    assert_eq!(
        after, before,
        "marking a run success leaves its finished task instances as they are"
    );
    assert!(
        !store
            .mark_run(run, RunMark::Success, "bob")
            .await
            .expect("mark_run"),
        "marking a successful run success must return false"
    );
    assert!(
        store
            .mark_run(run, RunMark::Failed, "bob")
            .await
            .expect("mark_run"),
        "a successful run may be marked failed"
    );
    assert_eq!(
        store
            .get_run(run)
            .await
            .expect("get_run")
            .expect("the run")
            .state,
        RunState::Failed
    );
    assert!(
        !store
            .mark_run(run, RunMark::Failed, "bob")
            .await
            .expect("mark_run"),
        "marking a failed run failed again must return false"
    );
    for mark in [RunMark::Success, RunMark::Failed, RunMark::Cancel] {
        assert!(
            !store
                .mark_run(RunId(999_999), mark, "bob")
                .await
                .expect("mark_run of a missing run"),
            "mark_run({mark:?}) of a missing run must return false"
        );
    }

    // A run with unfinished task instances marked success: every one of them
    // succeeds, and the running attempt is recorded `marked_success`.
    let run2 = create(store, &new_run(&dag, "manual__2", RunType::Manual, day(2))).await;
    queue_tasks(store, dag.id(), run2, &["t1"]).await;
    let claims = store
        .claim(&"w2".into(), "host-2", &queues(&["default"]), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1, "only run2's t1 is queued: {claims:#?}");
    let running = claims[0].task.clone();
    assert_eq!(running.run_id, run2);
    queue_tasks(store, dag.id(), run2, &["t2"]).await;
    schedule_tasks(store, run2, &["t3"]).await;
    assert!(
        store
            .mark_run(run2, RunMark::Success, "bob")
            .await
            .expect("mark_run"),
        "marking a queued run success must apply"
    );
    let row = store
        .get_run(run2)
        .await
        .expect("get_run")
        .expect("the run");
    assert_eq!(row.state, RunState::Success);
    assert!(row.ended_at.is_some(), "a run marked success has ended_at");
    for t in tasks_of(store, run2).await {
        assert_eq!(
            t.state,
            TaskState::Success,
            "every unfinished task instance of a run marked success succeeds: {t:#?}"
        );
        assert!(t.ended_at.is_some(), "{} has ended_at", t.task_id);
    }
    last_attempt_says(store, running.id, "marked_success", "bob").await;
    fenced_off(store, running.id, running.try_number, "w2").await;

    // A queued run can be cancelled too; its task instances are skipped.
    let run3 = create(store, &new_run(&dag, "manual__3", RunType::Manual, day(3))).await;
    assert!(
        store
            .mark_run(run3, RunMark::Cancel, "carol")
            .await
            .expect("mark_run"),
        "cancelling a queued run must apply"
    );
    let row = store
        .get_run(run3)
        .await
        .expect("get_run")
        .expect("the run");
    assert_eq!(row.state, RunState::Cancelled);
    assert!(row.ended_at.is_some());
    for t in tasks_of(store, run3).await {
        assert_eq!(
            t.state,
            TaskState::Skipped,
            "a cancelled run's task instances that never ran are skipped: {t:#?}"
        );
    }
    assert!(
        store.promote_runs().await.expect("promote_runs").is_empty(),
        "marked runs are not started"
    );
}

/// `mark_task` sets one task instance to success or failed: a running attempt is
/// recorded `marked_<state>` and fenced off its worker. Marking it in the state it
/// is in, or a missing one, returns false; any other target state is an error.
pub async fn mark_task_states<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "marks", 3).await;
    let claims = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1);
    let t1 = claims[0].task.clone();
    assert_eq!(t1.task_id.as_str(), "t1");

    assert!(
        store
            .mark_task(t1.id, TaskState::Success, "carol")
            .await
            .expect("mark_task"),
        "marking a running task instance success must apply"
    );
    let row = store
        .get_task(t1.id)
        .await
        .expect("get_task")
        .expect("get_task of an existing task instance");
    assert_eq!(row.id, t1.id);
    assert_eq!(row.run_id, run);
    assert_eq!(row.task_id, t1.task_id);
    assert_eq!(row.state, TaskState::Success);
    assert_eq!(row.try_number, 1, "marking does not change the try number");
    assert!(
        row.ended_at.is_some(),
        "a marked task instance has ended_at"
    );
    last_attempt_says(store, t1.id, "marked_success", "carol").await;
    fenced_off(store, t1.id, 1, "w1").await;
    assert!(
        !store
            .mark_task(t1.id, TaskState::Success, "carol")
            .await
            .expect("mark_task"),
        "marking a task instance success again must return false"
    );

    let t2 = ti_of(store, run, "t2").await;
    assert_eq!(t2.state, TaskState::Queued);
    assert!(
        store
            .mark_task(t2.id, TaskState::Failed, "dave")
            .await
            .expect("mark_task"),
        "marking a queued task instance failed must apply"
    );
    let row = store.get_task(t2.id).await.expect("get_task").unwrap();
    assert_eq!(row.state, TaskState::Failed);
    assert!(
        store.attempts(t2.id).await.expect("attempts").is_empty(),
        "a task instance that never ran has no attempt to record"
    );
    assert!(
        store
            .claim(&"w1".into(), "host-1", &queues(&["default"]), 10)
            .await
            .expect("claim")
            .iter()
            .all(|c| c.task.id != t2.id),
        "a task instance marked failed is no longer queued"
    );
    assert!(
        store
            .mark_task(t2.id, TaskState::Success, "dave")
            .await
            .expect("mark_task"),
        "a failed task instance may be marked success"
    );
    assert_eq!(
        store
            .get_task(t2.id)
            .await
            .expect("get_task")
            .unwrap()
            .state,
        TaskState::Success
    );

    let t3 = ti_of(store, run, "t3").await;
    for to in [
        TaskState::None,
        TaskState::Scheduled,
        TaskState::Queued,
        TaskState::Running,
        TaskState::UpForRetry,
        TaskState::Skipped,
        TaskState::UpstreamFailed,
    ] {
        store
            .mark_task(t3.id, to, "eve")
            .await
            .expect_err("a task instance can only be marked success or failed");
    }
    let row = store.get_task(t3.id).await.expect("get_task").unwrap();
    assert_eq!(
        (row.state, row.worker_id.clone()),
        (t3.state, t3.worker_id.clone()),
        "a refused mark changes nothing"
    );

    let missing = TiId(999_999_999);
    for to in [TaskState::Success, TaskState::Failed] {
        assert!(
            !store
                .mark_task(missing, to, "eve")
                .await
                .expect("mark_task"),
            "marking a missing task instance must return false"
        );
    }
    assert!(
        store.get_task(missing).await.expect("get_task").is_none(),
        "get_task of a missing task instance is None"
    );
}

/// `clear_tasks` sends finished task instances back to `none` with new
/// `max_tries` (each only if still in the state it was read in), keeps their
/// attempt records, and queues their run again if it had finished; the next
/// claim is the next try. Unfinished task instances are not cleared.
pub async fn clear_tasks_requeues_finished_run<S: Store + ?Sized>(store: &S) {
    let dag = seed(
        store,
        "dags/cleared.yaml",
        &flat_dag_source("cleared", 3, ""),
    )
    .await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    assert_eq!(store.promote_runs().await.expect("promote_runs"), vec![run]);
    queue_tasks(store, dag.id(), run, &["t1", "t2"]).await;
    let claims = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 2);
    let ti = |id: &str| {
        claims
            .iter()
            .find(|c| c.task.task_id.as_str() == id)
            .unwrap_or_else(|| panic!("{id} claimed"))
            .task
            .id
    };
    assert!(
        store
            .finish_attempt(&finish(ti("t1"), 1, "w1", TaskState::Success, "success"))
            .await
            .expect("finish_attempt")
    );
    assert!(
        store
            .finish_attempt(&Finish {
                exit_code: Some(1),
                message: Some("exit status 1".into()),
                ..finish(ti("t2"), 1, "w1", TaskState::Failed, "failed")
            })
            .await
            .expect("finish_attempt")
    );
    let t3 = ti_of(store, run, "t3").await.id;
    assert_eq!(
        store
            .apply_transitions(&[Transition {
                ti: t3,
                from: TaskState::None,
                to: TaskState::UpstreamFailed,
                retry_at: None,
            }])
            .await
            .expect("apply_transitions"),
        1
    );
    assert!(
        store
            .finish_run(run, RunState::Failed, &[])
            .await
            .expect("finish_run")
    );

    let rows = tasks_of(store, run).await;
    let (t1, t2, t3) = (
        find(&rows, "t1").clone(),
        find(&rows, "t2").clone(),
        find(&rows, "t3").clone(),
    );
    assert_eq!(
        (t1.state, t2.state, t3.state),
        (
            TaskState::Success,
            TaskState::Failed,
            TaskState::UpstreamFailed
        )
    );
    let clear = |t: &TaskRow| ClearTask {
        ti: t.id,
        from: t.state,
        max_tries: t.try_number + 2,
    };
    assert_eq!(
        store
            .clear_tasks(run, &[clear(&t2), clear(&t3)])
            .await
            .expect("clear_tasks"),
        2,
        "both finished task instances are cleared"
    );
    for t in [&t2, &t3] {
        let row = store.get_task(t.id).await.expect("get_task").unwrap();
        assert_eq!(
            row.state,
            TaskState::None,
            "a cleared task is none: {row:#?}"
        );
        assert_eq!(
            row.max_tries,
            t.try_number + 2,
            "a cleared task gets the new max_tries: {row:#?}"
        );
        assert_eq!(
            row.worker_id, None,
            "a cleared task has no worker: {row:#?}"
        );
        assert_eq!(row.heartbeat_at, None, "{row:#?}");
        assert_eq!(row.queued_at, None, "{row:#?}");
        assert_eq!(row.started_at, None, "{row:#?}");
        assert_eq!(
            row.ended_at, None,
            "a cleared task has no ended_at: {row:#?}"
        );
        assert_eq!(row.retry_at, None, "{row:#?}");
    }
    let row = store.get_task(t1.id).await.expect("get_task").unwrap();
    assert_eq!(
        (row.state, row.ended_at, row.max_tries),
        (t1.state, t1.ended_at, t1.max_tries),
        "a task not listed is not cleared"
    );
    let row = store.get_run(run).await.expect("get_run").expect("the run");
    assert_eq!(
        row.state,
        RunState::Queued,
        "clearing tasks of a finished run queues it again"
    );
    assert_eq!(row.ended_at, None, "a run queued again has no ended_at");
    let attempts = store.attempts(t2.id).await.expect("attempts");
    assert_eq!(
        attempts.len(),
        1,
        "clearing keeps the attempt history: {attempts:#?}"
    );
    assert_eq!(
        (attempts[0].try_number, attempts[0].state.as_str()),
        (1, "failed")
    );

    // Stale clears (the task is no longer in the state read), another run's task
    // and nothing at all change nothing.
    let stale = [
        ClearTask {
            ti: t2.id,
            from: TaskState::Failed,
            max_tries: 9,
        },
        ClearTask {
            ti: t1.id,
            from: TaskState::Failed,
            max_tries: 9,
        },
    ];
    assert_eq!(
        store.clear_tasks(run, &stale).await.expect("clear_tasks"),
        0,
        "a clear of a task no longer in the state read must not apply"
    );
    assert_eq!(
        store
            .clear_tasks(RunId(run.0 + 1_000_000), &[clear(&t1)])
            .await
            .expect("clear_tasks"),
        0,
        "clear_tasks only clears task instances of the run named"
    );
    assert_eq!(store.clear_tasks(run, &[]).await.expect("clear_tasks"), 0);
    let row = store.get_task(t2.id).await.expect("get_task").unwrap();
    assert_eq!(
        (row.state, row.max_tries),
        (TaskState::None, t2.try_number + 2)
    );
    let row = store.get_task(t1.id).await.expect("get_task").unwrap();
    assert_eq!(
        (row.state, row.max_tries),
        (TaskState::Success, t1.max_tries)
    );

    // Run again: the next claim is the next try, with a new attempt record.
    assert_eq!(
        store.promote_runs().await.expect("promote_runs"),
        vec![run],
        "a run queued again by a clear is started again"
    );
    queue_tasks(store, dag.id(), run, &["t2"]).await;
    let claims = store
        .claim(&"w2".into(), "host-2", &queues(&["default"]), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].task.id, t2.id);
    assert_eq!(
        claims[0].task.try_number,
        t2.try_number + 1,
        "a cleared task's next claim is the next try"
    );
    let attempts = store.attempts(t2.id).await.expect("attempts");
    let tries: Vec<(u32, &str)> = attempts
        .iter()
        .map(|a| (a.try_number, a.state.as_str()))
        .collect();
    assert_eq!(tries, vec![(1, "failed"), (2, "running")]);

    // A running task instance is not cleared, whatever state is claimed for it.
    assert_eq!(
        store
            .clear_tasks(
                run,
                &[ClearTask {
                    ti: t2.id,
                    from: TaskState::Running,
                    max_tries: 9,
                }]
            )
            .await
            .expect("clear_tasks"),
        0,
        "clearing a running task instance must be ignored"
    );
    let row = store.get_task(t2.id).await.expect("get_task").unwrap();
    assert_eq!(
        (
            row.state,
            row.worker_id.as_ref().map(WorkerId::as_str),
            row.max_tries
        ),
        (TaskState::Running, Some("w2"), t2.try_number + 2),
        "an ignored clear changes nothing"
    );

    // Clearing a finished task of a running run leaves the run running.
    assert_eq!(
        store
            .clear_tasks(run, &[clear(&t1)])
            .await
            .expect("clear_tasks"),
        1
    );
    assert_eq!(
        store
            .get_run(run)
            .await
            .expect("get_run")
            .expect("the run")
            .state,
        RunState::Running,
        "clearing tasks of a running run leaves it running"
    );
}
