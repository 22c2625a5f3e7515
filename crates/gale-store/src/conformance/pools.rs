//! Conformance checks: Pools: slots shared across DAGs.

use super::*;

/// A pool caps queued plus running task instances across DAGs; a task whose
/// pool does not exist stays scheduled; tasks without a pool are not held back.
pub async fn enqueue_respects_pools<S: Store + ?Sized>(store: &S) {
    store
        .set_pool("db", 2, Some("the warehouse"))
        .await
        .expect("set_pool");
    let a = seed(
        store,
        "dags/pa.yaml",
        "id: pa\ntasks:\n  p1: {run: 'true', pool: db}\n  p2: {run: 'true', pool: db}\n  free: {run: 'true'}\n  ghost: {run: 'true', pool: nowhere}\n",
    )
    .await;
    let b = seed(
        store,
        "dags/pb.yaml",
        "id: pb\ntasks:\n  p1: {run: 'true', pool: db}\n",
    )
    .await;
    let run_a = create(store, &new_run(&a, "manual__a", RunType::Manual, day(1))).await;
    let run_b = create(store, &new_run(&b, "manual__b", RunType::Manual, day(1))).await;
    assert_eq!(
        ti_of(store, run_a, "p1").await.pool.as_deref(),
        Some("db"),
        "a task instance keeps its task's pool"
    );
    // pb's task takes one of the two slots first.
    let tis_b = schedule_tasks(store, run_b, &["p1"]).await;
    assert_eq!(
        store.enqueue(b.id(), &tis_b, None).await.expect("enqueue"),
        1
    );
    let tis_a = schedule_tasks(store, run_a, &["p1", "p2", "free", "ghost"]).await;
    let n = store.enqueue(a.id(), &tis_a, None).await.expect("enqueue");
    assert_eq!(n, 2, "one pool slot left, plus the task without a pool");
    let rows = tasks_of(store, run_a).await;
    assert_eq!(find(&rows, "p1").state, TaskState::Queued);
    assert_eq!(
        find(&rows, "p2").state,
        TaskState::Scheduled,
        "the pool is full"
    );
    assert_eq!(find(&rows, "free").state, TaskState::Queued);
    assert_eq!(
        find(&rows, "ghost").state,
        TaskState::Scheduled,
        "a missing pool holds its tasks back"
    );
    let pools = store.list_pools().await.expect("list_pools");
    assert_eq!(pools.len(), 1, "{pools:?}");
    assert_eq!(
        (pools[0].slots, pools[0].queued, pools[0].running),
        (2, 2, 0)
    );
    assert_eq!(pools[0].description.as_deref(), Some("the warehouse"));

    // A claimed (running) attempt still holds its slot; a finished one frees it.
    let claims = store
        .claim(&"w1".into(), "host", &queues(&["default"]), 10)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 3);
    let p2 = find(&rows, "p2").id;
    assert_eq!(
        store.enqueue(a.id(), &[p2], None).await.expect("enqueue"),
        0
    );
    let first = claims
        .iter()
        .find(|c| c.task.pool.as_deref() == Some("db"))
        .expect("a claimed pool task");
    assert!(
        store
            .finish_attempt(&finish(
                first.task.id,
                1,
                "w1",
                TaskState::Success,
                "success"
            ))
            .await
            .expect("finish_attempt")
    );
    assert_eq!(
        store.enqueue(a.id(), &[p2], None).await.expect("enqueue"),
        1
    );

    // More slots let more in; a deleted pool holds its tasks back again.
    store.set_pool("nowhere", 1, None).await.expect("set_pool");
    let ghost = find(&rows, "ghost").id;
    assert_eq!(
        store
            .enqueue(a.id(), &[ghost], None)
            .await
            .expect("enqueue"),
        1
    );
    assert!(store.delete_pool("nowhere").await.expect("delete_pool"));
    assert!(!store.delete_pool("nowhere").await.expect("delete_pool"));
    assert_eq!(store.list_pools().await.expect("list_pools").len(), 1);
}
