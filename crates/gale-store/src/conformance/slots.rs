//! Conformance checks: The schedule-slot ledger.

use super::*;

/// Every slot is recorded once: `create_run` records scheduled and backfill runs'
/// slots as `run`; `record_slots` records passed-over ones without overwriting,
/// and moves the DAG's cursor; a backfill later turns a skipped slot into a run.
pub async fn slot_ledger<S: Store + ?Sized>(store: &S) {
    let dag = seed(store, "dags/ledger.yaml", &flat_dag_source("ledger", 1, "")).await;
    let run1 = create(
        store,
        &new_run(&dag, "scheduled__1", RunType::Scheduled, day(1)),
    )
    .await;
    let _manual = create(store, &new_run(&dag, "manual__x", RunType::Manual, day(9))).await;
    let n = store
        .record_slots(
            dag.id(),
            SlotStatus::Missed,
            &[(day(2), day(3)), (day(3), day(4))],
        )
        .await
        .expect("record_slots");
    assert_eq!(n, 2);
    let again = store
        .record_slots(
            dag.id(),
            SlotStatus::Skipped,
            &[(day(1), day(2)), (day(3), day(4))],
        )
        .await
        .expect("record_slots");
    assert_eq!(again, 0, "a slot is recorded once");
    assert_eq!(
        store
            .get_dag(dag.id())
            .await
            .expect("get_dag")
            .expect("dag")
            .last_interval_end,
        Some(day(4)),
        "passing over slots moves the cursor past them"
    );
    let slots = store.list_slots(dag.id(), 10).await.expect("list_slots");
    let seen: Vec<(Timestamp, SlotStatus, Option<RunId>)> = slots
        .iter()
        .map(|s| (s.logical_date, s.status, s.run_id))
        .collect();
    assert_eq!(
        seen,
        vec![
            (day(3), SlotStatus::Missed, None),
            (day(2), SlotStatus::Missed, None),
            (day(1), SlotStatus::Run, Some(run1)),
        ],
        "newest first; manual runs are not slots"
    );
    assert_eq!(slots[0].interval_end, day(4));
    let backfill = create(
        store,
        &new_run(&dag, "backfill__2", RunType::Backfill, day(2)),
    )
    .await;
    let slots = store.list_slots(dag.id(), 1).await.expect("list_slots");
    assert_eq!(slots.len(), 1, "the limit applies");
    let slots = store.list_slots(dag.id(), 10).await.expect("list_slots");
    let day2 = slots
        .iter()
        .find(|s| s.logical_date == day(2))
        .expect("day 2");
    assert_eq!(
        (day2.status, day2.run_id),
        (SlotStatus::Run, Some(backfill))
    );
}
