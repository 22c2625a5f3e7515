//! Alert events as the outbox holds them: the event document a state change
//! (or a process that noticed something) writes for each channel it goes
//! to, and the channel defaults every writer routes by, read from the store
//! at most every few seconds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gale_model::alerts::{Defaults, RunEvent, TaskEvent};
use gale_model::time::rfc3339;
use gale_model::{DagId, RunId, TaskId};
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::prelude::Alerts;
use crate::{NewDelivery, RunRow, TiId};

/// The event document's version.
pub const EVENT_VERSION: u32 = 1;

/// One event, before it is written for its channels.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertEvent {
    /// `task.failed`, `run.deadline`, `cluster.no_scheduler`, ...
    pub kind: String,
    /// Unique per event: the same key for the same channel is one delivery.
    pub key: String,
    pub at: Timestamp,
    pub dag_id: Option<DagId>,
    pub run_id: Option<RunId>,
    pub run_key: Option<String>,
    pub task_id: Option<TaskId>,
    pub ti_id: Option<TiId>,
    pub try_number: Option<u32>,
    pub state: Option<String>,
    pub message: Option<String>,
    pub details: Map<String, Value>,
}

impl AlertEvent {
    /// A task event of try `try_number` of `ti` (task `task_id` of `run`).
    #[allow(clippy::too_many_arguments)]
    pub fn task(
        event: TaskEvent,
        run: &RunRow,
        ti: TiId,
        task_id: &TaskId,
        try_number: u32,
        state: &str,
        message: Option<&str>,
        at: Timestamp,
    ) -> AlertEvent {
        AlertEvent {
            kind: event.kind().to_owned(),
            key: format!("{}:{}:{try_number}", event.kind(), ti.0),
            at,
            dag_id: Some(run.dag_id.clone()),
            run_id: Some(run.id),
            run_key: Some(run.run_key.clone()),
            task_id: Some(task_id.clone()),
            ti_id: Some(ti),
            try_number: Some(try_number),
            state: Some(state.to_owned()),
            message: message.map(str::to_owned),
            details: Map::new(),
        }
    }

    /// A run event of `run`. `seq` tells apart a run's ends (it may be
    /// cleared and finish again); a deadline is one per run, whatever it is.
    pub fn run(event: RunEvent, run: &RunRow, seq: i64, at: Timestamp) -> AlertEvent {
        let key = match event {
            RunEvent::Deadline => format!("{}:{}", event.kind(), run.id.0),
            _ => format!("{}:{}:{seq}", event.kind(), run.id.0),
        };
        AlertEvent {
            kind: event.kind().to_owned(),
            key,
            at,
            dag_id: Some(run.dag_id.clone()),
            run_id: Some(run.id),
            run_key: Some(run.run_key.clone()),
            task_id: None,
            ti_id: None,
            try_number: None,
            state: Some(run.state.as_str().to_owned()),
            message: None,
            details: Map::new(),
        }
    }

    /// A cluster event: `key` is the same for every process that notices the
    /// same trouble, so it is delivered once.
    pub fn cluster(kind: &str, key: String, message: String, at: Timestamp) -> AlertEvent {
        AlertEvent {
            kind: kind.to_owned(),
            key,
            at,
            dag_id: None,
            run_id: None,
            run_key: None,
            task_id: None,
            ti_id: None,
            try_number: None,
            state: None,
            message: Some(message),
            details: Map::new(),
        }
    }

    /// The event document as stored (the deliverer adds `log_tail` and
    /// `link` when it sends).
    pub fn payload(&self) -> Map<String, Value> {
        let mut doc = Map::new();
        doc.insert("version".into(), json!(EVENT_VERSION));
        doc.insert("key".into(), json!(self.key));
        doc.insert("kind".into(), json!(self.kind));
        doc.insert("at".into(), json!(rfc3339(self.at)));
        let mut opt = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                doc.insert(k.into(), v);
            }
        };
        opt("dag_id", self.dag_id.as_ref().map(|d| json!(d.0)));
        opt("run_id", self.run_id.map(|r| json!(r.0)));
        opt("run_key", self.run_key.as_ref().map(|k| json!(k)));
        opt("task_id", self.task_id.as_ref().map(|t| json!(t.0)));
        opt("try_number", self.try_number.map(|t| json!(t)));
        opt("state", self.state.as_ref().map(|s| json!(s)));
        opt("message", self.message.as_ref().map(|m| json!(m)));
        doc.insert("details".into(), Value::Object(self.details.clone()));
        doc
    }

    /// One delivery of this event for each of `channels`.
    pub fn deliveries(&self, channels: &[String]) -> Vec<NewDelivery> {
        if channels.is_empty() {
            return Vec::new();
        }
        let payload = self.payload();
        channels
            .iter()
            .map(|channel| NewDelivery {
                channel: channel.clone(),
                event_key: self.key.clone(),
                kind: self.kind.clone(),
                dag_id: self.dag_id.clone(),
                run_id: self.run_id,
                ti_id: self.ti_id,
                payload: payload.clone(),
            })
            .collect()
    }
}

/// The channel defaults, as the channels in the store say, read again once
/// they are older than the cache's age. A store that cannot answer leaves
/// the last defaults read; before the first read it is an error, never "no
/// defaults" (which would drop the alerts they route).
#[derive(Debug)]
pub struct DefaultsCache {
    max_age: Duration,
    cached: Mutex<Option<(Instant, Arc<Defaults>)>>,
}

impl Default for DefaultsCache {
    fn default() -> Self {
        DefaultsCache::new(Duration::from_secs(5))
    }
}

impl DefaultsCache {
    pub fn new(max_age: Duration) -> DefaultsCache {
        DefaultsCache {
            max_age,
            cached: Mutex::new(None),
        }
    }

    pub async fn get<S: Alerts + ?Sized>(&self, store: &S) -> crate::Result<Arc<Defaults>> {
        let last = {
            let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            match &*cached {
                Some((at, d)) if at.elapsed() < self.max_age => return Ok(d.clone()),
                Some((_, d)) => Some(d.clone()),
                None => None,
            }
        };
        match store.list_channels().await {
            Ok(channels) => {
                let mut defaults = Defaults::default();
                for c in &channels {
                    defaults.add(&c.name, &default_events(&c.config));
                }
                let defaults = Arc::new(defaults);
                *self.cached.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), defaults.clone()));
                Ok(defaults)
            }
            Err(e) => match last {
                Some(last) => {
                    tracing::warn!(error = %e, "cannot read the alert channels; routing by the defaults last read");
                    Ok(last)
                }
                None => Err(e),
            },
        }
    }
}

/// A warning for each channel `dag` names that the store does not have: its
/// alerts would fail until it is added.
pub async fn missing_channels<S: Alerts + ?Sized>(
    store: &S,
    dag: &gale_model::Dag,
) -> crate::Result<Vec<String>> {
    let named = gale_model::alerts::named_channels(dag);
    if named.is_empty() {
        return Ok(Vec::new());
    }
    let have: std::collections::BTreeSet<String> = store
        .list_channels()
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect();
    Ok(named
        .into_iter()
        .filter(|n| !have.contains(*n))
        .map(|n| {
            format!(
                "alert channel {n} does not exist: its alerts fail until it is added (gale alerts channels add {n} ...)"
            )
        })
        .collect())
}

/// The events a channel's settings make it a default for (`defaults`).
pub fn default_events(config: &Map<String, Value>) -> Vec<String> {
    config
        .get("defaults")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
