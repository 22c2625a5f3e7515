//! Conformance checks: The listings the web pages and metrics read.

use super::*;

fn nonzero(counts: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| (k.clone(), *n))
        .collect()
}

pub(super) fn counted(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// `list_runs` pages newest first with `before`, and filters by run type;
/// `recent_runs` gives each DAG's newest runs; `tasks_of_runs` the task
/// instances of exactly the runs given; `counts` the unfinished runs and task
/// instances by state; `list_versions` a DAG's versions, newest first.
pub async fn listing_for_the_web<S: Store + ?Sized>(store: &S) {
    let alpha = seed(store, "dags/alpha.yaml", &flat_dag_source("alpha", 2, "")).await;
    let etl = seed(store, "dags/etl.yaml", ETL_V1).await;
    let a1 = create(
        store,
        &new_run(&alpha, "scheduled__1", RunType::Scheduled, day(1)),
    )
    .await;
    let e1 = create(
        store,
        &new_run(&etl, "scheduled__1", RunType::Scheduled, day(1)),
    )
    .await;
    let a2 = create(
        store,
        &new_run(&alpha, "manual__2", RunType::Manual, day(2)),
    )
    .await;
    let e2 = create(store, &new_run(&etl, "manual__2", RunType::Manual, day(2))).await;
    let a3 = create(
        store,
        &new_run(&alpha, "backfill__3", RunType::Backfill, day(3)),
    )
    .await;
    let newest_first = vec![a3, e2, a2, e1, a1];

    // Paging: every run once, newest first.
    let mut walked = Vec::new();
    let mut before = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_runs(&RunFilter {
                before,
                limit: 2,
                ..RunFilter::default()
            })
            .await
            .expect("list_runs");
        assert!(page.len() <= 2, "list_runs must respect the limit");
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        walked.extend(page.iter().map(|r| r.id));
        pages += 1;
        assert!(pages <= 10, "paging does not end: {walked:?}");
    }
    assert_eq!(
        walked, newest_first,
        "paging with `before` walks every run once, newest first"
    );
    assert_eq!(pages, 3, "5 runs in pages of 2");
    let page = store
        .list_runs(&RunFilter {
            dag_id: Some(alpha.id().clone()),
            before: Some(a3),
            ..RunFilter::default()
        })
        .await
        .expect("list_runs");
    assert_eq!(
        page.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a2, a1],
        "`before` combines with the other filters"
    );

    let of_type = async |dag_id: Option<&DagId>, run_type| {
        store
            .list_runs(&RunFilter {
                dag_id: dag_id.cloned(),
                run_type: Some(run_type),
                ..RunFilter::default()
            })
            .await
            .expect("list_runs")
            .iter()
            .map(|r| {
                assert_eq!(r.run_type, run_type, "the run_type filter: {r:#?}");
                r.id
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(of_type(None, RunType::Manual).await, vec![e2, a2]);
    assert_eq!(of_type(None, RunType::Scheduled).await, vec![e1, a1]);
    assert_eq!(of_type(None, RunType::Backfill).await, vec![a3]);
    assert_eq!(
        of_type(Some(etl.id()), RunType::Manual).await,
        vec![e2],
        "run_type combines with dag_id"
    );
    assert!(of_type(Some(etl.id()), RunType::Backfill).await.is_empty());

    // recent_runs: at most `per_dag` per DAG, newest first within each.
    let per_dag = |runs: &[RunRow], dag: &DagId| -> Vec<RunId> {
        runs.iter()
            .filter(|r| &r.dag_id == dag)
            .map(|r| r.id)
            .collect()
    };
    let both = [alpha.id().clone(), etl.id().clone()];
    let recent = store.recent_runs(&both, 2).await.expect("recent_runs");
    assert_eq!(recent.len(), 4, "two runs of each of two DAGs: {recent:#?}");
    assert_eq!(per_dag(&recent, alpha.id()), vec![a3, a2]);
    assert_eq!(per_dag(&recent, etl.id()), vec![e2, e1]);
    let recent = store.recent_runs(&both, 10).await.expect("recent_runs");
    assert_eq!(per_dag(&recent, alpha.id()), vec![a3, a2, a1]);
    assert_eq!(per_dag(&recent, etl.id()), vec![e2, e1]);
    let recent = store
        .recent_runs(std::slice::from_ref(etl.id()), 10)
        .await
        .expect("recent_runs");
    assert_eq!(
        per_dag(&recent, alpha.id()),
        Vec::<RunId>::new(),
        "only the DAGs named"
    );
    assert_eq!(per_dag(&recent, etl.id()), vec![e2, e1]);

    // tasks_of_runs: the task instances of exactly the runs given.
    let mut expected = ids(&tasks_of(store, a1).await);
    expected.extend(ids(&tasks_of(store, e2).await));
    let got = store.tasks_of_runs(&[a1, e2]).await.expect("tasks_of_runs");
    assert_eq!(got.len(), 4, "two task instances in each run: {got:#?}");
    assert_eq!(
        ids(&got),
        expected,
        "tasks_of_runs returns the runs' task instances"
    );
    assert!(
        store
            .tasks_of_runs(&[])
            .await
            .expect("tasks_of_runs")
            .is_empty(),
        "no runs, no task instances"
    );
    assert!(
        store
            .tasks_of_runs(&[RunId(999_999)])
            .await
            .expect("tasks_of_runs")
            .is_empty()
    );

    // counts (unfinished work only): runs running a1 and e2, queued a2 and a3,
    // e1 failed (not counted).
    let promoted: BTreeSet<RunId> = store
        .promote_runs()
        .await
        .expect("promote_runs")
        .into_iter()
        .collect();
    assert_eq!(promoted, BTreeSet::from([a1, e1, e2]));
    assert!(
        store
            .finish_run(e1, RunState::Failed, &[])
            .await
            .expect("finish_run")
    );
    // Tasks: a1's t1, t2 and e2's load queued, e2's extract running, the other
    // five none; e1's extract skipped (not counted).
    queue_tasks(store, alpha.id(), a1, &["t1", "t2"]).await;
    queue_tasks(store, etl.id(), e2, &["extract", "load"]).await;
    let claims = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 1);
    assert_eq!(
        (claims[0].task.run_id, claims[0].task.task_id.as_str()),
        (e2, "extract"),
        "the highest priority is claimed"
    );
    let e1_extract = ti_of(store, e1, "extract").await.id;
    assert_eq!(
        store
            .apply_transitions(&[Transition {
                ti: e1_extract,
                from: TaskState::None,
                to: TaskState::Skipped,
                retry_at: None,
            }])
            .await
            .expect("apply_transitions"),
        1
    );
    let counts = store.counts().await.expect("counts");
    assert_eq!(
        nonzero(&counts.runs_by_state),
        counted(&[("queued", 2), ("running", 2)]),
        "queued and running runs by state (finished ones are not counted): {counts:#?}"
    );
    assert_eq!(
        nonzero(&counts.tasks_by_state),
        counted(&[("none", 5), ("queued", 3), ("running", 1)]),
        "unfinished task instances by state (finished ones are not counted): {counts:#?}"
    );
    assert_eq!(
        nonzero(&counts.queued_by_queue),
        counted(&[("default", 2), ("io", 1)]),
        "queued task instances by queue: {counts:#?}"
    );

    // list_versions: newest first.
    let etl2 = seed(store, "dags/etl.yaml", ETL_V2).await;
    let versions = store.list_versions(etl.id()).await.expect("list_versions");
    assert_eq!(
        versions
            .iter()
            .map(|v| v.version_hash.as_str())
            .collect::<Vec<_>>(),
        vec![etl2.hash.as_str(), etl.hash.as_str()],
        "both versions, newest first: {versions:#?}"
    );
    assert!(versions.iter().all(|v| v.file == "dags/etl.yaml"));
    assert!(versions[0].created_at >= versions[1].created_at);
    let alpha_versions = store
        .list_versions(alpha.id())
        .await
        .expect("list_versions");
    assert_eq!(alpha_versions.len(), 1);
    assert_eq!(alpha_versions[0].version_hash, alpha.hash);
    assert!(
        store
            .list_versions(&DagId::from("nope"))
            .await
            .expect("list_versions")
            .is_empty()
    );
}

/// `dag_history` gives a DAG's newest runs, newest first, each with its task
/// instances by task id (tries, start and end of the last try), bounded by
/// its limit; `daily_runs` counts a DAG's runs per UTC day of the logical date
/// and state, from `since`, never more than `DAILY_MAX_DAYS` before its newest
/// run.
pub async fn history_and_calendar<S: Store + ?Sized>(store: &S) {
    let dag = seed(
        store,
        "dags/hist.yaml",
        &flat_dag_source("hist", 2, "max_active_runs: 10"),
    )
    .await;
    let other = seed(store, "dags/other.yaml", &flat_dag_source("other", 1, "")).await;
    let old = create(
        store,
        &new_run(&dag, "manual__old", RunType::Manual, day(-500)),
    )
    .await;
    let r1 = create(
        store,
        &new_run(&dag, "scheduled__1", RunType::Scheduled, day(1)),
    )
    .await;
    let late = Timestamp::from_second(day(2).as_second() + 3_600).expect("a valid timestamp");
    let r2 = create(store, &new_run(&dag, "manual__2a", RunType::Manual, day(2))).await;
    let r3 = create(store, &new_run(&dag, "manual__2b", RunType::Manual, late)).await;
    create(
        store,
        &new_run(&other, "scheduled__2", RunType::Scheduled, day(2)),
    )
    .await;
    store.promote_runs().await.expect("promote_runs");

    // r1's t1 fails its first try and succeeds on the second; t2 never starts.
    queue_tasks(store, dag.id(), r1, &["t1"]).await;
    let claimed = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "t1 of r1 is claimed");
    let ti = claimed[0].task.id;
    assert!(
        store
            .finish_attempt(&finish(ti, 1, "w1", TaskState::UpForRetry, "failed"))
            .await
            .expect("finish_attempt")
    );
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
    store.enqueue(dag.id(), &[ti], None).await.expect("enqueue");
    let claimed = store
        .claim(&"w1".into(), "host-1", &queues(&["default"]), 1)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "the retry is claimed");
    assert!(
        store
            .finish_attempt(&finish(ti, 2, "w1", TaskState::Success, "success"))
            .await
            .expect("finish_attempt")
    );
    assert!(
        store
            .finish_run(r1, RunState::Failed, &[])
            .await
            .expect("finish_run")
    );

    let history = store.dag_history(dag.id(), 3).await.expect("dag_history");
    assert_eq!(
        history.iter().map(|h| h.run.id).collect::<Vec<_>>(),
        vec![r3, r2, r1],
        "the newest `limit` runs of the DAG, newest first"
    );
    let first = &history[2];
    assert_eq!(first.run.state, RunState::Failed);
    let task_ids: Vec<&str> = first.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(task_ids, vec!["t1", "t2"], "each run's tasks by task id");
    let t1 = &first.tasks[0];
    assert_eq!(t1.try_number, 2, "two tries of t1: {t1:#?}");
    assert_eq!(t1.state, TaskState::Success);
    let (Some(start), Some(end)) = (t1.started_at, t1.ended_at) else {
        panic!("a finished try has a start and an end: {t1:#?}");
    };
    assert!(start <= end, "the try ends after it starts: {t1:#?}");
    let t2 = &first.tasks[1];
    assert_eq!(
        (t2.try_number, t2.started_at, t2.ended_at),
        (0, None, None),
        "a task never claimed has no try: {t2:#?}"
    );
    assert!(
        history[0]
            .tasks
            .iter()
            .all(|t| t.try_number == 0 && t.state == TaskState::None),
        "a run not yet started: {:#?}",
        history[0]
    );
    let all = store.dag_history(dag.id(), 0).await.expect("dag_history");
    assert_eq!(
        all.iter().map(|h| h.run.id).collect::<Vec<_>>(),
        vec![r3, r2, r1, old],
        "0 is the default limit, which covers four runs"
    );
    assert!(
        all.iter().all(|h| h.run.dag_id == *dag.id()),
        "only the DAG's own runs"
    );
    let capped = store
        .dag_history(dag.id(), u32::MAX)
        .await
        .expect("dag_history");
    assert_eq!(capped.len(), 4, "a huge limit is capped, not refused");
    assert!(
        store
            .dag_history(&DagId("absent".into()), 10)
            .await
            .expect("dag_history")
            .is_empty(),
        "a DAG without runs has no history"
    );

    let date = |n: i64| day(n).to_zoned(jiff::tz::TimeZone::UTC).date();
    let days = store
        .daily_runs(dag.id(), day(0))
        .await
        .expect("daily_runs");
    assert_eq!(
        days,
        vec![
            crate::DayRuns {
                day: date(1),
                state: RunState::Failed,
                n_runs: 1
            },
            crate::DayRuns {
                day: date(2),
                state: RunState::Running,
                n_runs: 2
            },
        ],
        "per UTC day and state, oldest first; the other DAG's run is not counted"
    );
    let days = store
        .daily_runs(dag.id(), day(-1000))
        .await
        .expect("daily_runs");
    assert!(
        days.iter().all(|d| d.day >= date(1)),
        "a run more than DAILY_MAX_DAYS before the newest is left out: {days:#?}"
    );
    let days = store.daily_runs(dag.id(), late).await.expect("daily_runs");
    assert_eq!(
        days.iter().map(|d| (d.day, d.n_runs)).collect::<Vec<_>>(),
        vec![(date(2), 1)],
        "`since` is a time, not a day: only the run at or after it"
    );
    assert!(
        store
            .daily_runs(&DagId("absent".into()), day(0))
            .await
            .expect("daily_runs")
            .is_empty()
    );
}
