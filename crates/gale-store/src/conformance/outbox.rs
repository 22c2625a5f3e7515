//! Conformance checks: alerts that ride with the change that caused them.

use super::*;
use crate::{DeliveryFilter, NewDelivery};

fn alert(channel: &str, key: &str) -> NewDelivery {
    NewDelivery {
        channel: channel.into(),
        event_key: key.into(),
        kind: "task.failed".into(),
        dag_id: None,
        run_id: None,
        ti_id: None,
        payload: serde_json::Map::new(),
    }
}

async fn keys<S: Store + ?Sized>(store: &S) -> BTreeSet<String> {
    store
        .list_deliveries(&DeliveryFilter::default())
        .await
        .expect("list_deliveries")
        .into_iter()
        .map(|d| format!("{}/{}", d.channel, d.event_key))
        .collect()
}

/// A finished attempt, a reaped one and a finished run add their alerts
/// only when the change applies, in the same write; a refused change adds
/// none, and a refused alert refuses its change.
pub async fn alerts_ride_with_their_change<S: Store + ?Sized>(store: &S) {
    let (dag, run) = queued_run(store, "outbox", 3).await;
    let claims = store
        .claim(&"w1".into(), "h", &queues(&["default"]), 3)
        .await
        .expect("claim");
    assert_eq!(claims.len(), 3);
    let (a, b, c) = (claims[0].task.id, claims[1].task.id, claims[2].task.id);

    let refused = Finish {
        alerts: vec![alert("ops", "refused")],
        ..finish(a, 1, "someone-else", TaskState::Failed, "failed")
    };
    assert!(
        !store
            .finish_attempt(&refused)
            .await
            .expect("finish_attempt")
    );
    assert!(
        keys(store).await.is_empty(),
        "a refused finish adds no alert"
    );

    // In a batch, only the recorded one's alerts are added.
    let batch = [
        Finish {
            alerts: vec![alert("ops", "a-failed"), alert("chat", "a-failed")],
            ..finish(a, 1, "w1", TaskState::Failed, "failed")
        },
        Finish {
            alerts: vec![alert("ops", "b-stale")],
            ..finish(b, 7, "w1", TaskState::Failed, "failed")
        },
    ];
    let recorded = store
        .finish_attempts(&batch)
        .await
        .expect("finish_attempts");
    assert_eq!(recorded, vec![true, false]);
    assert_eq!(
        keys(store).await,
        BTreeSet::from(["ops/a-failed".to_owned(), "chat/a-failed".to_owned()])
    );
    // The same result again (a retried report) adds nothing.
    assert!(
        !store
            .finish_attempt(&batch[0])
            .await
            .expect("finish_attempt")
    );
    assert_eq!(keys(store).await.len(), 2);

    // An alert the store refuses refuses its change too.
    let bad = Finish {
        alerts: vec![alert("", "no-channel")],
        ..finish(b, 1, "w1", TaskState::Success, "success")
    };
    assert!(store.finish_attempt(&bad).await.is_err());
    assert_eq!(ti_of(store, run, "t2").await.state, TaskState::Running);

    let reaped = Reap {
        alerts: vec![alert("ops", "b-lost")],
        ..reap(b, 1, "w1", Duration::ZERO)
    };
    assert!(store.reap_attempt(&reaped).await.expect("reap_attempt"));
    assert!(
        !store
            .reap_attempt(&reaped)
            .await
            .expect("reap_attempt again")
    );
    assert!(keys(store).await.contains("ops/b-lost"));
    let c_done = finish(c, 1, "w1", TaskState::Success, "success");
    assert!(store.finish_attempt(&c_done).await.expect("finish_attempt"));

    assert!(
        !store
            .finish_run(run, RunState::Failed, &[alert("ops", "run-queued")])
            .await
            .expect("finish_run of a queued run"),
        "a run not running is not finished"
    );
    store.promote_runs().await.expect("promote_runs");
    assert!(
        store
            .finish_run(run, RunState::Failed, &[alert("ops", "run-failed")])
            .await
            .expect("finish_run")
    );
    assert!(
        !store
            .finish_run(run, RunState::Failed, &[alert("ops", "run-again")])
            .await
            .expect("finish_run again")
    );
    let all = keys(store).await;
    assert!(all.contains("ops/run-failed"), "{all:?}");
    assert!(
        !all.contains("ops/run-queued") && !all.contains("ops/run-again"),
        "{all:?}"
    );
    assert_eq!(all.len(), 4, "{all:?}");

    // The previous finished run is this one, for the DAG's next.
    let next = create(store, &new_run(&dag, "manual__2", RunType::Manual, day(2))).await;
    let previous = store
        .previous_finished_run(dag.id(), next)
        .await
        .expect("previous_finished_run")
        .expect("a previous run");
    assert_eq!((previous.id, previous.state), (run, RunState::Failed));
    assert!(
        store
            .previous_finished_run(dag.id(), run)
            .await
            .expect("previous_finished_run")
            .is_none()
    );
}
