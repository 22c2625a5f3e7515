//! Conformance checks: the audit log (record, list with filters and a cursor,
//! bounded text, pruning to the newest entries).

use super::*;
use crate::{AuditAction, AuditEntry, AuditFilter, AuditOutcome, AuditRow};

fn entry(actor: &str, action: AuditAction, target: &str, outcome: AuditOutcome) -> AuditEntry {
    let mut detail = serde_json::Map::new();
    detail.insert("n".into(), serde_json::json!(target.len()));
    AuditEntry {
        actor: actor.to_owned(),
        origin: "127.0.0.1:4242".to_owned(),
        action,
        target: target.to_owned(),
        detail,
        outcome,
    }
}

async fn list<S: Store + ?Sized>(store: &S, filter: AuditFilter) -> Vec<AuditRow> {
    store.list_audit(&filter).await.expect("list_audit")
}

/// Entries come back newest first with every field as recorded and the
/// store's time; filters by actor, action, time and id cursor combine; a
/// failed login's text is kept bounded and without NUL characters.
pub async fn audit_log_round_trip<S: Store + ?Sized>(store: &S) {
    assert!(list(store, AuditFilter::default()).await.is_empty());
    let before = store.now().await.expect("now");
    let first = entry(
        "alice",
        AuditAction::RunTrigger,
        "dag/etl",
        AuditOutcome::Success,
    );
    let a = store.record_audit(&first).await.expect("record_audit");
    let b = store
        .record_audit(&entry(
            "bob",
            AuditAction::DagPause,
            "dag/etl",
            AuditOutcome::Success,
        ))
        .await
        .expect("record_audit");
    let c = store
        .record_audit(&entry(
            "alice",
            AuditAction::Login,
            "user/alice",
            AuditOutcome::Failure,
        ))
        .await
        .expect("record_audit");
    assert!(a < b && b < c, "ids rise: {a} {b} {c}");

    let all = list(store, AuditFilter::default()).await;
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![c, b, a],
        "newest first"
    );
    let oldest = &all[2];
    assert_eq!(oldest.actor, "alice");
    assert_eq!(oldest.origin, "127.0.0.1:4242");
    assert_eq!(oldest.action, AuditAction::RunTrigger);
    assert_eq!(oldest.target, "dag/etl");
    assert_eq!(oldest.outcome, AuditOutcome::Success);
    assert_eq!(oldest.detail, first.detail);
    let after = store.now().await.expect("now");
    assert!(
        all.iter().all(|r| r.at >= before && r.at <= after),
        "recorded on the store's clock, between {before} and {after}: {all:?}"
    );
    assert_eq!(all[0].outcome, AuditOutcome::Failure);

    let by_alice = list(
        store,
        AuditFilter {
            actor: Some("alice".into()),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(
        by_alice.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![c, a]
    );
    let pauses = list(
        store,
        AuditFilter {
            action: Some(AuditAction::DagPause),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(pauses.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b]);
    let both = list(
        store,
        AuditFilter {
            actor: Some("alice".into()),
            action: Some(AuditAction::Login),
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(both.iter().map(|r| r.id).collect::<Vec<_>>(), vec![c]);
    assert!(
        list(
            store,
            AuditFilter {
                actor: Some("nobody".into()),
                ..AuditFilter::default()
            },
        )
        .await
        .is_empty()
    );

    // Paging: the newest one, then the ones before it.
    let page = list(
        store,
        AuditFilter {
            limit: 1,
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), vec![c]);
    let next = list(
        store,
        AuditFilter {
            before: Some(c),
            limit: 10,
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(next.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b, a]);

    // Since: at or after a time.
    let since = all[1].at;
    let recent = list(
        store,
        AuditFilter {
            since: Some(since),
            ..AuditFilter::default()
        },
    )
    .await;
    let expected: Vec<i64> = all.iter().filter(|r| r.at >= since).map(|r| r.id).collect();
    assert_eq!(recent.iter().map(|r| r.id).collect::<Vec<_>>(), expected);
    assert!(expected.contains(&b) && expected.contains(&c));
    let later = Timestamp::from_second(after.as_second() + 3600).expect("a timestamp");
    assert!(
        list(
            store,
            AuditFilter {
                since: Some(later),
                ..AuditFilter::default()
            },
        )
        .await
        .is_empty()
    );

    // Whatever was typed as a user name is stored bounded, without NULs.
    let typed = format!("eve\0{}", "x".repeat(1000));
    let id = store
        .record_audit(&entry(
            &typed,
            AuditAction::Login,
            "user/eve",
            AuditOutcome::Failure,
        ))
        .await
        .expect("record_audit of a name with a NUL");
    let got = list(
        store,
        AuditFilter {
            limit: 1,
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(got[0].id, id);
    assert!(got[0].actor.starts_with("eve\u{fffd}x"), "{}", got[0].actor);
    assert_eq!(got[0].actor.chars().count(), 200);
}

/// `prune_audit` keeps the newest entries by id; recording goes on after it,
/// with ids still rising; a limit of 0 lists 100 and more than 1,000 lists
/// 1,000.
pub async fn audit_log_is_bounded<S: Store + ?Sized>(store: &S) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            store
                .record_audit(&entry(
                    "alice",
                    AuditAction::RunClear,
                    &format!("run/{i}"),
                    AuditOutcome::Success,
                ))
                .await
                .expect("record_audit"),
        );
    }
    assert_eq!(store.prune_audit(2).await.expect("prune_audit"), 3);
    let left = list(store, AuditFilter::default()).await;
    assert_eq!(
        left.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]],
        "the newest two are kept"
    );
    assert_eq!(store.prune_audit(2).await.expect("prune_audit"), 0);
    let next = store
        .record_audit(&entry(
            "alice",
            AuditAction::RunClear,
            "run/5",
            AuditOutcome::Success,
        ))
        .await
        .expect("record_audit");
    assert!(next > ids[4]);
    assert_eq!(list(store, AuditFilter::default()).await.len(), 3);

    for i in 0..120 {
        store
            .record_audit(&entry(
                "bulk",
                AuditAction::RunTrigger,
                &format!("dag/d{i}"),
                AuditOutcome::Success,
            ))
            .await
            .expect("record_audit");
    }
    assert_eq!(list(store, AuditFilter::default()).await.len(), 100);
    let wide = list(
        store,
        AuditFilter {
            limit: 5000,
            ..AuditFilter::default()
        },
    )
    .await;
    assert_eq!(wide.len(), 123, "under the 1,000 cap every entry is listed");
}
