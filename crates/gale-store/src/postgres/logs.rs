//! The PostgreSQL backend's `impl Logs for PgStore`: attempt logs.

use super::*;

#[async_trait]
impl Logs for PgStore {
    async fn append_logs(&self, ti: TiId, try_number: u32, lines: &[LogLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let try_number = i32_of(try_number);
        let ts: Vec<Timestamp> = lines.iter().map(|l| l.ts).collect();
        let streams: Vec<&str> = lines.iter().map(|l| l.stream.as_str()).collect();
        // PostgreSQL text cannot hold NUL.
        let texts: Vec<String> = lines
            .iter()
            .map(|l| l.text.replace('\0', "\u{fffd}"))
            .collect();
        self.single(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "INSERT INTO logs (ti_id, try_number, ts, stream, line)
                     SELECT $1, $2, u.ts, u.stream, u.line
                     FROM unnest($3::timestamptz[], $4::text[], $5::text[]) WITH ORDINALITY
                         AS u(ts, stream, line, ord)
                     ORDER BY u.ord",
                    &[&ti.0, &try_number, &ts, &streams, &texts],
                )
                .await?;
                Ok(())
            })
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
        let try_number = i32_of(try_number);
        let limit = i64::from(limit);
        self.single(move |c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT id, ts, stream, line FROM logs
                         WHERE ti_id = $1 AND try_number = $2 AND id > $3 ORDER BY id LIMIT $4",
                        &[&ti.0, &try_number, &after_seq, &limit],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| LogRow {
                        seq: r.get(0),
                        ts: r.get(1),
                        stream: Stream::parse(r.get(2)),
                        text: r.get(3),
                    })
                    .collect())
            })
        })
        .await
    }
}
