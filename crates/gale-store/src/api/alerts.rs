//! Alerts as stored: the channels they go to (their secret part sealed, like a
//! connection's) and the delivery outbox. An event is enqueued once per
//! channel and event key, whoever enqueues it; any process may deliver it by
//! claiming it under a lease, and its result is fenced on the claimer and
//! attempt, so a deliverer that died or lost its lease changes nothing.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use gale_model::{DagId, RunId};
use jiff::Timestamp;
use serde::Serialize;

use crate::*;

/// The most channels a listing returns.
pub const CHANNELS_LISTED: u32 = 1_000;
/// The most deliveries one listing returns.
pub const DELIVERIES_LISTED: u32 = 1_000;
/// The most characters of a delivery's error kept.
pub const DELIVERY_ERROR_MAX: usize = 2_000;

/// How a channel delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Email,
    Webhook,
    Slack,
    Command,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Command => "command",
        }
    }

    pub fn parse(s: &str) -> Option<ChannelKind> {
        Some(match s {
            "email" => ChannelKind::Email,
            "webhook" => ChannelKind::Webhook,
            "slack" => ChannelKind::Slack,
            "command" => ChannelKind::Command,
            _ => return None,
        })
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored alert channel: its settings in clear, its secret part (SMTP
/// password, webhook URL or signing secret) only sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlertChannelRow {
    pub name: String,
    pub kind: ChannelKind,
    /// The non-secret settings.
    pub config: serde_json::Map<String, serde_json::Value>,
    pub sealed: Option<Sealed>,
    pub description: Option<String>,
    /// Set by the store (ignored on put).
    pub updated_at: Option<Timestamp>,
}

/// Where a delivery is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its `next_at`.
    Pending,
    /// Claimed by a deliverer until its lease ends.
    Sending,
    Sent,
    /// Given up; its last error says why.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        Some(match s {
            "pending" => DeliveryState::Pending,
            "sending" => DeliveryState::Sending,
            "sent" => DeliveryState::Sent,
            "failed" => DeliveryState::Failed,
            _ => return None,
        })
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event for one channel, to deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDelivery {
    pub channel: String,
    /// The event's idempotency key: the same (channel, key) is one delivery.
    pub event_key: String,
    /// The event, e.g. `task.failed`, `run.deadline`, `cluster.no_scheduler`.
    pub kind: String,
    pub dag_id: Option<DagId>,
    pub run_id: Option<RunId>,
    pub ti_id: Option<TiId>,
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// A stored delivery.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub created_at: Timestamp,
    pub channel: String,
    pub event_key: String,
    pub kind: String,
    pub dag_id: Option<DagId>,
    pub run_id: Option<RunId>,
    pub ti_id: Option<TiId>,
    pub payload: serde_json::Map<String, serde_json::Value>,
    pub state: DeliveryState,
    /// How many times it was claimed (the claim being worked on included).
    pub attempts: u32,
    /// When it may be tried (again).
    pub next_at: Timestamp,
    pub claimed_by: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub last_error: Option<String>,
    pub sent_at: Option<Timestamp>,
}

/// How a claimed delivery went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryResult {
    Sent,
    /// Failed for now: pending again, not before `at`.
    Retry {
        at: Timestamp,
        error: String,
    },
    /// Failed for good.
    GiveUp {
        error: String,
    },
}

/// Which deliveries to list, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub run_id: Option<RunId>,
    pub channel: Option<String>,
    pub state: Option<DeliveryState>,
    /// Only ids below this one (the next page).
    pub before: Option<i64>,
    /// At most this many: 0 means 100, never more than [`DELIVERIES_LISTED`].
    pub limit: u32,
}

/// Alert channels and the delivery outbox.
#[async_trait]
pub trait Alerts: Send + Sync + 'static {
    /// Creates or replaces a channel.
    async fn put_channel(&self, row: &AlertChannelRow) -> Result<()>;
    async fn channel(&self, name: &str) -> Result<Option<AlertChannelRow>>;
    /// Every channel (at most [`CHANNELS_LISTED`]), by name.
    async fn list_channels(&self) -> Result<Vec<AlertChannelRow>>;
    /// Returns false when there was no such channel. Its pending deliveries
    /// are given up (failed, with the error `channel deleted`); the others
    /// stay, and one being sent is given up by its deliverer, which finds no
    /// channel to open when it is claimed again.
    async fn delete_channel(&self, name: &str) -> Result<bool>;

    /// Adds deliveries, due now; one whose (channel, event key) is already
    /// there is left out. Returns how many were new. One without a channel,
    /// event key or kind (or with one over 500 bytes) is refused, and then
    /// none is added.
    async fn enqueue_alerts(&self, new: &[NewDelivery]) -> Result<u64>;
    /// Claims up to `limit` due deliveries (pending ones whose `next_at` has
    /// come, and sending ones whose lease ended) for `claimer` until now +
    /// `lease`, each one's attempts counted up. No delivery goes to two
    /// claimers at once.
    ///
    /// Only deliveries of channels that are not quiet are claimed (or of a
    /// channel that is gone, so that they can be given up); a channel some
    /// of whose deliveries are claimed is quiet for `window` from now, in
    /// the same transaction. So what falls due for a channel while it is
    /// quiet is claimed together once the window has passed, to go out as
    /// one digest. No two claimers take deliveries of one channel at once.
    async fn claim_deliveries(
        &self,
        claimer: &str,
        limit: u32,
        lease: Duration,
        window: Duration,
    ) -> Result<Vec<DeliveryRow>>;
    /// Records how a claimed delivery went, if it is still `claimer`'s claim
    /// number `attempt`. Returns whether it was.
    async fn finish_delivery(
        &self,
        id: i64,
        claimer: &str,
        attempt: u32,
        result: &DeliveryResult,
    ) -> Result<bool> {
        let done = self
            .finish_deliveries(claimer, &[(id, attempt, result.clone())])
            .await?;
        Ok(done.first().copied().unwrap_or(false))
    }
    /// Records how each of several claimed deliveries went (id, attempt,
    /// result), all in one transaction, so the deliveries of one message
    /// (a digest) are recorded together or not at all. Returns, for each,
    /// whether it was still `claimer`'s claim number `attempt`.
    async fn finish_deliveries(
        &self,
        claimer: &str,
        results: &[(i64, u32, DeliveryResult)],
    ) -> Result<Vec<bool>>;
    /// Deliveries matching `filter`, newest first.
    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRow>>;
    /// How many deliveries each channel has in each state, by channel and state.
    async fn delivery_counts(&self) -> Result<Vec<(String, DeliveryState, u64)>>;
    /// Deletes sent and failed deliveries created before `older_than`;
    /// returns how many.
    async fn prune_deliveries(&self, older_than: Timestamp) -> Result<u64>;
}
