//! `gale bench idle-cluster`: what an idle cluster costs its PostgreSQL.
//! Starts one `gale scheduler` of this binary on the database `--database-url`
//! names (a scratch database), lets it settle and measures it alone; then
//! starts `--workers` `gale worker` processes, lets them settle and measures
//! again. Each measure counts, over `--seconds`, the server's connections from
//! these processes (by their `application_name`, sampled every second) and the
//! transactions the database ran (`pg_stat_database`: each statement outside a
//! transaction is one), less the benchmark's own.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use gale_store::postgres::PgStore;
use gale_store::prelude::Nodes;
use serde::Serialize;

use crate::{Output, Paths, exit};

#[derive(Args, Debug)]
pub struct IdleClusterArgs {
    /// Worker processes (besides the one scheduler).
    #[arg(long, default_value_t = 30)]
    workers: usize,
    /// Seconds each measure lasts.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Seconds the processes get to start and go idle before a measure.
    #[arg(long, default_value_t = 20)]
    settle: u64,
}

const SCHEDULER_APP: &str = "gale-bench-scheduler";
const WORKER_APP: &str = "gale-bench-worker";

#[derive(Serialize, Debug, Default)]
struct Measure {
    /// Mean and largest connection count over the measure.
    connections_mean: f64,
    connections_max: i64,
    statements_per_s: f64,
}

#[derive(Serialize, Debug)]
struct IdleReport {
    workers: usize,
    seconds: u64,
    scheduler_alone: Measure,
    /// The scheduler's and the workers' connections, with every process up.
    scheduler_connections_mean: f64,
    worker_connections_mean: f64,
    worker_connections_max: i64,
    cluster_statements_per_s: f64,
    connections_per_worker: f64,
    /// The cluster's rate, less the scheduler's alone, per worker.
    statements_per_s_per_worker: f64,
}

/// The processes the benchmark started, with their logs: stopped (SIGTERM,
/// then SIGKILL) on drop.
struct Procs(Vec<(Child, std::path::PathBuf)>);

impl Drop for Procs {
    fn drop(&mut self) {
        for (c, _) in &self.0 {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (c, _) in &mut self.0 {
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `url` with its connections named `app` (`application_name`).
fn named(url: &str, app: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}application_name={app}")
    } else {
        format!("{url} application_name={app}")
    }
}

fn start(
    url: &str,
    app: &str,
    dir: &Path,
    n: usize,
    args: &[&str],
) -> anyhow::Result<(Child, std::path::PathBuf)> {
    let exe = std::env::current_exe().context("finding this program")?;
    let path = dir.join(format!("{app}-{n}.log"));
    let log = std::fs::File::create(&path)?;
    let child = Command::new(exe)
        .args(args)
        .env("GALE_HOME", dir)
        .env("GALE_DATABASE_URL", named(url, app))
        .env("GALE_LOG", "warn")
        .env_remove("GALE_DATABASE_POOL")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("starting {app} {n}"))?;
    Ok((child, path))
}

/// The nodes that say they run.
async fn running(observer: &PgStore) -> anyhow::Result<usize> {
    let nodes = observer.list_nodes().await?;
    Ok(nodes
        .iter()
        .filter(|r| r.state == gale_store::NodeState::Running)
        .count())
}

/// Waits until `n` nodes run.
async fn registered(observer: &PgStore, n: usize, procs: &mut Procs) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        for (c, log) in &mut procs.0 {
            if let Some(status) = c.try_wait()? {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "a benchmark process ended ({status}); its log ends:\n{}",
                    tail.join("\n")
                );
            }
        }
        let running = running(observer).await?;
        if running >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {running} of {n} processes registered within two minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Connections (by application name) sampled every second for `seconds`, and
/// the transactions of the database meanwhile, less the benchmark's own.
async fn measure(
    observer: &PgStore,
    apps: &[&str],
    seconds: u64,
) -> anyhow::Result<(Vec<(f64, i64)>, f64)> {
    let mut counts: Vec<Vec<i64>> = vec![Vec::new(); apps.len()];
    let started = Instant::now();
    let first = observer.transactions().await?;
    let mut own = 0i64;
    for tick in 1..=seconds {
        for (i, app) in apps.iter().enumerate() {
            counts[i].push(observer.count_connections(app).await?);
            own += 1;
        }
        let next = started + Duration::from_secs(tick);
        tokio::time::sleep_until(next.into()).await;
    }
    let last = observer.transactions().await?;
    own += 1;
    let elapsed = started.elapsed().as_secs_f64();
    let rate = ((last - first - own).max(0) as f64) / elapsed;
    let stats = counts
        .iter()
        .map(|c| {
            let mean = c.iter().sum::<i64>() as f64 / c.len().max(1) as f64;
            (mean, c.iter().copied().max().unwrap_or(0))
        })
        .collect();
    Ok((stats, rate))
}

pub async fn run(paths: &Paths, output: Output, args: IdleClusterArgs) -> anyhow::Result<u8> {
    let Some(url) = paths.database_url.clone() else {
        bail!("gale bench idle-cluster needs --database-url (a scratch PostgreSQL database)");
    };
    if !(1..=1000).contains(&args.workers) || !(5..=3600).contains(&args.seconds) {
        bail!("--workers must be from 1 to 1000 and --seconds from 5 to 3600");
    }
    if args.settle > 600 {
        bail!("--settle must be at most 600 seconds");
    }
    let observer = PgStore::connect(&named(&url, "gale-bench-observer"), Duration::from_secs(10))
        .await
        .context("connecting to the database")?;
    let dir = tempfile::tempdir()?;
    let dags = dir.path().join("dags");
    std::fs::create_dir_all(&dags)?;
    let dags = dags.display().to_string();
    let mut procs = Procs(Vec::new());
    let previous = running(&observer).await?;
    procs.0.push(start(
        &url,
        SCHEDULER_APP,
        dir.path(),
        0,
        &["scheduler", "--dags-folder", &dags],
    )?);
    registered(&observer, previous + 1, &mut procs).await?;
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let (alone, alone_rate) = measure(&observer, &[SCHEDULER_APP], args.seconds).await?;
    for n in 1..=args.workers {
        procs
            .0
            .push(start(&url, WORKER_APP, dir.path(), n, &["worker"])?);
    }
    registered(&observer, previous + 1 + args.workers, &mut procs).await?;
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let (all, rate) = measure(&observer, &[SCHEDULER_APP, WORKER_APP], args.seconds).await?;
    drop(procs);
    let workers = args.workers as f64;
    let report = IdleReport {
        workers: args.workers,
        seconds: args.seconds,
        scheduler_alone: Measure {
            connections_mean: alone[0].0,
            connections_max: alone[0].1,
            statements_per_s: alone_rate,
        },
        scheduler_connections_mean: all[0].0,
        worker_connections_mean: all[1].0,
        worker_connections_max: all[1].1,
        cluster_statements_per_s: rate,
        connections_per_worker: all[1].0 / workers,
        statements_per_s_per_worker: (rate - alone_rate).max(0.0) / workers,
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Output::Table => {
            println!(
                "idle cluster on PostgreSQL: 1 scheduler + {} workers, {} s per measure",
                report.workers, report.seconds
            );
            println!(
                "  scheduler alone:   {:.1} connections (max {}), {:.2} statements/s",
                report.scheduler_alone.connections_mean,
                report.scheduler_alone.connections_max,
                report.scheduler_alone.statements_per_s
            );
            println!(
                "  with the workers:  scheduler {:.1} connections; workers {:.1} (max {}); {:.2} statements/s in all",
                report.scheduler_connections_mean,
                report.worker_connections_mean,
                report.worker_connections_max,
                report.cluster_statements_per_s
            );
            println!(
                "  per worker:        {:.2} connections, {:.3} statements/s",
                report.connections_per_worker, report.statements_per_s_per_worker
            );
        }
    }
    Ok(exit::OK)
}
