//! Cluster alerts: every Gale process looks, every few seconds, for trouble
//! no single role reports: no live scheduler, tasks queued on a queue no
//! live worker serves, a process silent beyond its lease, the database moved
//! to a new primary. Whoever notices first writes the alert; the event key
//! is the same for every process that sees the same trouble (it names the
//! last sign of life), so the outbox keeps one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gale_model::time::rfc3339;
use gale_store::alert_events::{AlertEvent, DefaultsCache};
use gale_store::{NodeRow, NodeState, Store};
use jiff::Timestamp;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// When a cluster alert fires.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// How often to look.
    pub every: Duration,
    /// No scheduler heart-beating for this long.
    pub no_scheduler_after: Duration,
    /// Tasks queued on a queue that no live worker has served for this long.
    pub unserved_queue_after: Duration,
    /// A process whose heartbeat is this much older than its lease (a
    /// worker's attempt lease; 10 s for other roles).
    pub silent_after: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            every: Duration::from_secs(5),
            no_scheduler_after: Duration::from_secs(60),
            unserved_queue_after: Duration::from_secs(60),
            silent_after: Duration::from_secs(10),
        }
    }
}

/// Looks until `cancel`. Costs one read of the channels every few seconds
/// while no channel takes cluster alerts, and a read of the nodes and the
/// queue counts besides when one does.
pub async fn run(store: Arc<dyn Store>, opts: WatchOptions, cancel: CancellationToken) {
    let defaults = DefaultsCache::new(opts.every);
    let mut primary: Option<String> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(opts.every) => {}
        }
        let channels = match defaults.get(&*store).await {
            Ok(d) => d.cluster.clone(),
            Err(e) => {
                debug!(error = %e, "cluster watch: cannot read the alert channels");
                continue;
            }
        };
        // The primary is followed even with nobody to tell, so a channel
        // added later does not hear of an old failover.
        let failover = match store.primary_identity().await {
            Ok(Some(now)) => {
                let moved = primary.as_ref().is_some_and(|was| *was != now);
                let was = primary.replace(now.clone());
                moved.then(|| (was.unwrap_or_default(), now))
            }
            Ok(None) | Err(_) => None,
        };
        if channels.is_empty() {
            continue;
        }
        match look(&*store, &opts, failover).await {
            Ok(events) => {
                for event in events {
                    match store.enqueue_alerts(&event.deliveries(&channels)).await {
                        Ok(0) => debug!(key = %event.key, "cluster alert already written"),
                        Ok(_) => {
                            info!(kind = %event.kind, key = %event.key, "cluster alert written")
                        }
                        Err(e) => {
                            warn!(error = %e, kind = %event.kind, "cannot write a cluster alert; trying again")
                        }
                    }
                }
            }
            Err(e) => debug!(error = %e, "cannot look at the cluster's health"),
        }
    }
}

/// The trouble there is now.
async fn look(
    store: &dyn Store,
    opts: &WatchOptions,
    failover: Option<(String, String)>,
) -> gale_store::Result<Vec<AlertEvent>> {
    let now = store.now().await?;
    let nodes = store.list_nodes().await?;
    let mut events = Vec::new();
    if let Some(e) = no_scheduler(&nodes, now, opts.no_scheduler_after) {
        events.push(e);
    }
    let counts = store.counts().await?;
    events.extend(unserved_queues(
        &nodes,
        &counts.queued_by_queue,
        &counts.oldest_queued,
        now,
        opts.unserved_queue_after,
    ));
    events.extend(silent_nodes(&nodes, now, opts.silent_after));
    if let Some((was, is)) = failover {
        let mut e = AlertEvent::cluster(
            "cluster.failover",
            format!("cluster.failover:{was}->{is}"),
            format!("the database moved to a new primary: {is} (was {was})"),
            now,
        );
        e.details.insert("previous".into(), was.into());
        e.details.insert("primary".into(), is.into());
        events.push(e);
    }
    Ok(events)
}

fn ago(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(at)).unwrap_or_default()
}

/// Whether `n` is up: running, with a heartbeat younger than `fresh`.
fn live(n: &NodeRow, now: Timestamp, fresh: Duration) -> bool {
    n.state == NodeState::Running && ago(now, n.heartbeat_at) < fresh
}

/// Nobody runs the scheduler role, and the last one was seen `after` ago
/// or longer: one alert per outage (its key is the last heartbeat seen).
fn no_scheduler(nodes: &[NodeRow], now: Timestamp, after: Duration) -> Option<AlertEvent> {
    let schedulers: Vec<&NodeRow> = nodes
        .iter()
        .filter(|n| n.roles.iter().any(|r| r == "scheduler"))
        .collect();
    let fresh = Duration::from_secs(10).max(after / 2);
    if schedulers.iter().any(|n| live(n, now, fresh)) {
        return None;
    }
    let last = schedulers.iter().map(|n| n.heartbeat_at).max();
    let since = last.or_else(|| nodes.iter().map(|n| n.started_at).min())?;
    if ago(now, since) < after {
        return None;
    }
    let last_seen = match last {
        Some(at) => format!("the last one was seen at {}", rfc3339(at)),
        None => "none has run".to_owned(),
    };
    let mut e = AlertEvent::cluster(
        "cluster.no_scheduler",
        format!(
            "cluster.no_scheduler:{}",
            last.map_or("never".to_owned(), |at| at.as_microsecond().to_string())
        ),
        format!("no live scheduler: {last_seen}; no run is started or advanced until one runs"),
        now,
    );
    e.details.insert(
        "last_seen".into(),
        last.map(rfc3339)
            .map_or(serde_json::Value::Null, Into::into),
    );
    Some(e)
}

/// Queues whose oldest queued task has waited `after` or longer while no
/// live worker serves them (none ever did, or the last fell silent `after`
/// ago or longer).
fn unserved_queues(
    nodes: &[NodeRow],
    queued: &BTreeMap<String, u64>,
    oldest: &BTreeMap<String, Timestamp>,
    now: Timestamp,
    after: Duration,
) -> Vec<AlertEvent> {
    let mut out = Vec::new();
    for (queue, &count) in queued {
        if count == 0 {
            continue;
        }
        // Waiting `after` at least: a queue a worker is just starting for
        // (or one that just took the task) is not in trouble.
        let Some(&since) = oldest.get(queue) else {
            continue;
        };
        if ago(now, since) < after {
            continue;
        }
        let servers: Vec<&NodeRow> = nodes
            .iter()
            .filter(|n| n.roles.iter().any(|r| r == "worker") && n.queues.contains(queue))
            .collect();
        let lease =
            |n: &NodeRow| Duration::from_millis(n.attempt_lease_ms).max(Duration::from_secs(10));
        if servers.iter().any(|n| live(n, now, lease(n))) {
            continue;
        }
        let last = servers.iter().map(|n| n.heartbeat_at).max();
        if last.is_some_and(|at| ago(now, at) < after) {
            continue;
        }
        // One alert per stretch without a server: it begins when the last
        // server fell silent, or (none ever) when the oldest task was queued.
        let began = last.map_or(since, |at| at.max(since));
        let mut e = AlertEvent::cluster(
            "cluster.queue_unserved",
            format!("cluster.queue_unserved:{queue}:{}", began.as_microsecond()),
            format!(
                "{count} task(s) queued on queue {queue}, the oldest since {}, and no live worker serves it{}",
                rfc3339(since),
                last.map_or(" (none ever has)".to_owned(), |at| format!(
                    " (the last one was seen at {})",
                    rfc3339(at)
                ))
            ),
            now,
        );
        e.details.insert("queue".into(), queue.clone().into());
        e.details.insert("queued".into(), count.into());
        e.details
            .insert("oldest_queued_at".into(), rfc3339(since).into());
        out.push(e);
    }
    out
}

/// Processes that say they run but have not heart-beaten for their lease
/// plus `grace` (killed, frozen or cut off): one alert per silence.
fn silent_nodes(nodes: &[NodeRow], now: Timestamp, grace: Duration) -> Vec<AlertEvent> {
    let mut out = Vec::new();
    for n in nodes {
        let lease = Duration::from_millis(n.attempt_lease_ms).max(Duration::from_secs(10));
        if n.state != NodeState::Running || ago(now, n.heartbeat_at) < lease + grace {
            continue;
        }
        // Rows a day old are forgotten; an old silence is not news.
        if ago(now, n.heartbeat_at) > Duration::from_secs(86_400) {
            continue;
        }
        let mut e = AlertEvent::cluster(
            "cluster.node_silent",
            format!(
                "cluster.node_silent:{}:{}",
                n.node_id,
                n.heartbeat_at.as_microsecond()
            ),
            format!(
                "gale process {} ({} on {}, pid {}) has been silent since {}",
                n.node_id,
                n.roles.join(","),
                n.host,
                n.pid,
                rfc3339(n.heartbeat_at)
            ),
            now,
        );
        e.details.insert("node_id".into(), n.node_id.clone().into());
        e.details.insert("host".into(), n.host.clone().into());
        e.details.insert("roles".into(), n.roles.clone().into());
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, roles: &[&str], queues: &[&str], beat: i64, state: NodeState) -> NodeRow {
        NodeRow {
            node_id: id.into(),
            host: "h".into(),
            pid: 1,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            version: "0".into(),
            state,
            started_at: Timestamp::from_second(0).expect("a time"),
            heartbeat_at: Timestamp::from_second(beat).expect("a time"),
            clock_skew_us: 0,
            attempt_lease_ms: 10_000,
            running_attempts: 0,
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).expect("a time")
    }

    #[test]
    fn no_scheduler_fires_once_per_outage_after_its_time() {
        let min = Duration::from_secs(60);
        let nodes = vec![
            node("s1", &["scheduler"], &[], 1_000, NodeState::Stopped),
            node("w1", &["worker"], &["default"], 1_100, NodeState::Running),
        ];
        assert!(
            no_scheduler(&nodes, at(1_030), min).is_none(),
            "not yet a minute"
        );
        let e = no_scheduler(&nodes, at(1_100), min).expect("an alert");
        let again = no_scheduler(&nodes, at(1_200), min).expect("still an alert");
        assert_eq!(e.key, again.key, "one outage, one key");
        let mut live = nodes.clone();
        live.push(node("s2", &["scheduler"], &[], 1_195, NodeState::Running));
        assert!(no_scheduler(&live, at(1_200), min).is_none());
    }

    #[test]
    fn a_queue_nobody_serves_alerts_and_a_served_one_does_not() {
        let min = Duration::from_secs(60);
        let nodes = vec![node(
            "w1",
            &["worker"],
            &["default"],
            1_060,
            NodeState::Running,
        )];
        let queued = BTreeMap::from([("default".to_owned(), 3), ("gpu".to_owned(), 2)]);
        let oldest = BTreeMap::from([
            ("default".to_owned(), at(1_000)),
            ("gpu".to_owned(), at(1_000)),
        ]);
        assert!(
            unserved_queues(&nodes, &queued, &oldest, at(1_030), min).is_empty(),
            "a task queued half a minute ago waits for its worker"
        );
        let events = unserved_queues(&nodes, &queued, &oldest, at(1_065), min);
        assert_eq!(events.len(), 1, "{events:?}");
        let key = &events[0].key;
        assert!(key.starts_with("cluster.queue_unserved:gpu:"), "{key}");
        let again = unserved_queues(&nodes, &queued, &oldest, at(1_090), min);
        assert_eq!(&again[0].key, key, "one trouble, one key");
        // The worker went away: a minute after its last beat, its queue
        // alerts too.
        assert_eq!(
            unserved_queues(&nodes, &queued, &oldest, at(1_100), min).len(),
            1
        );
        let later = unserved_queues(&nodes, &queued, &oldest, at(1_125), min);
        assert_eq!(later.len(), 2, "{later:?}");
        // Nothing waits on a queue without a time (none queued).
        let none = unserved_queues(&nodes, &queued, &BTreeMap::new(), at(1_100), min);
        assert!(none.is_empty());
    }

    #[test]
    fn a_silent_running_node_alerts_and_a_stopped_one_does_not() {
        let nodes = vec![
            node(
                "quiet",
                &["worker"],
                &["default"],
                1_000,
                NodeState::Running,
            ),
            node("gone", &["worker"], &["default"], 1_000, NodeState::Stopped),
        ];
        let grace = Duration::from_secs(10);
        assert!(silent_nodes(&nodes, at(1_015), grace).is_empty());
        let e = silent_nodes(&nodes, at(1_021), grace);
        assert_eq!(e.len(), 1);
        assert!(e[0].key.contains("quiet"));
    }
}
