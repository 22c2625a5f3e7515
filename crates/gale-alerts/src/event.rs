//! The event document (version 1): what happened, as every channel gets it
//! (a webhook's body, a command's standard input) and as the outbox stores
//! it, without the parts filled in at send time (`log_tail`, `link`). Also
//! a batch of them: one event, or a digest of many with a key of its own.

use std::collections::BTreeMap;

use gale_store::{DeliveryRow, NewDelivery, TiId};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// The version of the event document.
pub const EVENT_VERSION: u32 = 1;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    /// A task's try failed and it will not be retried.
    #[serde(rename = "task.failed")]
    TaskFailed,
    /// A task's try failed and it will be retried.
    #[serde(rename = "task.retry")]
    TaskRetry,
    #[serde(rename = "task.success")]
    TaskSuccess,
    /// A task succeeded after its previous run's failed.
    #[serde(rename = "task.recovered")]
    TaskRecovered,
    #[serde(rename = "run.failed")]
    RunFailed,
    #[serde(rename = "run.success")]
    RunSuccess,
    /// A run succeeded after the DAG's previous one failed.
    #[serde(rename = "run.recovered")]
    RunRecovered,
    /// A run was still going at its deadline.
    #[serde(rename = "run.deadline")]
    RunDeadline,
    #[serde(rename = "cluster.no_scheduler")]
    ClusterNoScheduler,
    #[serde(rename = "cluster.queue_unserved")]
    ClusterQueueUnserved,
    #[serde(rename = "cluster.node_silent")]
    ClusterNodeSilent,
    #[serde(rename = "cluster.failover")]
    ClusterFailover,
    /// Sent by `gale alerts test`.
    #[serde(rename = "test")]
    Test,
}

impl EventKind {
    pub const ALL: [EventKind; 13] = [
        EventKind::TaskFailed,
        EventKind::TaskRetry,
        EventKind::TaskSuccess,
        EventKind::TaskRecovered,
        EventKind::RunFailed,
        EventKind::RunSuccess,
        EventKind::RunRecovered,
        EventKind::RunDeadline,
        EventKind::ClusterNoScheduler,
        EventKind::ClusterQueueUnserved,
        EventKind::ClusterNodeSilent,
        EventKind::ClusterFailover,
        EventKind::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::TaskFailed => "task.failed",
            EventKind::TaskRetry => "task.retry",
            EventKind::TaskSuccess => "task.success",
            EventKind::TaskRecovered => "task.recovered",
            EventKind::RunFailed => "run.failed",
            EventKind::RunSuccess => "run.success",
            EventKind::RunRecovered => "run.recovered",
            EventKind::RunDeadline => "run.deadline",
            EventKind::ClusterNoScheduler => "cluster.no_scheduler",
            EventKind::ClusterQueueUnserved => "cluster.queue_unserved",
            EventKind::ClusterNodeSilent => "cluster.node_silent",
            EventKind::ClusterFailover => "cluster.failover",
            EventKind::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether it is about one task's try (and so has a log).
    pub fn is_task(self) -> bool {
        matches!(
            self,
            EventKind::TaskFailed
                | EventKind::TaskRetry
                | EventKind::TaskSuccess
                | EventKind::TaskRecovered
        )
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event. Every field is present in the document, `null` (or empty)
/// where it does not apply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Always [`EVENT_VERSION`].
    pub version: u32,
    /// The idempotency key: one event, however often it is reported.
    pub key: String,
    pub kind: EventKind,
    /// When it happened.
    pub at: Timestamp,
    #[serde(default)]
    pub dag_id: Option<String>,
    #[serde(default)]
    pub run_id: Option<i64>,
    /// The run's key (e.g. `scheduled__2026-01-01T00:00:00Z`).
    #[serde(default)]
    pub run_key: Option<String>,
    #[serde(default)]
    pub task_id: Option<String>,
    #[serde(default)]
    pub try_number: Option<u32>,
    /// The task's or run's state, e.g. `failed`.
    #[serde(default)]
    pub state: Option<String>,
    /// What went wrong (or right), in a line or a few.
    #[serde(default)]
    pub message: Option<String>,
    /// The last lines of the try's log (filled in at send time).
    #[serde(default)]
    pub log_tail: Vec<String>,
    /// The run's or task's page in the web UI (filled in at send time).
    #[serde(default)]
    pub link: Option<String>,
    /// Anything else, by kind.
    #[serde(default)]
    pub details: Map<String, Value>,
}

impl Event {
    /// An event with only its key, kind and time.
    pub fn new(key: impl Into<String>, kind: EventKind, at: Timestamp) -> Event {
        Event {
            version: EVENT_VERSION,
            key: key.into(),
            kind,
            at,
            dag_id: None,
            run_id: None,
            run_key: None,
            task_id: None,
            try_number: None,
            state: None,
            message: None,
            log_tail: Vec::new(),
            link: None,
            details: Map::new(),
        }
    }

    /// The document.
    pub fn document(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// What the outbox stores: the document without `log_tail` and `link`.
    pub fn payload(&self) -> Map<String, Value> {
        let mut map = match self.document() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        map.remove("log_tail");
        map.remove("link");
        map
    }

    /// The delivery of this event to `channel`; `ti_id` is the task
    /// instance whose log the message shows the end of.
    pub fn delivery(&self, channel: &str, ti_id: Option<TiId>) -> NewDelivery {
        NewDelivery {
            channel: channel.to_owned(),
            event_key: self.key.clone(),
            kind: self.kind.as_str().to_owned(),
            dag_id: self.dag_id.clone().map(gale_model::DagId),
            run_id: self.run_id.map(gale_model::RunId),
            ti_id,
            payload: self.payload(),
        }
    }

    /// The event a claimed delivery holds: its payload, with the row's key,
    /// kind, DAG and run where the payload lacks them.
    pub fn from_delivery(row: &DeliveryRow) -> Result<Event> {
        let mut doc = row.payload.clone();
        doc.entry("version").or_insert(Value::from(EVENT_VERSION));
        doc.insert("key".into(), Value::String(row.event_key.clone()));
        doc.insert("kind".into(), Value::String(row.kind.clone()));
        let at = serde_json::to_value(row.created_at).unwrap_or(Value::Null);
        doc.entry("at").or_insert(at);
        if let Some(d) = &row.dag_id {
            doc.entry("dag_id").or_insert(Value::String(d.0.clone()));
        }
        if let Some(r) = row.run_id {
            doc.entry("run_id").or_insert(Value::from(r.0));
        }
        if EventKind::parse(&row.kind).is_none() {
            return Err(Error::Invalid(format!(
                "{:?} is not an event kind this version knows",
                row.kind
            )));
        }
        let event: Event = serde_json::from_value(Value::Object(doc))
            .map_err(|e| Error::Invalid(format!("the stored event is not valid: {e}")))?;
        if event.version != EVENT_VERSION {
            return Err(Error::Invalid(format!(
                "the stored event is version {}, this one knows {EVENT_VERSION}",
                event.version
            )));
        }
        Ok(event)
    }
}

/// The most events a digest's document lists.
pub const DIGEST_DOCS: usize = 100;

/// What one message carries: one event, or a digest of several.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    events: Vec<Event>,
}

impl Batch {
    pub fn one(event: Event) -> Batch {
        Batch {
            events: vec![event],
        }
    }

    /// Several events: one alone is not a digest; none is refused.
    pub fn of(events: Vec<Event>) -> Result<Batch> {
        if events.is_empty() {
            return Err(Error::Invalid("a batch needs an event".into()));
        }
        Ok(Batch { events })
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn is_digest(&self) -> bool {
        self.events.len() > 1
    }

    /// The event's key, or a digest's: `digest:` and the hex SHA-256 of its
    /// events' keys, sorted, each followed by a newline.
    pub fn key(&self) -> String {
        match self.events.as_slice() {
            [one] => one.key.clone(),
            many => {
                let mut keys: Vec<&str> = many.iter().map(|e| e.key.as_str()).collect();
                keys.sort_unstable();
                let mut h = Sha256::new();
                for k in keys {
                    h.update(k.as_bytes());
                    h.update(b"\n");
                }
                format!("digest:{}", hex::encode(h.finalize()))
            }
        }
    }

    /// The event's kind, or `digest`.
    pub fn kind(&self) -> &'static str {
        match self.events.as_slice() {
            [one] => one.kind.as_str(),
            _ => "digest",
        }
    }

    /// How many events of each kind.
    pub fn counts(&self) -> BTreeMap<EventKind, usize> {
        let mut counts = BTreeMap::new();
        for e in &self.events {
            *counts.entry(e.kind).or_insert(0) += 1;
        }
        counts
    }

    /// The JSON a webhook or command gets: the event's document, or a
    /// digest's (`kind: digest`, its key, the count, counts by kind and the
    /// first [`DIGEST_DOCS`] events' documents).
    pub fn document(&self) -> Value {
        match self.events.as_slice() {
            [one] => one.document(),
            many => {
                let counts: Map<String, Value> = self
                    .counts()
                    .into_iter()
                    .map(|(k, n)| (k.as_str().to_owned(), Value::from(n)))
                    .collect();
                serde_json::json!({
                    "version": EVENT_VERSION,
                    "kind": "digest",
                    "key": self.key(),
                    "count": many.len(),
                    "counts": counts,
                    "events": many.iter().take(DIGEST_DOCS).map(Event::document).collect::<Vec<_>>(),
                })
            }
        }
    }
}
