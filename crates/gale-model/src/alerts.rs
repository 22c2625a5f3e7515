//! Alerts as a DAG file declares them (`alerts:` on the DAG, on a task or in
//! its `defaults`, and a run's `deadline:`), which channels an event goes to,
//! and the event an alert carries.
//!
//! At DAG level `alerts` is about the run (it failed, succeeded, recovered,
//! missed its deadline) and about every task's retries; on a task it is about
//! that task (its `on_retry` replaces the DAG's). Channels marked as
//! defaults for an event (`gale alerts channels add --default on_failure`)
//! take the DAG-level events of every DAG that does not name its own.

use serde::{Deserialize, Serialize};

use crate::duration::Span;
use crate::secrets::check_name;
use crate::{Dag, Task};

/// The most channels one event of a DAG file may name.
pub const MAX_CHANNELS: usize = 20;

/// Which channels each event goes to; `None`: not set here (a default or
/// the DAG's applies), `Some([])`: to none.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_retry: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_recovery: Option<Vec<String>>,
    /// DAG level only: a run that missed its `deadline:` (default: the
    /// `on_failure` channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

impl<'de> Deserialize<'de> for Deadline {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Short(Span),
            Long(Long),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Long {
            after: Span,
            #[serde(default)]
            from: DeadlineFrom,
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Short(after) => Deadline {
                after,
                from: DeadlineFrom::default(),
            },
            Raw::Long(l) => Deadline {
                after: l.after,
                from: l.from,
            },
        })
    }
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
