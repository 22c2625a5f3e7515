//! The deliverer any process runs: every poll (and when woken) it claims the
//! due deliveries, groups them by channel, opens each channel, sends one
//! message per channel (one event alone, or a digest of all its claimed
//! ones), and records each delivery's result, fenced on its claim. The
//! store holds a channel back for the digest window after a claim, so a
//! storm of events becomes one message and then one digest per window.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gale_secrets::Vault;
use gale_store::{DeliveryResult, DeliveryRow, Store};
use jiff::Timestamp;
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::channel::Channel;
use crate::event::{Batch, Event, EventKind};
use crate::send::{Answer, Refusal, Settings, send};

/// The most log lines read for a log's tail.
pub const LOG_READ_MAX: u32 = 2_000;
/// How many events of a digest show their log's tail.
const DIGEST_TAILS: usize = 5;
/// How many lines a log's tail keeps.
pub const LOG_TAIL: usize = 20;
/// The longest log line kept in a tail, in bytes.
const LOG_LINE_MAX: usize = 1_000;

/// How a deliverer works.
#[derive(Clone, Debug)]
pub struct Options {
    /// Who claims: unique per process (e.g. its node id).
    pub claimer: String,
    /// How often to look for due deliveries when not woken.
    pub poll: Duration,
    /// How long a claim holds; a send is bounded well under it.
    pub lease: Duration,
    /// How long a channel is held back after a claim (the digest window).
    pub window: Duration,
    /// The most deliveries one claim takes.
    pub claim_limit: u32,
    /// How long one send may take before it counts as a temporary failure.
    pub send_timeout: Duration,
    /// After this many attempts a temporary failure is given up.
    pub max_attempts: u32,
    /// The first retry's delay, doubled for each attempt after it.
    pub retry_first: Duration,
    /// The longest retry delay.
    pub retry_max: Duration,
    /// Sent and failed deliveries older than this are deleted, looked for
    /// once every [`PRUNE_EVERY`].
    pub keep: Duration,
    pub settings: Settings,
}

/// How often a deliverer deletes the deliveries older than its `keep`.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Options {
    /// The defaults: poll 1 s, lease 60 s, window 60 s, 1,000 a claim, 30 s
    /// a send, 10 attempts, retries after 5 s doubling up to 10 min, kept
    /// 30 days.
    pub fn new(claimer: impl Into<String>, settings: Settings) -> Options {
        Options {
            claimer: claimer.into(),
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            window: Duration::from_secs(60),
            claim_limit: 1_000,
            send_timeout: Duration::from_secs(30),
            max_attempts: 10,
            retry_first: Duration::from_secs(5),
            retry_max: Duration::from_secs(600),
            keep: Duration::from_secs(30 * 86_400),
            settings,
        }
    }
}

/// Deliveries counted by how they went, for one channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChannelCounts {
    /// Delivered (in a message of their own or in a digest).
    pub sent: u64,
    /// Failed for now, to be tried again.
    pub retried: u64,
    /// Given up.
    pub failed: u64,
    /// Messages sent (a digest is one).
    pub messages: u64,
}

/// Counts by channel since the deliverer started, for metrics.
#[derive(Debug, Default)]
pub struct Counters {
    // A std Mutex: held for a map update, never across an await.
    by_channel: Mutex<BTreeMap<String, ChannelCounts>>,
}

impl Counters {
    /// Every channel's counts so far, by name.
    pub fn snapshot(&self) -> BTreeMap<String, ChannelCounts> {
        self.by_channel
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    fn add(&self, channel: &str, f: impl FnOnce(&mut ChannelCounts)) {
        if let Ok(mut m) = self.by_channel.lock() {
            f(m.entry(channel.to_owned()).or_default());
        }
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    /// Results refused because the claim was no longer this deliverer's.
    pub fenced: usize,
}

/// Claims, sends and records deliveries; cheap to clone.
#[derive(Clone)]
pub struct Deliverer {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    vault: Vault,
    options: Options,
    wake: Arc<Notify>,
    counters: Arc<Counters>,
}

impl Deliverer {
    pub fn new(store: Arc<dyn Store>, vault: Vault, options: Options) -> Deliverer {
        Deliverer {
            inner: Arc::new(Inner {
                store,
                vault,
                options,
                wake: Arc::new(Notify::new()),
                counters: Arc::new(Counters::default()),
            }),
        }
    }

    /// Notify it to look for due deliveries now (e.g. after enqueuing).
    pub fn waker(&self) -> Arc<Notify> {
        self.inner.wake.clone()
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.inner.counters.clone()
    }

    /// Delivers until `cancel`; a pass under way is finished first (it is
    /// bounded by the send timeout).
    pub async fn run(self, cancel: CancellationToken) {
        let o = &self.inner.options;
        info!(claimer = %o.claimer, window_s = o.window.as_secs(), "alert deliverer started");
        // The first prune a while after the start, not with every restart.
        let mut next_prune = tokio::time::Instant::now() + PRUNE_EVERY / 6;
        loop {
            if tokio::time::Instant::now() >= next_prune {
                next_prune += PRUNE_EVERY;
                self.prune().await;
            }
            let full = match self.pass().await {
                Ok(p) => p.claimed >= o.claim_limit as usize,
                Err(e) => {
                    warn!(error = %e, "alert delivery pass failed");
                    false
                }
            };
            if full {
                // More may be due for other channels: look again at once.
                if cancel.is_cancelled() {
                    break;
                }
                continue;
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(o.poll) => {}
                () = self.inner.wake.notified() => {}
            }
        }
        info!("alert deliverer stopped");
    }

    /// Deletes the sent and failed deliveries older than `keep`.
    pub async fn prune(&self) {
        let keep = self.inner.options.keep;
        let Some(before) = jiff::SignedDuration::try_from(keep)
            .ok()
            .and_then(|d| Timestamp::now().checked_sub(d).ok())
        else {
            return;
        };
        match self.inner.store.prune_deliveries(before).await {
            Ok(0) => {}
            Ok(n) => info!(
                deleted = n,
                keep_days = keep.as_secs() / 86_400,
                "old alert deliveries deleted"
            ),
            Err(e) => warn!(error = %e, "deleting old alert deliveries failed"),
        }
    }

    /// Claims what is due once, sends it and records how it went.
    pub async fn pass(&self) -> Result<Pass, gale_store::Error> {
        let o = &self.inner.options;
        let rows = self
            .inner
            .store
            .claim_deliveries(&o.claimer, o.claim_limit, o.lease, o.window)
            .await?;
        if rows.is_empty() {
            return Ok(Pass::default());
        }
        let claimed = rows.len();
        let mut by_channel: BTreeMap<String, Vec<DeliveryRow>> = BTreeMap::new();
        for row in rows {
            by_channel.entry(row.channel.clone()).or_default().push(row);
        }
        // Channels at once: a slow one does not hold the others up.
        let mut tasks = tokio::task::JoinSet::new();
        for (name, rows) in by_channel {
            let me = self.clone();
            tasks.spawn(async move { me.deliver_channel(&name, rows).await });
        }
        let mut pass = Pass {
            claimed,
            ..Pass::default()
        };
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(p) => {
                    pass.sent += p.sent;
                    pass.retried += p.retried;
                    pass.failed += p.failed;
                    pass.fenced += p.fenced;
                }
                Err(e) => warn!(error = %e, "an alert channel's delivery task failed"),
            }
        }
        Ok(pass)
    }

    async fn deliver_channel(&self, name: &str, rows: Vec<DeliveryRow>) -> Pass {
        let inner = &self.inner;
        let channel = match inner.vault.channel(name).await {
            Ok(Some(c)) => Channel::from_opened(c).map_err(|e| e.to_string()),
            // Tried again: a channel a DAG names may be added after it.
            Ok(None) => {
                let refusal = Refusal::Temporary(format!(
                    "the alert channel {name} does not exist (add it, and this is sent)"
                ));
                return self.finish_all(name, &rows, &Err(refusal)).await;
            }
            Err(e) if e.is_retryable() => {
                let refusal = Refusal::Temporary(format!("cannot read alert channel {name}: {e}"));
                return self.finish_all(name, &rows, &Err(refusal)).await;
            }
            // This process lacks the key the channel is sealed under: a
            // process that has it may send it, so it is tried again.
            Err(e @ (gale_secrets::Error::NoKey(_) | gale_secrets::Error::Sealed(_))) => {
                warn!(channel = name, claimer = %inner.options.claimer, error = %e, "cannot open an alert channel's secrets: give this process the secret key");
                let refusal = Refusal::Temporary(format!("{} (on {})", e, inner.options.claimer));
                return self.finish_all(name, &rows, &Err(refusal)).await;
            }
            Err(e) => Err(e.to_string()),
        };
        let channel = match channel {
            Ok(c) => c,
            Err(e) => {
                return self
                    .finish_all(name, &rows, &Err(Refusal::Permanent(e)))
                    .await;
            }
        };
        let mut pass = Pass::default();
        let mut good = Vec::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            match Event::from_delivery(&row) {
                Ok(e) => {
                    events.push(e);
                    good.push(row);
                }
                Err(e) => {
                    let bad = Err(Refusal::Permanent(e.to_string()));
                    add(&mut pass, self.finish_all(name, &[row], &bad).await);
                }
            }
        }
        if good.is_empty() {
            return pass;
        }
        let settings = &inner.options.settings;
        for e in &mut events {
            e.link = link(settings.base_url.as_deref(), e);
        }
        // A message of its own shows its log's tail; a digest, those of its
        // first few events.
        for (row, event) in good.iter().zip(events.iter_mut()).take(DIGEST_TAILS) {
            event.log_tail = self.log_tail(row, event).await;
        }
        let Ok(batch) = Batch::of(events) else {
            return pass;
        };
        let sent = send(&channel, settings, &batch, inner.options.send_timeout).await;
        match &sent {
            Ok(a) => {
                inner.counters.add(name, |c| c.messages += 1);
                info!(channel = name, key = %batch.key(), events = good.len(), answer = %a.text, "alert sent");
            }
            Err(r) => {
                warn!(channel = name, key = %batch.key(), events = good.len(), error = %r, permanent = r.is_permanent(), "alert not sent")
            }
        }
        add(&mut pass, self.finish_all(name, &good, &sent).await);
        pass
    }

    /// Records `sent` for each of `rows`.
    async fn finish_all(
        &self,
        name: &str,
        rows: &[DeliveryRow],
        sent: &Result<Answer, Refusal>,
    ) -> Pass {
        let inner = &self.inner;
        let o = &inner.options;
        let now = match inner.store.now().await {
            Ok(t) => t,
            Err(_) => Timestamp::now(),
        };
        let results: Vec<(i64, u32, DeliveryResult)> = rows
            .iter()
            .map(|row| {
                let result = match sent {
                    Ok(_) => DeliveryResult::Sent,
                    Err(Refusal::Permanent(e)) => DeliveryResult::GiveUp { error: e.clone() },
                    Err(Refusal::Temporary(e)) if row.attempts >= o.max_attempts => {
                        DeliveryResult::GiveUp {
                            error: format!("gave up after {} attempts: {e}", row.attempts),
                        }
                    }
                    Err(Refusal::Temporary(e)) => DeliveryResult::Retry {
                        at: now
                            .checked_add(backoff(o.retry_first, o.retry_max, row.attempts))
                            .unwrap_or(now),
                        error: e.clone(),
                    },
                };
                (row.id, row.attempts, result)
            })
            .collect();
        let mut pass = Pass::default();
        // One transaction: a message's deliveries are recorded together, so
        // one sent again (its deliverer died first) is the same digest, with
        // the same key.
        let done = match inner.store.finish_deliveries(&o.claimer, &results).await {
            Ok(done) => done,
            Err(e) => {
                // The leases run out and the deliveries are claimed again:
                // a sent one may then be sent twice, with the same key.
                warn!(channel = name, deliveries = rows.len(), error = %e, "cannot record alert deliveries' results");
                return pass;
            }
        };
        for ((id, attempt, result), ok) in results.iter().zip(done) {
            if !ok {
                pass.fenced += 1;
                warn!(
                    channel = name,
                    delivery = id,
                    attempt = attempt,
                    "alert delivery result refused: the claim's lease ran out and it was claimed again"
                );
                continue;
            }
            match result {
                DeliveryResult::Sent => {
                    pass.sent += 1;
                    inner.counters.add(name, |c| c.sent += 1);
                }
                DeliveryResult::Retry { .. } => {
                    pass.retried += 1;
                    inner.counters.add(name, |c| c.retried += 1);
                }
                DeliveryResult::GiveUp { .. } => {
                    pass.failed += 1;
                    inner.counters.add(name, |c| c.failed += 1);
                }
            }
        }
        pass
    }

    /// The last [`LOG_TAIL`] lines of the try's log, read forward a page at
    /// a time, [`LOG_READ_MAX`] lines at most.
    async fn log_tail(&self, row: &DeliveryRow, event: &Event) -> Vec<String> {
        let (Some(ti), Some(try_number)) = (row.ti_id, event.try_number) else {
            return Vec::new();
        };
        const PAGE: u32 = 500;
        let mut tail = std::collections::VecDeque::with_capacity(LOG_TAIL + 1);
        let (mut after, mut read) = (0i64, 0u32);
        while read < LOG_READ_MAX {
            let page = match self
                .inner
                .store
                .read_logs(ti, try_number, after, PAGE)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    debug!(error = %e, "cannot read a log's tail for an alert");
                    break;
                }
            };
            let n = page.len();
            read = read.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
            for line in page {
                after = after.max(line.seq);
                tail.push_back(crate::send::cut(&line.text, LOG_LINE_MAX).to_owned());
                if tail.len() > LOG_TAIL {
                    tail.pop_front();
                }
            }
            if n < PAGE as usize {
                return tail.into();
            }
        }
        let mut tail: Vec<String> = tail.into();
        tail.push(format!("… (the log is longer than {LOG_READ_MAX} lines: these are the last of the first {LOG_READ_MAX})"));
        tail
    }
}

fn add(to: &mut Pass, p: Pass) {
    to.sent += p.sent;
    to.retried += p.retried;
    to.failed += p.failed;
    to.fenced += p.fenced;
}

/// The delay before retry number `attempts`: `first` doubled for each
/// attempt after the first, at most `max`, jittered to between half and all
/// of it (so retries of one storm spread out).
pub fn backoff(first: Duration, max: Duration, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    let full = first.saturating_mul(1u32 << doublings).min(max);
    let half = full / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(if jitter_ms == 0 {
        0
    } else {
        rand::random_range(0..=jitter_ms)
    })
}

/// The web UI's page for the event: the task's try, or the run.
pub fn link(base_url: Option<&str>, e: &Event) -> Option<String> {
    let base = base_url?.trim_end_matches('/');
    if base.is_empty() {
        return None;
    }
    let run = e.run_id?;
    Some(match (&e.task_id, e.try_number) {
        (Some(task), Some(n)) => format!(
            "{base}/runs/{run}/tasks/{}?try={n}",
            gale_model::template::percent_encode(task)
        ),
        (Some(task), None) => format!(
            "{base}/runs/{run}/tasks/{}",
            gale_model::template::percent_encode(task)
        ),
        (None, _) => format!("{base}/runs/{run}"),
    })
}

/// Sends a `test` event through `channel` (what `gale alerts test` does).
/// How long a test message may take.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn test_channel(channel: &Channel, settings: &Settings) -> Result<Answer, Refusal> {
    let at = Timestamp::now();
    let mut event = Event::new(
        format!("test:{}:{}", channel.name, at.as_millisecond()),
        EventKind::Test,
        at,
    );
    event.message = Some(format!(
        "A test of the alert channel {} ({}): if you read this, it works.",
        channel.name, channel.kind
    ));
    event.link = settings
        .base_url
        .as_deref()
        .map(|b| format!("{}/", b.trim_end_matches('/')));
    send(channel, settings, &Batch::one(event), TEST_TIMEOUT).await
}
