//! `gale cluster status` (every Gale process, like `patronictl list`) and
//! `gale cluster check` (is this cluster healthy? exit 1 when not).

use std::time::{Duration, Instant};

use clap::Subcommand;
use gale_store::{NodeRow, NodeState, Store};
use jiff::Timestamp;
use serde::Serialize;

use crate::cli::{open_store, open_store_waiting, parse_span};
use crate::{Output, Paths, exit};

/// A process whose heartbeat is older than this is shown as unresponsive.
const SILENT_AFTER: Duration = Duration::from_secs(15);

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// One row per Gale process, live or recently gone, and the database in use.
    Status {
        /// Also list processes that stopped or went silent more than an hour ago.
        #[arg(long)]
        all: bool,
    },
    /// Check the database connection, the schema version, live schedulers and
    /// workers, and each process's clock against the database; exit 1 on a problem.
    Check {
        /// Largest clock difference between a process and the database that passes.
        #[arg(long, default_value = "1s", value_parser = parse_span)]
        max_clock_skew: Duration,
    },
}

pub async fn run(paths: &Paths, output: Output, cmd: ClusterCmd) -> anyhow::Result<u8> {
    match cmd {
        ClusterCmd::Status { all } => status(paths, output, all).await,
        ClusterCmd::Check { max_clock_skew } => check(paths, output, max_clock_skew).await,
    }
}

#[derive(Serialize)]
struct NodeView {
    #[serde(flatten)]
    node: NodeRow,
    /// `running`, `unresponsive` (no heartbeat for a while), `stopped`, or
    /// `dead` (crashed; its attempts were recovered).
    health: &'static str,
    heartbeat_age_s: f64,
}

fn age_s(now: Timestamp, then: Timestamp) -> f64 {
    (now.as_millisecond() - then.as_millisecond()).max(0) as f64 / 1000.0
}

fn health(node: &NodeRow, now: Timestamp) -> &'static str {
    if node.state == NodeState::Dead {
        // Found dead by a later process on its host, which recovered its attempts.
        "dead"
    } else if node.state != NodeState::Running {
        "stopped"
    } else if age_s(now, node.heartbeat_at) > SILENT_AFTER.as_secs_f64() {
        "unresponsive"
    } else {
        "running"
    }
}

async fn views(store: &dyn Store, all: bool) -> anyhow::Result<(Timestamp, Vec<NodeView>)> {
    let now = store.now().await?;
    let views = store
        .list_nodes()
        .await?
        .into_iter()
        .map(|node| NodeView {
            health: health(&node, now),
            heartbeat_age_s: age_s(now, node.heartbeat_at),
            node,
        })
        .filter(|v| all || v.health == "running" || v.heartbeat_age_s < 3600.0)
        .collect();
    Ok((now, views))
}

async fn status(paths: &Paths, output: Output, all: bool) -> anyhow::Result<u8> {
    let store = open_store(paths).await?;
    let (_, nodes) = views(&*store, all).await?;
    if output == Output::Json {
        #[derive(Serialize)]
        struct Status<'a> {
            database: String,
            nodes: &'a [NodeView],
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&Status {
                database: store.endpoint(),
                nodes: &nodes,
            })?
        );
        return Ok(exit::OK);
    }
    println!("database: {}", store.endpoint());
    let mut rows = Vec::with_capacity(nodes.len());
    for v in &nodes {
        let n = &v.node;
        rows.push(vec![
            n.node_id.clone(),
            n.host.clone(),
            n.pid.to_string(),
            n.roles.join(","),
            n.version.clone(),
            v.health.to_owned(),
            n.started_at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
            format!("{:.1}s ago", v.heartbeat_age_s),
            n.running_attempts.to_string(),
        ]);
    }
    // The table every command draws.
    let t = crate::cli::table(
        &[
            "NODE",
            "HOST",
            "PID",
            "ROLES",
            "VERSION",
            "STATE",
            "STARTED",
            "HEARTBEAT",
            "RUNNING",
        ],
        rows,
    );
    println!("{t}");
    if nodes.is_empty() {
        println!("no Gale process has registered with this database yet");
    }
    Ok(exit::OK)
}

#[derive(Serialize)]
struct Finding {
    ok: bool,
    check: String,
    detail: String,
}

async fn check(paths: &Paths, output: Output, max_skew: Duration) -> anyhow::Result<u8> {
    let mut findings = Vec::new();
    let mut add = |ok: bool, check: &str, detail: String| {
        findings.push(Finding {
            ok,
            check: check.to_owned(),
            detail,
        })
    };
    let (store, pg) = match open_store_waiting(paths, Duration::from_secs(5)).await {
        Ok(opened) => (opened.store, opened.pg),
        Err(e) => {
            add(false, "database", format!("{e:#}"));
            return report(output, findings);
        }
    };
    let sent = Instant::now();
    let local_before = Timestamp::now();
    match store.now().await {
        Ok(db_now) => {
            let rtt = sent.elapsed();
            add(
                true,
                "database",
                format!(
                    "{} answered in {:.1} ms",
                    store.endpoint(),
                    rtt.as_secs_f64() * 1000.0
                ),
            );
            // This machine's clock, at the middle of the round trip.
            let local_mid = local_before.as_microsecond() + (rtt.as_micros() / 2) as i64;
            let skew = local_mid - db_now.as_microsecond();
            add(
                skew.unsigned_abs() <= max_skew.as_micros() as u64,
                "clock (this machine)",
                format!("{:+.1} ms against the database", skew as f64 / 1000.0),
            );
        }
        Err(e) => add(false, "database", format!("{e}")),
    }
    if let Some(pg) = pg {
        // Plaintext passes: whether it is enough is the URL's sslmode to say.
        let settings = pg.tls_settings();
        let checked = match (settings.verifies(), settings.verifies_name()) {
            (true, true) => "certificate checked: chain and host name",
            (true, false) => "certificate checked: chain, not the host name",
            (false, _) => "certificate not checked",
        };
        match pg.session_tls().await {
            Ok(Some(tls)) => add(true, "database TLS", format!("{tls}; {checked}")),
            Ok(None) => add(
                true,
                "database TLS",
                format!(
                    "none: the connection is plaintext (sslmode={})",
                    settings.mode.as_str()
                ),
            ),
            Err(e) => add(false, "database TLS", e.to_string()),
        }
    }
    let want = if paths.database_url.is_some() {
        gale_store::postgres::SCHEMA_VERSION
    } else {
        gale_store::sqlite::SCHEMA_VERSION
    };
    match store.schema_version().await {
        Ok(v) if v == want => add(true, "schema", format!("version {v}")),
        Ok(v) => add(
            false,
            "schema",
            format!(
                "version {v}, but this gale expects {want}: run `gale db migrate` or upgrade gale"
            ),
        ),
        Err(e) => add(false, "schema", e.to_string()),
    }
    match views(&*store, false).await {
        Ok((_, nodes)) => {
            let live = |role: &str| {
                nodes
                    .iter()
                    .filter(|v| v.health == "running" && v.node.roles.iter().any(|r| r == role))
                    .count()
            };
            let (schedulers, workers) = (live("scheduler"), live("worker"));
            add(
                schedulers > 0,
                "schedulers",
                match schedulers {
                    0 => "no live scheduler: no run will start or move on".to_owned(),
                    n => format!("{n} live"),
                },
            );
            add(
                workers > 0,
                "workers",
                match workers {
                    0 => "no live worker: queued tasks will wait".to_owned(),
                    n => format!("{n} live"),
                },
            );
            for v in nodes.iter().filter(|v| v.health == "unresponsive") {
                add(
                    false,
                    "heartbeat",
                    format!(
                        "{} ({} pid {}) silent for {:.0}s but not stopped: crashed or cut off",
                        v.node.node_id, v.node.host, v.node.pid, v.heartbeat_age_s
                    ),
                );
            }
            for v in nodes.iter().filter(|v| v.health == "running") {
                let skew = v.node.clock_skew_us;
                add(
                    skew.unsigned_abs() <= max_skew.as_micros() as u64,
                    "clock",
                    format!(
                        "{} on {}: {:+.1} ms against the database",
                        v.node.node_id,
                        v.node.host,
                        skew as f64 / 1000.0
                    ),
                );
            }
        }
        Err(e) => add(false, "nodes", e.to_string()),
    }
    report(output, findings)
}

fn report(output: Output, findings: Vec<Finding>) -> anyhow::Result<u8> {
    let ok = findings.iter().all(|f| f.ok);
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            println!(
                "{:<5} {:<20} {}",
                if f.ok { "ok" } else { "FAIL" },
                f.check,
                f.detail
            );
        }
        println!(
            "{}",
            if ok {
                "cluster healthy"
            } else {
                "cluster has problems (see FAIL above)"
            }
        );
    }
    Ok(if ok { exit::OK } else { exit::FAILED })
}
