//! The SQLite backend's `impl Nodes for SqliteStore`: node rows and their heartbeats.

use super::*;

#[async_trait]
impl Nodes for SqliteStore {
    async fn register_node(&self, node: &NodeRow) -> Result<()> {
        let n = node.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO nodes (node_id, host, pid, roles, version, state, started_at,
                     heartbeat_at, clock_skew_us, attempt_lease_ms, queues)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10)",
                params![
                    n.node_id,
                    n.host,
                    n.pid,
                    n.roles.join(","),
                    n.version,
                    n.state.as_str(),
                    to_micros(n.started_at),
                    now_us(),
                    i64::try_from(n.attempt_lease_ms).unwrap_or(i64::MAX),
                    n.queues.join(",")
                ],
            )
            .map_err(map_err)?;
            // Forget nodes that stopped more than a day ago.
            tx.execute(
                "DELETE FROM nodes WHERE heartbeat_at < ?1",
                params![now_us() - 86_400_000_000],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn heartbeat_node(&self, node_id: &str, local_now: Timestamp) -> Result<()> {
        let node_id = node_id.to_owned();
        self.write(move |tx| {
            let now = now_us();
            tx.execute(
                "UPDATE nodes SET heartbeat_at = ?2, clock_skew_us = ?3 WHERE node_id = ?1",
                params![node_id, now, to_micros(local_now) - now],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn set_node_state(&self, node_id: &str, state: NodeState) -> Result<()> {
        let (node_id, state) = (node_id.to_owned(), state.as_str());
        self.write(move |tx| {
            tx.execute(
                "UPDATE nodes SET state = ?2, heartbeat_at = ?3 WHERE node_id = ?1",
                params![node_id, state, now_us()],
            )
            .map_err(map_err)?;
            Ok(())
        })
        .await
    }

    async fn list_nodes(&self) -> Result<Vec<NodeRow>> {
        self.call(|conn| {
            query_all(
                conn,
                "SELECT n.node_id, n.host, n.pid, n.roles, n.version, n.state, n.started_at,
                         n.heartbeat_at, n.clock_skew_us,
                         (SELECT count(*) FROM task_instances t
                          WHERE t.state = 'running' AND t.worker_id = n.node_id),
                         n.attempt_lease_ms, n.queues
                     FROM nodes n ORDER BY n.started_at DESC LIMIT 500",
                [],
                node_row,
            )
        })
        .await
    }
}
