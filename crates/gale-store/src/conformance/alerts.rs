//! Conformance checks: Alerts: channels (their sealed part rotated with the
//! other secrets), the outbox's idempotent enqueue, exclusive claims under
//! leases, fenced results, retries, give-ups, listing, counts and pruning.

use super::*;
use crate::{
    AlertChannelRow, ChannelKind, DELIVERY_ERROR_MAX, DeliveryFilter, DeliveryResult,
    DeliveryState, NewDelivery, Sealed, SecretKind,
};

fn sealed(key: &str, data: &str) -> Sealed {
    Sealed {
        key_id: key.into(),
        data: data.into(),
    }
}

fn channel(name: &str, kind: ChannelKind, s: Option<Sealed>) -> AlertChannelRow {
    let mut config = serde_json::Map::new();
    config.insert("to".into(), serde_json::json!(["ops@example.com"]));
    AlertChannelRow {
        name: name.into(),
        kind,
        config,
        sealed: s,
        description: Some(format!("{name} channel")),
        updated_at: None,
    }
}

fn delivery(channel: &str, key: &str, run: Option<i64>) -> NewDelivery {
    let mut payload = serde_json::Map::new();
    payload.insert("task".into(), serde_json::json!("load"));
    NewDelivery {
        channel: channel.into(),
        event_key: key.into(),
        kind: "task.failed".into(),
        dag_id: Some(DagId::from("etl")),
        run_id: run.map(RunId),
        ti_id: run.map(|r| TiId(r * 10)),
        payload,
    }
}

/// An hour from the store's now, in whole seconds.
async fn in_an_hour<S: Store + ?Sized>(store: &S) -> Timestamp {
    let now = store.now().await.expect("now");
    Timestamp::from_second(now.as_second() + 3600).expect("a valid timestamp")
}

const LEASE: Duration = Duration::from_secs(300);
/// No digest window: a channel is never quiet.
const NO_WINDOW: Duration = Duration::ZERO;

/// Channels are created, replaced, listed by name and deleted; a sealed one
/// is listed for key rotation with the other secrets and resealed like them.
pub async fn alert_channels_round_trip<S: Store + ?Sized>(store: &S) {
    let ops = channel("ops", ChannelKind::Email, Some(sealed("old", "0a")));
    store.put_channel(&ops).await.expect("put");
    let hook = channel("hook", ChannelKind::Webhook, None);
    store.put_channel(&hook).await.expect("put");
    let got = store.channel("ops").await.expect("get").expect("exists");
    assert!(got.updated_at.is_some(), "the store stamps the change");
    assert_eq!(
        AlertChannelRow {
            updated_at: None,
            ..got
        },
        ops
    );
    let slack = AlertChannelRow {
        kind: ChannelKind::Slack,
        ..hook.clone()
    };
    store.put_channel(&slack).await.expect("replace");
    let list = store.list_channels().await.expect("list");
    assert_eq!(
        list.iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect::<Vec<_>>(),
        [("hook", ChannelKind::Slack), ("ops", ChannelKind::Email)]
    );
    let todo = store
        .sealed_under_other_keys("new", 10)
        .await
        .expect("rotation listing");
    assert_eq!(
        todo.iter()
            .map(|r| (r.kind, r.name.as_str(), r.sealed.data.as_str()))
            .collect::<Vec<_>>(),
        [(SecretKind::Channel, "ops", "0a")]
    );
    assert_eq!(
        store.sealed_counts().await.expect("counts"),
        [("old".to_string(), 1)]
    );
    assert!(
        !store
            .reseal(
                SecretKind::Channel,
                "ops",
                &sealed("old", "ff"),
                &sealed("new", "0b")
            )
            .await
            .expect("reseal"),
        "a reseal of a value that is not there changes nothing"
    );
    assert!(
        store
            .reseal(
                SecretKind::Channel,
                "ops",
                &sealed("old", "0a"),
                &sealed("new", "0b")
            )
            .await
            .expect("reseal")
    );
    assert_eq!(
        store
            .channel("ops")
            .await
            .expect("get")
            .expect("exists")
            .sealed,
        Some(sealed("new", "0b"))
    );
    assert!(
        store
            .sealed_under_other_keys("new", 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(store.delete_channel("hook").await.expect("delete"));
    assert!(!store.delete_channel("hook").await.expect("delete"));
    assert!(store.channel("hook").await.expect("get").is_none());
}

/// The same (channel, event key) enqueued twice, in one call or two, is one
/// delivery; the same key for another channel is another.
pub async fn enqueue_alerts_is_idempotent<S: Store + ?Sized>(store: &S) {
    let first = [
        delivery("ops", "e1", Some(1)),
        delivery("ops", "e1", Some(1)),
    ];
    assert_eq!(store.enqueue_alerts(&first).await.expect("enqueue"), 1);
    let again = [
        delivery("ops", "e1", Some(1)),
        delivery("hook", "e1", Some(1)),
        delivery("ops", "e2", None),
    ];
    assert_eq!(store.enqueue_alerts(&again).await.expect("enqueue"), 2);
    assert_eq!(store.enqueue_alerts(&[]).await.expect("enqueue"), 0);
    let keyless = [delivery("ops", "e9", None), delivery("ops", "", None)];
    assert!(
        store.enqueue_alerts(&keyless).await.is_err(),
        "a delivery without an event key is refused"
    );
    let all = store
        .list_deliveries(&DeliveryFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 3, "a refused batch adds nothing");
    let e1 = all
        .iter()
        .find(|d| d.channel == "ops" && d.event_key == "e1")
        .expect("ops e1");
    assert_eq!(e1.state, DeliveryState::Pending);
    assert_eq!(e1.attempts, 0);
    assert_eq!(e1.kind, "task.failed");
    assert_eq!(e1.run_id, Some(RunId(1)));
    assert_eq!(e1.ti_id, Some(TiId(10)));
    assert_eq!(e1.dag_id, Some(DagId::from("etl")));
    assert_eq!(e1.payload.get("task"), Some(&serde_json::json!("load")));
    assert!(e1.claimed_by.is_none() && e1.sent_at.is_none() && e1.last_error.is_none());
}

/// Two claimers share the due deliveries, each to one of them; what is
/// claimed, or waiting for a later `next_at`, is not claimed again.
pub async fn claim_deliveries_is_exclusive<S: Store + ?Sized>(store: &S) {
    let new: Vec<_> = (1..=5)
        .map(|i| delivery("ops", &format!("e{i}"), None))
        .collect();
    store.enqueue_alerts(&new).await.expect("enqueue");
    let a = store
        .claim_deliveries("a", 3, LEASE, NO_WINDOW)
        .await
        .expect("claim");
    let b = store
        .claim_deliveries("b", 10, LEASE, NO_WINDOW)
        .await
        .expect("claim");
    assert_eq!((a.len(), b.len()), (3, 2));
    let mut ids: Vec<_> = a.iter().chain(&b).map(|d| d.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "no delivery went to both claimers");
    for d in &a {
        assert_eq!(d.state, DeliveryState::Sending);
        assert_eq!(d.claimed_by.as_deref(), Some("a"));
        assert_eq!(d.attempts, 1);
        assert!(d.lease_until.is_some_and(|l| l > d.created_at));
    }
    assert!(
        store
            .claim_deliveries("c", 10, LEASE, NO_WINDOW)
            .await
            .expect("claim")
            .is_empty()
    );
    assert!(
        store
            .claim_deliveries("c", 0, LEASE, NO_WINDOW)
            .await
            .expect("claim")
            .is_empty()
    );
    // Two claimers at once: still each delivery to one of them.
    let more: Vec<_> = (6..=15)
        .map(|i| delivery("ops", &format!("e{i}"), None))
        .collect();
    store.enqueue_alerts(&more).await.expect("enqueue");
    let (c, d) = tokio::join!(
        store.claim_deliveries("c", 10, LEASE, NO_WINDOW),
        store.claim_deliveries("d", 10, LEASE, NO_WINDOW)
    );
    let (c, d) = (c.expect("claim"), d.expect("claim"));
    let mut both: Vec<_> = c.iter().chain(&d).map(|x| x.id).collect();
    both.sort();
    both.dedup();
    assert_eq!(both.len(), c.len() + d.len(), "no delivery claimed twice");
    assert_eq!(both.len(), 10, "every due delivery claimed");
    // Retried for an hour from now: not due before then.
    let later = in_an_hour(store).await;
    let retry = DeliveryResult::Retry {
        at: later,
        error: "connection refused".into(),
    };
    assert!(
        store
            .finish_delivery(a[0].id, "a", 1, &retry)
            .await
            .expect("finish")
    );
    assert!(
        store
            .claim_deliveries("c", 10, LEASE, NO_WINDOW)
            .await
            .expect("claim")
            .is_empty()
    );
    let back = store
        .list_deliveries(&DeliveryFilter {
            state: Some(DeliveryState::Pending),
            ..DeliveryFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].next_at, later);
    assert_eq!(back[0].last_error.as_deref(), Some("connection refused"));
}

/// A claim whose lease ended is claimed again with its attempts counted up;
/// the first claimer's result is then refused, the second's recorded.
pub async fn expired_delivery_claim_is_fenced<S: Store + ?Sized>(store: &S) {
    store
        .enqueue_alerts(&[delivery("ops", "e1", None)])
        .await
        .expect("enqueue");
    let first = store
        .claim_deliveries("a", 10, Duration::ZERO, NO_WINDOW)
        .await
        .expect("claim");
    assert_eq!(first.len(), 1);
    // The lease ends at once; make sure the store's clock has moved past it.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = store
        .claim_deliveries("b", 10, LEASE, NO_WINDOW)
        .await
        .expect("claim");
    assert_eq!(second.len(), 1, "a claim whose lease ended is claimable");
    assert_eq!((second[0].id, second[0].attempts), (first[0].id, 2));
    assert_eq!(second[0].claimed_by.as_deref(), Some("b"));
    let id = first[0].id;
    assert!(
        !store
            .finish_delivery(id, "a", 1, &DeliveryResult::Sent)
            .await
            .expect("finish"),
        "the old claimer's result is refused"
    );
    assert!(
        !store
            .finish_delivery(id, "b", 1, &DeliveryResult::Sent)
            .await
            .expect("finish"),
        "a result for another attempt is refused"
    );
    assert!(
        store
            .finish_delivery(id, "b", 2, &DeliveryResult::Sent)
            .await
            .expect("finish")
    );
    assert!(
        !store
            .finish_delivery(id, "b", 2, &DeliveryResult::Sent)
            .await
            .expect("finish"),
        "a finished delivery is finished once"
    );
    let got = store
        .list_deliveries(&DeliveryFilter::default())
        .await
        .expect("list");
    assert_eq!(got[0].state, DeliveryState::Sent);
    assert!(got[0].sent_at.is_some());
    assert!(
        store
            .claim_deliveries("c", 10, Duration::ZERO, NO_WINDOW)
            .await
            .expect("claim")
            .is_empty()
    );
}

/// The results of one message's deliveries are recorded in one call, each
/// fenced on its own claim; a delivery sent after a failed try keeps no error.
pub async fn delivery_results_recorded_together<S: Store + ?Sized>(store: &S) {
    store
        .enqueue_alerts(&[delivery("ops", "e1", None), delivery("ops", "e2", None)])
        .await
        .expect("enqueue");
    let d = store
        .claim_deliveries("a", 10, LEASE, NO_WINDOW)
        .await
        .expect("claim");
    assert_eq!(d.len(), 2);
    let retry = DeliveryResult::Retry {
        at: day(0),
        error: "refused".into(),
    };
    let done = store
        .finish_deliveries(
            "a",
            &[(d[0].id, 1, retry.clone()), (d[1].id, 1, retry.clone())],
        )
        .await
        .expect("finish");
    assert_eq!(done, [true, true]);
    let again = store
        .claim_deliveries("a", 10, LEASE, NO_WINDOW)
        .await
        .expect("claim");
    assert_eq!(again.len(), 2);
    // One result for a stale attempt: refused, the other recorded.
    let done = store
        .finish_deliveries(
            "a",
            &[
                (again[0].id, 2, DeliveryResult::Sent),
                (again[1].id, 1, DeliveryResult::Sent),
            ],
        )
        .await
        .expect("finish");
    assert_eq!(done, [true, false]);
    let got = store
        .list_deliveries(&DeliveryFilter::default())
        .await
        .expect("list");
    let sent = got.iter().find(|r| r.id == again[0].id).expect("the row");
    assert_eq!(sent.state, DeliveryState::Sent);
    assert_eq!(sent.last_error, None, "a sent delivery shows no error");
    let other = got.iter().find(|r| r.id == again[1].id).expect("the row");
    assert_eq!(other.state, DeliveryState::Sending);
    assert!(
        store
            .finish_deliveries("a", &[])
            .await
            .expect("nothing")
            .is_empty()
    );
}

/// A retry due now is claimed again as the next attempt; a give-up ends it as
/// failed with its error kept (bounded), never claimed again.
pub async fn delivery_retry_and_give_up<S: Store + ?Sized>(store: &S) {
    store
        .enqueue_alerts(&[delivery("ops", "e1", None)])
        .await
        .expect("enqueue");
    let d = store
        .claim_deliveries("a", 1, LEASE, NO_WINDOW)
        .await
        .expect("claim");
    let retry = DeliveryResult::Retry {
        at: day(0),
        error: "timeout".into(),
    };
    assert!(
        store
            .finish_delivery(d[0].id, "a", 1, &retry)
            .await
            .expect("finish")
    );
    let again = store
        .claim_deliveries("a", 1, LEASE, NO_WINDOW)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1, "a retry that is due is claimable");
    assert_eq!(again[0].attempts, 2);
    assert_eq!(again[0].last_error.as_deref(), Some("timeout"));
    let long = "x".repeat(DELIVERY_ERROR_MAX * 3);
    let give_up = DeliveryResult::GiveUp { error: long };
    assert!(
        store
            .finish_delivery(d[0].id, "a", 2, &give_up)
            .await
            .expect("finish")
    );
    let got = store
        .list_deliveries(&DeliveryFilter::default())
        .await
        .expect("list");
    assert_eq!(got[0].state, DeliveryState::Failed);
    assert_eq!(
        got[0].last_error.as_deref().map(str::len),
        Some(DELIVERY_ERROR_MAX),
        "the error is kept, bounded"
    );
    assert!(
        store
            .claim_deliveries("b", 10, Duration::ZERO, NO_WINDOW)
            .await
            .expect("claim")
            .is_empty()
    );
}

/// Listings are newest first, filtered and paged; counts are by channel and
/// state; pruning removes only finished deliveries created before the bound.
pub async fn deliveries_listed_counted_pruned<S: Store + ?Sized>(store: &S) {
    let new = [
        delivery("ops", "e1", Some(1)),
        delivery("ops", "e2", Some(2)),
        delivery("hook", "e3", Some(1)),
        delivery("hook", "e4", None),
    ];
    assert_eq!(store.enqueue_alerts(&new).await.expect("enqueue"), 4);
    let all = store
        .list_deliveries(&DeliveryFilter::default())
        .await
        .expect("list");
    let keys: Vec<_> = all.iter().map(|d| d.event_key.as_str()).collect();
    assert_eq!(keys, ["e4", "e3", "e2", "e1"], "newest first");
    let by_run = store
        .list_deliveries(&DeliveryFilter {
            run_id: Some(RunId(1)),
            ..DeliveryFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(
        by_run
            .iter()
            .map(|d| d.event_key.as_str())
            .collect::<Vec<_>>(),
        ["e3", "e1"]
    );
    let page = store
        .list_deliveries(&DeliveryFilter {
            channel: Some("ops".into()),
            before: Some(all[1].id),
            limit: 1,
            ..DeliveryFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(
        page.iter()
            .map(|d| d.event_key.as_str())
            .collect::<Vec<_>>(),
        ["e2"]
    );
    let claimed = store
        .claim_deliveries("a", 10, LEASE, NO_WINDOW)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 4);
    for d in &claimed {
        let result = match d.event_key.as_str() {
            "e1" => DeliveryResult::Sent,
            "e2" => DeliveryResult::GiveUp {
                error: "bad address".into(),
            },
            "e3" => DeliveryResult::Retry {
                at: day(400),
                error: "503".into(),
            },
            _ => continue,
        };
        assert!(
            store
                .finish_delivery(d.id, "a", 1, &result)
                .await
                .expect("finish")
        );
    }
    assert_eq!(
        store.delivery_counts().await.expect("counts"),
        [
            ("hook".to_string(), DeliveryState::Pending, 1),
            ("hook".to_string(), DeliveryState::Sending, 1),
            ("ops".to_string(), DeliveryState::Sent, 1),
            ("ops".to_string(), DeliveryState::Failed, 1),
        ]
    );
    assert_eq!(
        store.prune_deliveries(day(0)).await.expect("prune"),
        0,
        "nothing was created before the bound"
    );
    let far = in_an_hour(store).await;
    assert_eq!(store.prune_deliveries(far).await.expect("prune"), 2);
    let left: Vec<_> = store
        .list_deliveries(&DeliveryFilter::default())
        .await
        .expect("list")
        .into_iter()
        .map(|d| (d.event_key, d.state))
        .collect();
    assert_eq!(
        left,
        [
            ("e4".to_string(), DeliveryState::Sending),
            ("e3".to_string(), DeliveryState::Pending)
        ]
    );
}

/// A channel some of whose deliveries were claimed is quiet for the window:
/// what falls due meanwhile waits and is then claimed at once, while other
/// channels (and one that is gone) are claimed as usual; deleting a channel
/// gives up its pending deliveries.
pub async fn claim_window_holds_a_channel_back<S: Store + ?Sized>(store: &S) {
    const WINDOW: Duration = Duration::from_secs(3);
    store
        .put_channel(&channel("ops", ChannelKind::Email, None))
        .await
        .expect("put");
    store
        .put_channel(&channel("hook", ChannelKind::Webhook, None))
        .await
        .expect("put");
    store
        .enqueue_alerts(&[delivery("ops", "e1", None)])
        .await
        .expect("enqueue");
    let first = store
        .claim_deliveries("a", 10, LEASE, WINDOW)
        .await
        .expect("claim");
    assert_eq!(keys(&first), ["e1"]);
    let more = [
        delivery("ops", "e2", None),
        delivery("ops", "e3", None),
        delivery("hook", "h1", None),
        delivery("gone", "g1", None),
    ];
    store.enqueue_alerts(&more).await.expect("enqueue");
    let second = store
        .claim_deliveries("b", 10, LEASE, WINDOW)
        .await
        .expect("claim");
    assert_eq!(
        keys(&second),
        ["h1", "g1"],
        "the quiet channel is held back, the others (and one that is gone) are not"
    );
    assert!(
        store
            .claim_deliveries("b", 10, LEASE, WINDOW)
            .await
            .expect("claim")
            .is_empty(),
        "within the window nothing more of a claimed channel"
    );
    // Past the window, everything due for the channel at once.
    tokio::time::sleep(WINDOW + Duration::from_millis(200)).await;
    let third = store
        .claim_deliveries("c", 10, LEASE, WINDOW)
        .await
        .expect("claim");
    assert_eq!(keys(&third), ["e2", "e3"]);
    // Two claimers at once take each channel's deliveries whole, one each.
    tokio::time::sleep(WINDOW + Duration::from_millis(200)).await;
    let storm: Vec<_> = (10..20)
        .map(|i| {
            delivery(
                if i % 2 == 0 { "ops" } else { "hook" },
                &format!("s{i}"),
                None,
            )
        })
        .collect();
    store.enqueue_alerts(&storm).await.expect("enqueue");
    let (x, y) = tokio::join!(
        store.claim_deliveries("x", 100, LEASE, WINDOW),
        store.claim_deliveries("y", 100, LEASE, WINDOW)
    );
    let (x, y) = (x.expect("claim"), y.expect("claim"));
    assert_eq!(x.len() + y.len(), 10, "every due delivery claimed");
    for d in &x {
        assert!(
            y.iter().all(|e| e.channel != d.channel),
            "channel {} went to both claimers",
            d.channel
        );
    }
    // Deleting a channel gives up what is pending for it, not what is sent.
    store
        .enqueue_alerts(&[delivery("ops", "e4", None)])
        .await
        .expect("enqueue");
    assert!(store.delete_channel("ops").await.expect("delete"));
    let ops = store
        .list_deliveries(&DeliveryFilter {
            channel: Some("ops".into()),
            ..DeliveryFilter::default()
        })
        .await
        .expect("list");
    let e4 = ops.iter().find(|d| d.event_key == "e4").expect("e4");
    assert_eq!(e4.state, DeliveryState::Failed);
    assert_eq!(e4.last_error.as_deref(), Some("channel deleted"));
    assert!(
        ops.iter()
            .filter(|d| d.event_key != "e4")
            .all(|d| d.state == DeliveryState::Sending),
        "claimed deliveries stay with their claimer"
    );
}

fn keys(rows: &[crate::DeliveryRow]) -> Vec<&str> {
    rows.iter().map(|d| d.event_key.as_str()).collect()
}
