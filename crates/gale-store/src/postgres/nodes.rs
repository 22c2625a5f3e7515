//! The PostgreSQL backend's `impl Nodes for PgStore`: node rows and their heartbeats.

use super::*;

#[async_trait]
impl Nodes for PgStore {
    async fn register_node(&self, node: &NodeRow) -> Result<()> {
        let n = node.clone();
        let roles = n.roles.join(",");
        let queues = n.queues.join(",");
        let lease_ms = i64::try_from(n.attempt_lease_ms).unwrap_or(i64::MAX);
        self.write(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "INSERT INTO nodes (node_id, host, pid, roles, version, state, started_at,
                         heartbeat_at, clock_skew_us, attempt_lease_ms, queues)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, now(), 0, $8, $9)
                     ON CONFLICT (node_id) DO UPDATE SET host = $2, pid = $3, roles = $4,
                         version = $5, state = $6, started_at = $7, heartbeat_at = now(),
                         attempt_lease_ms = $8, queues = $9",
                    &[
                        &n.node_id,
                        &n.host,
                        &n.pid,
                        &roles,
                        &n.version,
                        &n.state.as_str(),
                        &n.started_at,
                        &lease_ms,
                        &queues,
                    ],
                )
                .await?;
                // Forget nodes that stopped more than a day ago.
                tx.exec(
                    "DELETE FROM nodes WHERE heartbeat_at < now() - interval '1 day'",
                    &[],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn heartbeat_node(&self, node_id: &str, local_now: Timestamp) -> Result<()> {
        let node_id = node_id.to_owned();
        self.light(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "UPDATE nodes SET heartbeat_at = now(),
                         clock_skew_us = (extract(epoch FROM $2::timestamptz - clock_timestamp()) * 1e6)::bigint
                     WHERE node_id = $1",
                    &[&node_id, &local_now],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn set_node_state(&self, node_id: &str, state: NodeState) -> Result<()> {
        let (node_id, state) = (node_id.to_owned(), state.as_str());
        self.single(move |tx| {
            Box::pin(async move {
                tx.exec(
                    "UPDATE nodes SET state = $2, heartbeat_at = now() WHERE node_id = $1",
                    &[&node_id, &state],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    async fn list_nodes(&self) -> Result<Vec<NodeRow>> {
        self.single(|c| {
            Box::pin(async move {
                let rows = c
                    .rows(
                        "SELECT n.node_id, n.host, n.pid, n.roles, n.version, n.state, n.started_at,
                             n.heartbeat_at, n.clock_skew_us,
                             (SELECT count(*) FROM task_instances t
                              WHERE t.state = 'running' AND t.worker_id = n.node_id),
                             n.attempt_lease_ms, n.queues
                         FROM nodes n ORDER BY n.started_at DESC LIMIT 500",
                        &[],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| NodeRow {
                        node_id: r.get(0),
                        host: r.get(1),
                        pid: r.get(2),
                        roles: split_list(r.get(3)),
                        version: r.get(4),
                        state: NodeState::parse(r.get(5)),
                        started_at: r.get(6),
                        heartbeat_at: r.get(7),
                        clock_skew_us: r.get(8),
                        running_attempts: u32::try_from(r.get::<_, i64>(9)).unwrap_or(0),
                        attempt_lease_ms: u64::try_from(r.get::<_, i64>(10)).unwrap_or(0),
                        queues: split_list(r.get(11)),
                    })
                    .collect())
            })
        })
        .await
    }
}
