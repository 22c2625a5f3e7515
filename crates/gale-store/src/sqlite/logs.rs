//! The SQLite backend's `impl Logs for SqliteStore`: attempt logs.

use super::*;

#[async_trait]
impl Logs for SqliteStore {
    async fn append_logs(&self, ti: TiId, try_number: u32, lines: &[LogLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let lines = lines.to_vec();
        self.write(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO logs (ti_id, try_number, ts, stream, line) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(map_err)?;
            for l in &lines {
                stmt.execute(params![ti.0, try_number, to_micros(l.ts), l.stream.as_str(), l.text])
                    .map_err(map_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn read_logs(
        &self,
        ti: TiId,
        try_number: u32,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogRow>> {
        self.call(move |conn| {
            query_all(
                conn,
                "SELECT id, ts, stream, line FROM logs
                     WHERE ti_id = ?1 AND try_number = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
                params![ti.0, try_number, after_seq, limit],
                |r| {
                    Ok(LogRow {
                        seq: r.get(0)?,
                        ts: ts(r.get(1)?),
                        stream: Stream::parse(&r.get::<_, String>(2)?),
                        text: r.get(3)?,
                    })
                },
            )
        })
        .await
    }
}
