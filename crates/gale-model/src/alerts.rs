//! Alerts as a DAG file declares them (`alerts:` on the DAG, on a task or in
//! its `defaults`, and a run's `deadline:`), which channels an event goes to,
//! and the event an alert carries.
//!
//! At DAG level `alerts` is about the run (it failed, succeeded, recovered,
//! missed its deadline) and about every task's retries; on a task it is about
//! that task (its `on_retry` replaces the DAG's). Channels marked as
//! defaults for an event (`gale alerts channels add --default on_failure`)
//! take the DAG-level events of every DAG that does not name its own.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Serialize};

use crate::duration::Span;
use crate::secrets::check_name;
use crate::{Dag, Task};

/// The most channels one event of a DAG file may name.
pub const MAX_CHANNELS: usize = 20;

/// Which channels each event goes to; `None`: not set here (a default or
/// the DAG's applies), `Some([])`: to none. A DAG file may name one channel
/// alone, without a list.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    #[serde(
        default,
        deserialize_with = "channel_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub on_failure: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "channel_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub on_retry: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "channel_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub on_success: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "channel_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub on_recovery: Option<Vec<String>>,
    /// DAG level only: a run that missed its `deadline:` (default: the
    /// `on_failure` channels).
    #[serde(
        default,
        deserialize_with = "channel_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub on_deadline: Option<Vec<String>>,
}

impl Alerts {
    pub fn is_empty(&self) -> bool {
        *self == Alerts::default()
    }

    /// `self`, with what it leaves unset taken from `fallback`.
    pub fn or(&self, fallback: &Alerts) -> Alerts {
        let pick = |a: &Option<Vec<String>>, b: &Option<Vec<String>>| a.clone().or(b.clone());
        Alerts {
            on_failure: pick(&self.on_failure, &fallback.on_failure),
            on_retry: pick(&self.on_retry, &fallback.on_retry),
            on_success: pick(&self.on_success, &fallback.on_success),
            on_recovery: pick(&self.on_recovery, &fallback.on_recovery),
            on_deadline: pick(&self.on_deadline, &fallback.on_deadline),
        }
    }

    /// Every problem with the channel names, each naming its event.
    pub fn check(&self, at_task: bool) -> Vec<String> {
        let mut errors = Vec::new();
        for (event, list) in self.events() {
            let Some(list) = list else { continue };
            if at_task && event == "on_deadline" {
                errors.push(
                    "`on_deadline` belongs in the DAG's `alerts:`, beside its `deadline:`".into(),
                );
            }
            if list.len() > MAX_CHANNELS {
                errors.push(format!(
                    "alerts.{event} names {} channels, more than the {MAX_CHANNELS} allowed",
                    list.len()
                ));
            }
            for name in list {
                if let Err(e) = check_name("alert channel", name) {
                    errors.push(format!("alerts.{event}: {e}"));
                }
            }
        }
        errors
    }

    fn events(&self) -> [(&'static str, &Option<Vec<String>>); 5] {
        [
            ("on_failure", &self.on_failure),
            ("on_retry", &self.on_retry),
            ("on_success", &self.on_success),
            ("on_recovery", &self.on_recovery),
            ("on_deadline", &self.on_deadline),
        ]
    }

    /// Every channel named anywhere, once each.
    pub fn channels(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self
            .events()
            .into_iter()
            .flat_map(|(_, l)| l.iter().flatten().map(String::as_str))
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// From when a run's deadline counts.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineFrom {
    /// The end of its data interval for a scheduled or backfill run, when it
    /// was queued for a manual one.
    #[default]
    IntervalEnd,
    /// When it was queued (created).
    Queued,
}

/// `deadline: 2h` or `deadline: {after: 2h, from: queued}`.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Deadline {
    pub after: Span,
    pub from: DeadlineFrom,
}

/// What a `deadline:` may be, for messages.
const DEADLINE_FORMS: &str =
    "write `deadline: 3h` or `deadline: {after: 3h, from: interval_end|queued}`";

impl<'de> Deserialize<'de> for Deadline {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // By hand, not an untagged enum: its error names neither what is
        // wrong nor what is allowed.
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Deadline;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a deadline: {DEADLINE_FORMS}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Deadline, E> {
                Ok(Deadline {
                    after: Span::from_secs(v),
                    from: DeadlineFrom::default(),
                })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Deadline, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "deadline: {v} is negative; {DEADLINE_FORMS}"
                    ))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Deadline, E> {
                let after = crate::duration::parse(v)
                    .map_err(|e| E::custom(format!("deadline: {e}; {DEADLINE_FORMS}")))?;
                Ok(Deadline {
                    after,
                    from: DeadlineFrom::default(),
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Deadline, A::Error> {
                let mut after = None;
                let mut from = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "after" if after.is_none() => {
                            let text = map.next_value::<SpanText>()?;
                            after = Some(text.0.map_err(|e| {
                                de::Error::custom(format!("deadline.after: {e}; {DEADLINE_FORMS}"))
                            })?);
                        }
                        "from" if from.is_none() => {
                            let text = map.next_value::<String>()?;
                            from = Some(match text.as_str() {
                                "interval_end" => DeadlineFrom::IntervalEnd,
                                "queued" => DeadlineFrom::Queued,
                                other => {
                                    return Err(de::Error::custom(format!(
                                        "deadline.from: {other:?} is not one of interval_end \
                                         (the end of the run's data interval, the default) or \
                                         queued (when the run was created)"
                                    )));
                                }
                            });
                        }
                        "after" | "from" => {
                            return Err(de::Error::custom(format!(
                                "deadline: `{key}` is given twice"
                            )));
                        }
                        other => {
                            return Err(de::Error::custom(format!(
                                "deadline: `{other}` is not a field of a deadline (it has `after` \
                                 and `from`); {DEADLINE_FORMS}"
                            )));
                        }
                    }
                }
                let Some(after) = after else {
                    return Err(de::Error::custom(format!(
                        "deadline: `after` is missing; {DEADLINE_FORMS}"
                    )));
                };
                Ok(Deadline {
                    after,
                    from: from.unwrap_or_default(),
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration, or why it is not one: the error is worded by the caller,
/// which knows the field.
struct SpanText(Result<Span, String>);

impl<'de> Deserialize<'de> for SpanText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SpanText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 3h")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SpanText, E> {
                Ok(SpanText(Ok(Span::from_secs(v))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SpanText, E> {
                Ok(SpanText(
                    u64::try_from(v)
                        .map(Span::from_secs)
                        .map_err(|_| format!("{v} is negative")),
                ))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SpanText, E> {
                Ok(SpanText(crate::duration::parse(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of channels, or one channel alone (`on_failure: ops-mail`).
fn channel_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of alert channels (`[ops-mail, pager]`) or one (`ops-mail`)")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(vec![v.to_owned()]))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(name) = seq.next_element::<String>()? {
                out.push(name);
            }
            Ok(Some(out))
        }
    }
    d.deserialize_any(V)
}

/// Channels marked as defaults for the DAG-level events, and for cluster
/// alerts: what applies where a DAG names nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defaults {
    pub alerts: Alerts,
    /// Cluster alerts (no live scheduler, a queue nobody serves, a silent
    /// process, a failover) go to these.
    pub cluster: Vec<String>,
}

impl Defaults {
    /// Adds `channel` as a default for each of `events` (`on_failure`, ...,
    /// `cluster`); unknown event names are ignored.
    pub fn add(&mut self, channel: &str, events: &[String]) {
        for e in events {
            let list = match e.as_str() {
                "on_failure" => &mut self.alerts.on_failure,
                "on_retry" => &mut self.alerts.on_retry,
                "on_success" => &mut self.alerts.on_success,
                "on_recovery" => &mut self.alerts.on_recovery,
                "on_deadline" => &mut self.alerts.on_deadline,
                "cluster" => {
                    self.cluster.push(channel.to_owned());
                    continue;
                }
                _ => continue,
            };
            list.get_or_insert_with(Vec::new).push(channel.to_owned());
        }
    }
}

/// The events a channel may be a default for.
pub const DEFAULT_EVENTS: [&str; 6] = [
    "on_failure",
    "on_retry",
    "on_success",
    "on_recovery",
    "on_deadline",
    "cluster",
];

/// What happened to a task's try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskEvent {
    /// It failed with no tries left.
    Failed,
    /// It failed and will be retried.
    Retry,
    Success,
    /// It succeeded on a try after a failed one.
    Recovered,
}

impl TaskEvent {
    pub fn kind(self) -> &'static str {
        match self {
            TaskEvent::Failed => "task.failed",
            TaskEvent::Retry => "task.retry",
            TaskEvent::Success => "task.success",
            TaskEvent::Recovered => "task.recovered",
        }
    }
}

/// What happened to a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEvent {
    Failed,
    Success,
    /// It succeeded, and the DAG's run before it had failed.
    Recovered,
    /// It is not finished by its deadline.
    Deadline,
}

impl RunEvent {
    pub fn kind(self) -> &'static str {
        match self {
            RunEvent::Failed => "run.failed",
            RunEvent::Success => "run.success",
            RunEvent::Recovered => "run.recovered",
            RunEvent::Deadline => "run.deadline",
        }
    }
}

fn owned(list: &Option<Vec<String>>) -> Vec<String> {
    list.clone().unwrap_or_default()
}

/// The channels a task event of `task` (in `dag`) goes to.
pub fn task_channels(dag: &Dag, task: &Task, event: TaskEvent, defaults: &Defaults) -> Vec<String> {
    match event {
        TaskEvent::Failed => owned(&task.alerts.on_failure),
        TaskEvent::Retry => owned(
            &task
                .alerts
                .on_retry
                .clone()
                .or_else(|| dag.alerts.on_retry.clone())
                .or_else(|| defaults.alerts.on_retry.clone()),
        ),
        TaskEvent::Success => owned(&task.alerts.on_success),
        TaskEvent::Recovered => owned(&task.alerts.on_recovery),
    }
}

/// The channels a run event of `dag` goes to.
pub fn run_channels(dag: &Dag, event: RunEvent, defaults: &Defaults) -> Vec<String> {
    let dag_level = dag.alerts.or(&defaults.alerts);
    match event {
        RunEvent::Failed => owned(&dag_level.on_failure),
        RunEvent::Success => owned(&dag_level.on_success),
        RunEvent::Recovered => owned(&dag_level.on_recovery),
        RunEvent::Deadline => owned(
            &dag.alerts
                .on_deadline
                .clone()
                .or_else(|| defaults.alerts.on_deadline.clone())
                .or_else(|| dag_level.on_failure.clone()),
        ),
    }
}

/// Whether any task event of `task` could alert (so a worker need not look
/// at the channel defaults for one that cannot).
pub fn task_may_alert(dag: &Dag, task: &Task, event: TaskEvent) -> bool {
    match event {
        // A default may name channels for retries.
        TaskEvent::Retry => match &task.alerts.on_retry {
            Some(list) => !list.is_empty(),
            None => dag.alerts.on_retry.as_ref().is_none_or(|l| !l.is_empty()),
        },
        _ => !task_channels(dag, task, event, &Defaults::default()).is_empty(),
    }
}

/// Every channel `dag` names, at DAG level or on a task, once each, by name.
pub fn named_channels(dag: &Dag) -> Vec<&str> {
    let mut all = dag.alerts.channels();
    for t in &dag.tasks {
        all.extend(t.alerts.channels());
    }
    all.sort_unstable();
    all.dedup();
    all
}

#[cfg(test)]
mod tests;
