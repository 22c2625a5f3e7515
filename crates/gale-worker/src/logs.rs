//! Moves an attempt's output lines into the store in batches, within the
//! attempt's log limits, with a visible marker where lines were dropped.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use gale_model::mask::Masker;
use gale_store::prelude::Logs;
use gale_store::{LogLine, Stream, TiId};
use jiff::Timestamp;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::Limits;

/// Lines flow through this channel from the readers to the writer.
pub type LineTx = mpsc::Sender<(Stream, String)>;

const BATCH: usize = 500;
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// The store-side end of an attempt's log.
pub struct LogSink {
    tx: LineTx,
    writer: JoinHandle<()>,
    /// Set once the attempt's secrets are known (before its process starts);
    /// every line is masked with it before it is stored.
    mask: Arc<OnceLock<Masker>>,
}

impl LogSink {
    pub fn start<S: Logs + ?Sized>(
        store: Arc<S>,
        ti: TiId,
        try_number: u32,
        limits: Limits,
    ) -> LogSink {
        let (tx, rx) = mpsc::channel(1024);
        let mask = Arc::new(OnceLock::new());
        let writer = tokio::spawn(write_loop(store, ti, try_number, limits, rx, mask.clone()));
        LogSink { tx, writer, mask }
    }

    /// `text` masked as the log lines are.
    pub fn masked(&self, text: &str) -> String {
        match self.mask.get() {
            Some(m) => m.mask(text),
            None => text.to_owned(),
        }
    }

    /// Masks every later line with `masker`.
    pub fn set_mask(&self, masker: Masker) {
        let _ = self.mask.set(masker);
    }

    pub fn sender(&self) -> LineTx {
        self.tx.clone()
    }

    pub async fn system(&self, text: impl Into<String>) {
        let _ = self.tx.send((Stream::System, text.into())).await;
    }

    /// Flushes everything sent so far and stops the writer.
    pub async fn close(self) {
        drop(self.tx);
        let _ = self.writer.await;
    }
}

async fn write_loop<S: Logs + ?Sized>(
    store: Arc<S>,
    ti: TiId,
    try_number: u32,
    limits: Limits,
    mut rx: mpsc::Receiver<(Stream, String)>,
    mask: Arc<OnceLock<Masker>>,
) {
    let mut buf: Vec<LogLine> = Vec::new();
    let (mut lines, mut bytes, mut dropped) = (0usize, 0usize, 0usize);
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some((stream, text)) => {
                    let text = match mask.get() {
                        Some(m) if !m.is_empty() => m.mask(&text),
                        _ => text,
                    };
                    // Gale's own lines always get through; task output within the limits.
                    if stream != Stream::System && (lines >= limits.log_lines || bytes + text.len() > limits.log_bytes) {
                        if dropped == 0 {
                            buf.push(LogLine {
                                ts: Timestamp::now(),
                                stream: Stream::System,
                                text: format!(
                                    "[gale] log truncated: this attempt's log reached its limit ({} lines / {} bytes); further output is discarded",
                                    limits.log_lines, limits.log_bytes
                                ),
                            });
                        }
                        dropped += 1;
                        continue;
                    }
                    lines += 1;
                    bytes += text.len();
                    buf.push(LogLine { ts: Timestamp::now(), stream, text });
                    if buf.len() >= BATCH {
                        flush(&*store, ti, try_number, &mut buf).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                if !buf.is_empty() {
                    flush(&*store, ti, try_number, &mut buf).await;
                }
            }
        }
    }
    if dropped > 0 {
        buf.push(LogLine {
            ts: Timestamp::now(),
            stream: Stream::System,
            text: format!("[gale] {dropped} lines were discarded"),
        });
    }
    flush(&*store, ti, try_number, &mut buf).await;
}

async fn flush<S: Logs + ?Sized>(store: &S, ti: TiId, try_number: u32, buf: &mut Vec<LogLine>) {
    if buf.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(100);
    for attempt in 0..5 {
        match store.append_logs(ti, try_number, buf).await {
            Ok(()) => {
                buf.clear();
                return;
            }
            Err(e) if e.is_retryable() && attempt < 4 => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                warn!(%ti, try_number, lines = buf.len(), error = %e, "could not store log lines");
                break;
            }
        }
    }
    buf.clear();
}
