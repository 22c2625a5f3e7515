//! `LISTEN gale_queued, gale_changed` on a dedicated connection, fed into a
//! [`Notifier`]; it reconnects on its own. The same connection asks `SELECT 1`
//! every second while a call is in flight (and after [`PROBE_QUIET`] without
//! an answer from the server): a server that stopped answering with its
//! connections open (frozen, or its host stalled) is noticed within
//! [`PROBE_EVERY`] + [`PROBE_WITHIN`] of a call being sent to it, and every
//! call in flight on the pool is given up at once ([`PgStore::outage`])
//! instead of at its own timeout. While it is up it also serves the light
//! calls (see `spare`), and it closes pooled connections left idle.

use super::*;

/// How often the notification connection checks that the server answers.
pub(super) const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long the server has to answer that check.
pub(super) const PROBE_WITHIN: Duration = Duration::from_secs(2);
/// With no call in flight, the server is probed only after this long without
/// an answer: an idle process sends next to nothing.
pub(super) const PROBE_QUIET: Duration = Duration::from_secs(6);

impl PgStore {
    /// Feeds the database's notifications into `notifier` until `stop` resolves:
    /// `gale_queued` wakes workers, `gale_changed` wakes schedulers. Runs on its
    /// own connection; after every (re)connect it wakes both, since notifications
    /// sent while it was away are lost. Every loop also polls, so this only makes
    /// other processes' changes visible sooner.
    pub async fn listen(&self, notifier: Arc<Notifier>, stop: CancellationToken) {
        let mut delay = Duration::from_millis(100);
        loop {
            let session = self.listen_once(&notifier, &stop);
            match session.await {
                ListenEnd::Stopped => return,
                ListenEnd::Lost { why, was_up } => {
                    debug!(error = %why, "notification connection lost; reconnecting");
                    if was_up {
                        delay = Duration::from_millis(100);
                    }
                }
                ListenEnd::Silent => {
                    warn!(
                        "the database stopped answering (its connections are open, nothing comes back): giving up every call in flight on it"
                    );
                    self.outage();
                    delay = Duration::from_millis(100);
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    async fn listen_once(&self, notifier: &Notifier, stop: &CancellationToken) -> ListenEnd {
        let lost = |why: String| ListenEnd::Lost { why, was_up: false };
        let (client, mut connection) = match connect::connect(
            &self.hosts,
            &self.tls,
            self.per_host_timeout(),
            self.connect_budget(),
        )
        .await
        {
            Ok(pair) => pair,
            Err(e) => return lost(describe(&e)),
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(msg)) => {
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                    Some(Err(_)) | None => return,
                }
            }
        });
        let _abort = AbortOnDrop(driver);
        // Light calls are bounded below the probe's window: one waiting on a
        // row lock gives up after a second rather than hold the probe behind
        // it until the server looks silent.
        if let Err(e) = client
            .batch_execute("LISTEN gale_queued; LISTEN gale_changed; SET lock_timeout = '1s'")
            .await
        {
            return lost(describe(&e));
        }
        let spare = Arc::new(spare::Spare::new(client, self.activity.clone()));
        self.set_spare(Some(spare.clone()));
        let _lent = Unlend(self, &spare);
        // Whatever was announced while we were not listening: look now.
        notifier.workers.notify_one();
        notifier.scheduler.notify_one();
        let lost = |why: String| ListenEnd::Lost { why, was_up: true };
        let mut probe = tokio::time::interval(PROBE_EVERY);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        probe.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return ListenEnd::Stopped,
                _ = spare.retired.notified() => {
                    return lost("a call on the notification connection failed".into());
                }
                msg = rx.recv() => match msg {
                    Some(AsyncMessage::Notification(n)) => {
                        // The payload: the sender's origin, then the run that changed.
                        let mut words = n.payload().split(' ');
                        if words.next() == Some(self.origin.as_str()) {
                            continue;
                        }
                        match (n.channel(), words.next().and_then(|r| r.parse().ok())) {
                            ("gale_queued", _) => notifier.workers.notify_one(),
                            (_, Some(run)) => notifier.run_changed(RunId(run)),
                            _ => notifier.scheduler.notify_one(),
                        }
                    }
                    Some(_) => {}
                    None => return lost("connection closed".into()),
                },
                // A silent peer (a partition, a frozen server) is noticed by a
                // query, not by waiting.
                _ = probe.tick() => {
                    self.close_idle();
                    if !self.activity.worth_probing(PROBE_QUIET) {
                        continue;
                    }
                    let sent = self.activity.now_ms();
                    match tokio::time::timeout(PROBE_WITHIN, spare.client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => self.activity.answered(),
                        Ok(Err(e)) => return lost(describe(&e)),
                        // Queued behind a slow light call on this connection,
                        // while the server answered others: not silent.
                        Err(_) if self.activity.answered_after(sent) => {}
                        Err(_) => return ListenEnd::Silent,
                    }
                }
            }
        }
    }
}

enum ListenEnd {
    Stopped,
    /// The connection failed (`was_up`: after it had been listening).
    Lost {
        why: String,
        was_up: bool,
    },
    /// The server stopped answering the probe.
    Silent,
}

/// Takes the notification connection back from light calls when it ends.
struct Unlend<'a>(&'a PgStore, &'a Arc<spare::Spare>);

impl Drop for Unlend<'_> {
    fn drop(&mut self) {
        self.0.retire(self.1);
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
