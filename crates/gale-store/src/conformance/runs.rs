//! Conformance checks: Runs: one run per slot, the cursor, task instances, promotion within `max_active_runs`.

use super::*;

/// One run per slot: a scheduled or backfill run at a logical date that already
/// has one is refused, whatever its key; a manual run there is allowed; a run key
/// is never reused.
pub async fn create_run_one_per_slot<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/etl.yaml", ETL_V1).await;
    let mut first = new_run(&dag, "scheduled__2026-01-02", RunType::Scheduled, day(1));
    first.conf.insert("region".into(), "eu".into());
    first.conf.insert("limit".into(), 10.into());
    let id = create(store, &first).await;

    let run = store
        .get_run(id)
        .await
        .expect("get_run")
        .expect("the created run");
    assert_eq!(run.id, id);
    assert_eq!(run.dag_id, dag.dag.id);
    assert_eq!(run.run_key, "scheduled__2026-01-02");
    assert_eq!(run.run_type, RunType::Scheduled);
    assert_eq!(run.version_hash, dag.hash);
    assert_eq!(run.logical_date, day(1));
    assert_eq!(run.interval_start, day(1));
    assert_eq!(run.interval_end, day(2));
    assert_eq!(run.conf, first.conf, "conf must round-trip");
    assert_eq!(run.state, RunState::Queued, "a new run is queued");
    assert_eq!(run.started_at, None);
    assert_eq!(run.ended_at, None);

    let same_key = store.create_run(&first).await.expect("create_run again");
    assert_eq!(
        same_key, None,
        "the same run key must not create a second run"
    );

    let other_key = new_run(&dag, "scheduled__other", RunType::Scheduled, day(1));
    assert_eq!(
        store.create_run(&other_key).await.expect("create_run"),
        None,
        "a second scheduled run for the same slot must be refused"
    );
    let backfill = new_run(&dag, "backfill__2026-01-02", RunType::Backfill, day(1));
    assert_eq!(
        store.create_run(&backfill).await.expect("create_run"),
        None,
        "a backfill run for a slot that has a run must be refused"
    );

    let manual = new_run(&dag, "manual__now", RunType::Manual, day(1));
    let manual_id = store
        .create_run(&manual)
        .await
        .expect("create_run manual")
        .expect("a manual run at an occupied logical date is allowed");
    assert_ne!(manual_id, id);
    let manual_key_again = new_run(&dag, "manual__now", RunType::Manual, day(7));
    assert_eq!(
        store
            .create_run(&manual_key_again)
            .await
            .expect("create_run"),
        None,
        "a run key is unique within a DAG, for manual runs too"
    );

    let backfill_free = new_run(&dag, "backfill__2026-01-04", RunType::Backfill, day(3));
    let backfill_id = create(store, &backfill_free).await;
    let scheduled_there = new_run(&dag, "scheduled__2026-01-04", RunType::Scheduled, day(3));
    assert_eq!(
        store
            .create_run(&scheduled_there)
            .await
            .expect("create_run"),
        None,
        "a scheduled run for a slot a backfill run took must be refused"
    );

    let runs = store
        .list_runs(&RunFilter {
            dag_id: Some(dag.dag.id.clone()),
            ..RunFilter::default()
        })
        .await
        .expect("list_runs");
    let listed: BTreeSet<RunId> = runs.iter().map(|r| r.id).collect();
    assert_eq!(
        listed,
        BTreeSet::from([id, manual_id, backfill_id]),
        "exactly the three accepted runs exist: {runs:#?}"
    );
    assert_eq!(
        store
            .count_active_runs(dag.id())
            .await
            .expect("count_active_runs"),
        3
    );
    // Refused runs left no task instances behind.
    assert_eq!(tasks_of(store, id).await.len(), 2);
}

/// A scheduled run moves the DAG's `last_interval_end` forward (never back); other
/// run types do not move it.
pub async fn create_run_moves_cursor<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/etl.yaml", ETL_V1).await;
    let cursor = async || {
        store
            .get_dag(dag.id())
            .await
            .expect("get_dag")
            .unwrap()
            .last_interval_end
    };
    assert_eq!(cursor().await, None);

    create(
        store,
        &new_run(&dag, "scheduled__1", RunType::Scheduled, day(1)),
    )
    .await;
    assert_eq!(
        cursor().await,
        Some(day(2)),
        "a scheduled run must move last_interval_end to its interval end"
    );

    create(
        store,
        &new_run(&dag, "scheduled__0", RunType::Scheduled, day(0)),
    )
    .await;
    assert_eq!(
        cursor().await,
        Some(day(2)),
        "an earlier scheduled run must not move the cursor back"
    );

    create(store, &new_run(&dag, "manual__9", RunType::Manual, day(9))).await;
    create(
        store,
        &new_run(&dag, "backfill__8", RunType::Backfill, day(8)),
    )
    .await;
    assert_eq!(
        cursor().await,
        Some(day(2)),
        "manual and backfill runs must not move the cursor"
    );

    create(
        store,
        &new_run(&dag, "scheduled__4", RunType::Scheduled, day(4)),
    )
    .await;
    assert_eq!(cursor().await, Some(day(5)));
}

/// A new run's task instances are `none` with try number 0 and the given limits.
pub async fn create_run_task_instances<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/etl.yaml", ETL_V1).await;
    let run = create(store, &new_run(&dag, "manual__1", RunType::Manual, day(1))).await;
    let rows = tasks_of(store, run).await;
    assert_eq!(rows.len(), 2, "one task instance per task: {rows:#?}");
    for t in &rows {
        assert_eq!(t.run_id, run);
        assert_eq!(t.dag_id, dag.dag.id);
        assert_eq!(t.state, TaskState::None, "{} starts in none", t.task_id);
        assert_eq!(t.try_number, 0, "{} starts at try 0", t.task_id);
        assert_eq!(t.worker_id, None);
        assert_eq!(t.heartbeat_at, None);
        assert_eq!(t.queued_at, None);
        assert_eq!(t.started_at, None);
        assert_eq!(t.ended_at, None);
        assert_eq!(t.retry_at, None);
        assert!(t.outputs.is_empty());
    }
    let extract = find(&rows, "extract");
    assert_eq!(extract.max_tries, 3);
    assert_eq!(extract.queue, "default");
    assert_eq!(extract.priority, 5);
    let load = find(&rows, "load");
    assert_eq!(load.max_tries, 1);
    assert_eq!(load.queue, "io");
    assert_eq!(load.priority, 0);
    assert_ne!(extract.id, load.id);

    let other = create(store, &new_run(&dag, "manual__2", RunType::Manual, day(2))).await;
    let other_ids = ids(&tasks_of(store, other).await);
    assert!(
        ids(&rows).is_disjoint(&other_ids),
        "task instance ids must be unique across runs"
    );
}

/// `promote_runs` starts queued runs oldest logical date first, never more than
/// `max_active_runs` running per DAG.
pub async fn promote_runs_respects_max_active_runs<S: Store + ?Sized>(store: &S) {
    let serial = seed(store, "dags/serial.yaml", &flat_dag_source("serial", 1, "")).await;
    assert_eq!(serial.dag.max_active_runs, 1);
    // Created newest first, so creation order and logical date order differ.
    let later = create(
        store,
        &new_run(&serial, "scheduled__2", RunType::Scheduled, day(2)),
    )
    .await;
    let older = create(
        store,
        &new_run(&serial, "scheduled__1", RunType::Scheduled, day(1)),
    )
    .await;
    let wide = seed(
        store,
        "dags/wide.yaml",
        &flat_dag_source("wide", 1, "max_active_runs: 2"),
    )
    .await;
    let mut wide_runs = Vec::new();
    for d in 1..=3 {
        wide_runs.push(
            create(
                store,
                &new_run(
                    &wide,
                    &format!("scheduled__{d}"),
                    RunType::Scheduled,
                    day(d),
                ),
            )
            .await,
        );
    }

    let promoted: BTreeSet<RunId> = store
        .promote_runs()
        .await
        .expect("promote_runs")
        .into_iter()
        .collect();
    assert_eq!(
        promoted,
        BTreeSet::from([older, wide_runs[0], wide_runs[1]]),
        "only the oldest run of a max_active_runs=1 DAG and the two oldest of a \
         max_active_runs=2 DAG may start"
    );
    let run = store.get_run(older).await.expect("get_run").unwrap();
    assert_eq!(run.state, RunState::Running);
    assert!(run.started_at.is_some(), "a promoted run has started_at");
    let run = store.get_run(later).await.expect("get_run").unwrap();
    assert_eq!(run.state, RunState::Queued);
    assert_eq!(
        store.count_active_runs(serial.id()).await.expect("count"),
        2,
        "queued plus running"
    );
    let running: BTreeSet<RunId> = store
        .running_runs(RunId(0), 100)
        .await
        .expect("running_runs")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(running, promoted);

    assert!(
        store.promote_runs().await.expect("promote_runs").is_empty(),
        "nothing more may start while the limits are reached"
    );

    assert!(
        store
            .finish_run(older, RunState::Success, &[])
            .await
            .expect("finish_run"),
        "finish_run of a running run"
    );
    let run = store.get_run(older).await.expect("get_run").unwrap();
    assert_eq!(run.state, RunState::Success);
    assert!(run.ended_at.is_some());
    assert!(
        !store
            .finish_run(older, RunState::Failed, &[])
            .await
            .expect("finish_run again"),
        "finish_run of a finished run must return false"
    );
    assert_eq!(
        store.get_run(older).await.expect("get_run").unwrap().state,
        RunState::Success,
        "a second finish_run must not change the state"
    );
    assert!(
        !store
            .finish_run(later, RunState::Success, &[])
            .await
            .expect("finish_run of a queued run"),
        "finish_run of a queued run must return false"
    );

    assert_eq!(
        store.promote_runs().await.expect("promote_runs"),
        vec![later],
        "after the running run finished, the next one starts"
    );
    assert_eq!(
        store.get_run(later).await.expect("get_run").unwrap().state,
        RunState::Running
    );
}

/// `promote_runs` leaves the queued runs of a paused DAG alone.
pub async fn promote_runs_skips_paused_dags<S: Store + ?Sized>(store: &S) {
    let held = seed(store, "dags/held.yaml", &flat_dag_source("held", 1, "")).await;
    assert!(store.set_paused(held.id(), true).await.expect("set_paused"));
    let run = create(store, &new_run(&held, "manual__1", RunType::Manual, day(1))).await;
    assert!(
        store.promote_runs().await.expect("promote_runs").is_empty(),
        "a paused DAG's runs must not start"
    );
    assert_eq!(
        store.get_run(run).await.expect("get_run").unwrap().state,
        RunState::Queued
    );
    assert!(
        store
            .set_paused(held.id(), false)
            .await
            .expect("set_paused")
    );
    assert_eq!(
        store.promote_runs().await.expect("promote_runs"),
        vec![run],
        "once unpaused, the run starts"
    );
}

/// The batched calls a scheduler makes when many DAGs share a slot or many
/// runs move: `create_runs` makes each run as `create_run` would (one per
/// slot, the cursor moved, its task instances), answering `None` for a slot
/// that had a run and for a DAG that does not exist while the others are
/// made; `get_dags` and `count_active_runs_of` read several DAGs at once;
/// `running_runs` pages from a run id and `running_runs_by_id` answers only
/// running runs.
pub async fn batched_runs_and_reads<S: Store + ?Sized>(store: &S) {
    let etl = seed(store, "dags/etl.yaml", ETL_V1).await;
    let flat = seed(store, "dags/flat.yaml", &flat_dag_source("flat", 3, "")).await;
    let wide = seed(store, "dags/wide.yaml", &flat_dag_source("wide", 19, "")).await;
    let taken = create(
        store,
        &new_run(&etl, "scheduled__taken", RunType::Scheduled, day(1)),
    )
    .await;

    let mut gone = new_run(&etl, "scheduled__gone", RunType::Scheduled, day(5));
    gone.dag_id = DagId("no_such_dag".into());
    let batch = [
        new_run(&etl, "scheduled__d2", RunType::Scheduled, day(2)),
        new_run(&etl, "scheduled__again", RunType::Scheduled, day(1)),
        gone,
        new_run(&flat, "scheduled__f2", RunType::Scheduled, day(2)),
    ];
    let made = store.create_runs(&batch).await.expect("create_runs");
    assert_eq!(made.len(), 4, "one answer per run: {made:?}");
    assert_eq!(made[1], None, "a slot that has a run gets no second one");
    assert_eq!(made[2], None, "no run for a DAG that does not exist");
    let (etl_run, flat_run) = (
        made[0].expect("etl's new slot gets a run"),
        made[3].expect("flat's slot gets a run"),
    );
    assert_ne!(etl_run, flat_run);
    assert_eq!(tasks_of(store, etl_run).await.len(), 2);
    assert_eq!(tasks_of(store, flat_run).await.len(), 3);
    let rows = store
        .get_dags(&[
            flat.id().clone(),
            DagId("no_such_dag".into()),
            etl.id().clone(),
        ])
        .await
        .expect("get_dags");
    let ids: Vec<&str> = rows.iter().map(|r| r.dag_id.as_str()).collect();
    assert_eq!(ids, ["etl", "flat"], "the existing ones, by id");
    assert_eq!(
        rows[0].last_interval_end,
        Some(day(3)),
        "the batch moved etl's cursor past its newest slot"
    );
    assert_eq!(rows[1].last_interval_end, Some(day(3)));
    assert!(
        store.create_runs(&[]).await.expect("no runs").is_empty(),
        "an empty batch makes nothing"
    );

    let mut active = store
        .count_active_runs_of(&[etl.id().clone(), flat.id().clone(), DagId("x".into())])
        .await
        .expect("count_active_runs_of");
    active.sort();
    assert_eq!(
        active,
        [(etl.id().clone(), 2), (flat.id().clone(), 1)],
        "queued runs count; a DAG without any is left out"
    );

    // Running runs, a page at a time and by id.
    let started = store.promote_runs().await.expect("promote_runs");
    assert_eq!(
        started.iter().copied().collect::<BTreeSet<RunId>>(),
        BTreeSet::from([taken, etl_run, flat_run])
    );
    let mut all = [taken, etl_run, flat_run];
    all.sort();
    let first = store.running_runs(RunId(0), 2).await.expect("running_runs");
    let first: Vec<RunId> = first.iter().map(|r| r.id).collect();
    assert_eq!(first, all[..2], "the lowest ids first");
    let rest = store.running_runs(first[1], 2).await.expect("running_runs");
    let rest: Vec<RunId> = rest.iter().map(|r| r.id).collect();
    assert_eq!(rest, all[2..], "the page after the last one read");
    assert!(
        store
            .finish_run(taken, RunState::Success, &[])
            .await
            .expect("finish_run")
    );
    let by_id = store
        .running_runs_by_id(&[flat_run, taken, RunId(999_999)])
        .await
        .expect("running_runs_by_id");
    let by_id: Vec<RunId> = by_id.iter().map(|r| r.id).collect();
    assert_eq!(
        by_id,
        [flat_run],
        "a finished run and an unknown id are left out"
    );
    // More task instances than one statement inserts (SQLite: 8), each once
    // and with its own fields.
    let wide_run = store
        .create_runs(&[new_run(&wide, "scheduled__w2", RunType::Scheduled, day(2))])
        .await
        .expect("create_runs")[0]
        .expect("wide's slot gets a run");
    let wide_tasks = tasks_of(store, wide_run).await;
    assert_eq!(wide_tasks.len(), 19, "{wide_tasks:?}");
    let mut ids: Vec<&str> = wide_tasks.iter().map(|t| t.task_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 19, "{wide_tasks:?}");
    for t in &wide_tasks {
        let i: i32 = t.task_id.as_str()[1..].parse().expect("t<i>");
        assert_eq!(
            (t.priority, t.queue.as_str(), t.state),
            (20 - i, "default", TaskState::None),
            "{t:?}"
        );
    }
}
