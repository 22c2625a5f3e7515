//! Conformance checks: Backfills and their progress.

use super::*;

/// A backfill reports the backfill runs of its DAG with a logical date in its
/// range (bounds included) by state; backfills are listed newest first.
pub async fn backfills_progress<S: Store + ?Sized>(store: &S) {
    let dag = seed(
        store,
        "dags/bf.yaml",
        &flat_dag_source("bf", 1, "max_active_runs: 10"),
    )
    .await;
    let other = seed(
        store,
        "dags/bf_other.yaml",
        &flat_dag_source("bf_other", 1, ""),
    )
    .await;
    let started = store.now().await.expect("now");
    let b1 = store
        .create_backfill(dag.id(), day(1), day(4), Some("dora"))
        .await
        .expect("create_backfill");

    let backfill = async |d: &Seeded, n: i64| {
        create(
            store,
            &new_run(d, &format!("backfill__{n}"), RunType::Backfill, day(n)),
        )
        .await
    };
    let first = backfill(&dag, 1).await;
    let second = backfill(&dag, 2).await;
    // Not counted: before and after the range, not backfill runs, another DAG.
    backfill(&dag, 0).await;
    backfill(&dag, 5).await;
    create(
        store,
        &new_run(&dag, "scheduled__3", RunType::Scheduled, day(3)),
    )
    .await;
    create(store, &new_run(&dag, "manual__2", RunType::Manual, day(2))).await;
    backfill(&other, 2).await;
    assert_eq!(
        store.promote_runs().await.expect("promote_runs").len(),
        7,
        "every run starts"
    );
    assert!(
        store
            .finish_run(first, RunState::Success, &[])
            .await
            .expect("finish_run")
    );
    assert!(
        store
            .finish_run(second, RunState::Failed, &[])
            .await
            .expect("finish_run")
    );
    // On the upper bound, still queued.
    backfill(&dag, 4).await;

    let expected = counted(&[("failed", 1), ("queued", 1), ("success", 1)]);
    let as_counts = |runs: &BTreeMap<String, u32>| -> BTreeMap<String, u64> {
        runs.iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| (k.clone(), u64::from(*n)))
            .collect()
    };
    let row = store
        .get_backfill(b1)
        .await
        .expect("get_backfill")
        .expect("the backfill");
    assert_eq!(row.id, b1);
    assert_eq!(&row.dag_id, dag.id());
    assert_eq!((row.from_date, row.to_date), (day(1), day(4)));
    assert_eq!(row.created_by.as_deref(), Some("dora"));
    assert!(
        row.created_at >= started,
        "created_at is the store's now: {row:#?}"
    );
    assert_eq!(
        as_counts(&row.runs),
        expected,
        "only the DAG's backfill runs with a logical date in the range (bounds \
         included) are counted, by state: {row:#?}"
    );

    let b2 = store
        .create_backfill(dag.id(), day(5), day(5), None)
        .await
        .expect("create_backfill");
    let b3 = store
        .create_backfill(other.id(), day(10), day(12), Some("erin"))
        .await
        .expect("create_backfill");
    let row = store.get_backfill(b2).await.expect("get_backfill").unwrap();
    assert_eq!(row.created_by, None);
    assert_eq!(
        as_counts(&row.runs),
        counted(&[("running", 1)]),
        "a one-day range counts its day's run: {row:#?}"
    );
    let row = store.get_backfill(b3).await.expect("get_backfill").unwrap();
    assert!(
        as_counts(&row.runs).is_empty(),
        "a backfill without runs yet counts none: {row:#?}"
    );

    let listed = store
        .list_backfills(Some(dag.id()), 10)
        .await
        .expect("list_backfills");
    assert_eq!(
        listed.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![b2, b1],
        "a DAG's backfills, newest first"
    );
    assert_eq!(
        as_counts(&listed[1].runs),
        expected,
        "listed backfills carry their progress"
    );
    let all = store
        .list_backfills(None, 10)
        .await
        .expect("list_backfills");
    assert_eq!(
        all.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![b3, b2, b1],
        "every backfill, newest first"
    );
    let limited = store.list_backfills(None, 2).await.expect("list_backfills");
    assert_eq!(
        limited.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![b3, b2],
        "list_backfills respects the limit"
    );
    assert!(
        store
            .list_backfills(Some(&DagId::from("nope")), 10)
            .await
            .expect("list_backfills")
            .is_empty()
    );
    assert!(
        store
            .get_backfill(b3 + 1_000_000)
            .await
            .expect("get_backfill")
            .is_none(),
        "an unknown backfill is None"
    );
}

/// `cancel_backfill` records the backfill cancelled once (its state is then
/// `cancelled`); a second cancel and an unknown id say so.
pub async fn cancel_backfill_once<S: Store + ?Sized>(store: &S) {
    use crate::{BackfillState, CancelBackfill};
    let dag = seed(store, "dags/bfc.yaml", &flat_dag_source("bfc", 1, "")).await;
    let id = store
        .create_backfill(dag.id(), day(1), day(2), None)
        .await
        .expect("create_backfill");
    create(
        store,
        &new_run(&dag, "backfill__1", RunType::Backfill, day(1)),
    )
    .await;
    let row = store.get_backfill(id).await.expect("get_backfill").unwrap();
    assert_eq!(row.state(), BackfillState::Running, "{row:#?}");
    assert_eq!(row.cancelled_at, None);
    assert_eq!(
        store.cancel_backfill(id).await.expect("cancel_backfill"),
        CancelBackfill::Cancelled
    );
    let row = store.get_backfill(id).await.expect("get_backfill").unwrap();
    assert!(row.cancelled_at.is_some(), "{row:#?}");
    assert_eq!(row.state(), BackfillState::Cancelled);
    assert_eq!(
        store.cancel_backfill(id).await.expect("cancel_backfill"),
        CancelBackfill::AlreadyCancelled
    );
    assert_eq!(
        store
            .cancel_backfill(id + 1000)
            .await
            .expect("cancel_backfill"),
        CancelBackfill::NotFound
    );
}
