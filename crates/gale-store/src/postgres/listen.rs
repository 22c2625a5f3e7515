//! `LISTEN gale_queued, gale_changed` on a dedicated connection, fed into a
//! [`Notifier`]; it reconnects on its own and never changes the store.

use super::*;

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
                ListenEnd::Lost(why) => {
                    debug!(error = %why, "notification connection lost; reconnecting");
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
        let connect = tokio::time::timeout(self.opts.call_timeout, self.config.connect(NoTls));
        let (client, mut connection) = match connect.await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return ListenEnd::Lost(describe(&e)),
            Err(_) => return ListenEnd::Lost("connect timed out".into()),
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
        if let Err(e) = client
            .batch_execute("LISTEN gale_queued; LISTEN gale_changed")
            .await
        {
            return ListenEnd::Lost(describe(&e));
        }
        // Whatever was announced while we were not listening: look now.
        notifier.workers.notify_one();
        notifier.scheduler.notify_one();
        let mut probe = tokio::time::interval(Duration::from_secs(5));
        probe.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return ListenEnd::Stopped,
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
                    None => return ListenEnd::Lost("connection closed".into()),
                },
                // A silent peer (a partition) is noticed by a query, not by waiting.
                _ = probe.tick() => {
                    match tokio::time::timeout(Duration::from_secs(3), client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return ListenEnd::Lost(describe(&e)),
                        Err(_) => return ListenEnd::Lost("the database stopped answering".into()),
                    }
                }
            }
        }
    }
}

enum ListenEnd {
    Stopped,
    Lost(String),
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
