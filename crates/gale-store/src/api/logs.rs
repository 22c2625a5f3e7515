//! Attempt logs: lines appended by the worker, read in pages by sequence.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;

use crate::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
    /// Lines Gale itself writes into an attempt's log.
    System,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::System => "system",
        }
    }
    pub(crate) fn parse(s: &str) -> Stream {
        match s {
            "stdout" => Stream::Stdout,
            "stderr" => Stream::Stderr,
            _ => Stream::System,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LogLine {
    pub ts: Timestamp,
    pub stream: Stream,
    pub text: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct LogRow {
    /// Increases with every line; pass the last one seen to read on.
    pub seq: i64,
    pub ts: Timestamp,
    pub stream: Stream,
    pub text: String,
}

/// Attempt logs.
#[async_trait]
pub trait Logs: Send + Sync + 'static {
    async fn append_logs(&self, ti: TiId, try_number: u32, lines: &[LogLine]) -> Result<()>;

    /// Lines after `after_seq`, at most `limit`.
    async fn read_logs(
        &self,
        ti: TiId,
        try_number: u32,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogRow>>;
}
