//! `gale bench`: scheduling latency and throughput with the real scheduler and
//! workers running `true` tasks in-process: on a temporary SQLite store, or on
//! the PostgreSQL database given by `--database-url` (use a scratch database:
//! the benchmark's DAGs and runs stay in it), with `--workers` workers that each
//! listen for the database's notifications as separate processes would.
//!
//! - chain: N tasks, each needing the previous one. A hop is the time from an
//!   upstream attempt's end (its result stored) to the downstream attempt's start
//!   (claimed by the worker).
//! - fan-out: N independent tasks in one run; tasks/s from the run's start to the
//!   last task's end, and CPU time (this process and its children, not the
//!   database server) per task.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use gale_model::DagId;
use gale_model::RunId;
use gale_model::dag::{content_hash, parse};
use gale_store::postgres::PgStore;
use gale_store::sqlite::SqliteStore;
use gale_store::{Store, TaskRow};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::engine::{self, EngineOptions};
use crate::{Output, Paths, cli, exit};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: Option<BenchCmd>,
    /// Tasks in the chain.
    #[arg(long, default_value_t = 40)]
    chain: usize,
    /// Tasks in the fan-out.
    #[arg(long, default_value_t = 2000)]
    fanout: usize,
    /// Worker slots (per worker).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Workers (each with its own claim loop and, on PostgreSQL, its own
    /// notification connection); the first also runs the scheduler.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Variables each fan-out task reads from the store in its command (the
    /// first of them secret, sealed under a temporary key): the cost of
    /// lookups and of opening sealed values.
    #[arg(long, default_value_t = 0)]
    lookups: usize,
    /// Every fan-out task's success alerts a channel: the cost of writing
    /// the outbox with each result (nothing is sent).
    #[arg(long)]
    alerts: bool,
    /// Leave out the machine's spawn ceiling (measured first otherwise).
    #[arg(long)]
    no_ceiling: bool,
}

#[derive(clap::Subcommand, Debug)]
enum BenchCmd {
    /// Page times of the web UI and API on a store with a long history.
    Web(crate::bench_web::WebBenchArgs),
    /// What 1 scheduler and N idle workers cost PostgreSQL: connections and
    /// statements per second per worker.
    IdleCluster(crate::bench_idle::IdleClusterArgs),
}

#[derive(Serialize, Debug)]
pub struct BenchReport {
    pub store: &'static str,
    pub workers: usize,
    pub chain_tasks: usize,
    pub chain_hop_p50_ms: f64,
    pub chain_hop_p95_ms: f64,
    pub chain_hop_max_ms: f64,
    pub fanout_tasks: usize,
    pub fanout_seconds: f64,
    pub fanout_tasks_per_s: f64,
    /// CPU of this process and its children (the tasks) per fan-out task.
    pub cpu_ms_per_task: f64,
    /// CPU of the whole machine per fan-out task (the database server included,
    /// and anything else running meanwhile).
    pub machine_cpu_ms_per_task: Option<f64>,
    /// From the fan-out run's creation to the scheduler starting it.
    pub fanout_start_delay_ms: f64,
    /// Median time from an attempt's claim to its stored result, in the fan-out.
    pub fanout_attempt_p50_ms: f64,
    pub concurrency: usize,
    /// Store variables each fan-out task read (`--lookups`).
    pub lookups_per_task: usize,
    /// Each fan-out task's result wrote an alert (`--alerts`).
    pub alerts: bool,
    /// The machine's own ceiling, measured first in the same run: a bare
    /// spawn-and-wait loop of `/bin/true` on every core.
    pub ceiling_spawns_per_s: Option<f64>,
    pub ceiling_machine_cpu_ms: Option<f64>,
    /// The fan-out's tasks/s over the ceiling's spawns/s, and its machine CPU
    /// per task over the ceiling's per spawn.
    pub fanout_ceiling_ratio: Option<f64>,
    pub cpu_ceiling_ratio: Option<f64>,
}

/// Spawns in the ceiling's loop, over all cores.
const CEILING_SPAWNS: usize = 3000;

/// The machine's spawn ceiling: `/bin/true` spawned and waited for in a loop
/// on every core, as a worker's slots do with nothing else around them.
/// Returns (spawns per second, machine CPU ms per spawn).
fn spawn_ceiling() -> anyhow::Result<(f64, Option<f64>)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let each = CEILING_SPAWNS.div_ceil(cores);
    let busy0 = machine_busy_seconds();
    let started = std::time::Instant::now();
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            std::thread::spawn(move || -> std::io::Result<()> {
                for _ in 0..each {
                    std::process::Command::new("/bin/true")
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .status()?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a ceiling thread panicked"))??;
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-6);
    let n = (each * cores) as f64;
    let busy = busy0
        .zip(machine_busy_seconds())
        .map(|(a, b)| (b - a) * 1000.0 / n);
    Ok((n / seconds, busy))
}

fn cpu_seconds() -> f64 {
    let get = |who| {
        // SAFETY: getrusage only writes into the struct we pass.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(u.ru_utime) + tv(u.ru_stime)
    };
    get(libc::RUSAGE_SELF) + get(libc::RUSAGE_CHILDREN)
}

/// CPU time the whole machine spent busy (every process, the database server
/// included), in seconds, from /proc/stat; None where that is not readable.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let busy = v.iter().sum::<f64>() - v.get(3)? - v.get(4).copied().unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| busy / hz as f64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn install<S: Store + ?Sized>(store: &S, id: &str, yaml: &str) -> anyhow::Result<()> {
    let dag = parse(&format!("{id}.yaml"), id, yaml).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    store
        .upsert_dag(
            &dag,
            &format!("bench/{id}.yaml"),
            yaml,
            &content_hash(yaml),
            "bench",
        )
        .await?;
    Ok(())
}

async fn wait_done<S: Store + ?Sized>(
    store: &S,
    run_id: RunId,
    limit: Duration,
) -> anyhow::Result<Vec<TaskRow>> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let run = store
            .get_run(run_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("run vanished"))?;
        if run.state.is_terminal() {
            if run.state != gale_model::RunState::Success {
                bail!("benchmark run {run_id} ended {}", run.state);
            }
            return store.run_tasks(run_id).await.map_err(Into::into);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "benchmark run {run_id} did not finish within {}s",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(paths: &Paths, output: Output, args: BenchArgs) -> anyhow::Result<u8> {
    match args.what {
        Some(BenchCmd::Web(web)) => return crate::bench_web::run(paths, output, web).await,
        Some(BenchCmd::IdleCluster(idle)) => {
            return crate::bench_idle::run(paths, output, idle).await;
        }
        None => {}
    }
    if args.chain < 2 || args.fanout < 1 || args.concurrency < 1 || args.workers < 1 {
        bail!("--chain must be at least 2, --fanout, --concurrency and --workers at least 1");
    }
    let ceiling = if args.no_ceiling {
        None
    } else {
        Some(tokio::task::spawn_blocking(spawn_ceiling).await??)
    };
    let dir = tempfile::tempdir()?;
    let (store, pg, kind): (Arc<dyn Store>, Option<Arc<PgStore>>, &'static str) =
        match &paths.database_url {
            Some(url) => {
                let pg = Arc::new(PgStore::connect(url, Duration::from_secs(10)).await?);
                (pg.clone(), Some(pg), "postgres")
            }
            None => (
                Arc::new(SqliteStore::open(&dir.path().join("bench.db"))?),
                None,
                "sqlite",
            ),
        };

    let mut chain = String::from("tasks:\n");
    for i in 0..args.chain {
        chain.push_str(&format!("  t{i}:\n    run: 'true'\n"));
        if i > 0 {
            chain.push_str(&format!("    needs: [t{}]\n", i - 1));
        }
    }
    let mut fanout = String::from("max_active_runs: 1\ntasks:\n");
    let reads: String = (0..args.lookups)
        .map(|j| format!(" {{{{ var.bench_v{j} }}}}"))
        .collect();
    let alerts = if args.alerts {
        "\n    alerts: { on_success: [bench] }"
    } else {
        ""
    };
    for i in 0..args.fanout {
        fanout.push_str(&format!("  t{i}:\n    run: 'true{reads}'{alerts}\n"));
    }
    let resolver = if args.lookups > 0 {
        let key = dir.path().join("bench.key");
        gale_secrets::write_key_file(&key)?;
        let keys = Arc::new(gale_secrets::KeySource::file(&key)?);
        let vault = gale_secrets::Vault::new(store.clone(), Some(keys));
        for j in 0..args.lookups {
            let name = format!("bench_v{j}");
            let v = gale_model::secrets::Variable::new(
                &name,
                format!("value-{j}"),
                false,
                j == 0,
                None,
            )
            .map_err(anyhow::Error::msg)?;
            vault.set_variable(&name, &v).await?;
        }
        Some(Arc::new(gale_secrets::Resolver::new(None, Some(vault))))
    } else {
        None
    };
    install(&*store, "bench_chain", &chain).await?;
    install(&*store, "bench_fanout", &fanout).await?;

    let cancel = CancellationToken::new();
    let opts = |scheduler: bool| EngineOptions {
        scheduler,
        worker: true,
        dags_folder: None,
        git: None,
        concurrency: args.concurrency,
        queues: vec!["default".into()],
        attempt_lease: Duration::from_secs(10),
        heartbeat_interval: Duration::from_secs(2),
        poll_interval: Duration::from_secs(1),
        announced: pg.is_some(),
        parse_interval: Duration::from_secs(2),
        dags_paused_at_creation: false,
        shutdown_grace: Duration::from_secs(5),
        task_cwd: dir.path().to_path_buf(),
        task_env: gale_worker::TaskEnv::filtered(),
        web: None,
        vault: None,
        resolver: resolver.clone(),
        watch: None,
        alerts: None,
    };
    let mut engines = Vec::new();
    let mut notifier = None;
    for n in 0..args.workers {
        let own = Arc::new(gale_store::Notifier::default());
        // Each worker gets its own connections, as a process of its own would.
        let mut engine_store = store.clone();
        if let (Some(pg), Some(url)) = (&pg, &paths.database_url) {
            let pg = if n == 0 {
                pg.clone()
            } else {
                Arc::new(PgStore::connect(url, Duration::from_secs(10)).await?)
            };
            pg.announce_results(n != 0);
            engine_store = pg.clone();
            let (own, stop) = (own.clone(), cancel.clone());
            tokio::spawn(async move { pg.listen(own, stop).await });
        }
        notifier.get_or_insert_with(|| own.clone());
        engines.push(tokio::spawn(engine::run(
            engine_store,
            own,
            opts(n == 0),
            cancel.clone(),
        )));
    }
    let notifier = notifier.expect("at least one worker");

    // Chain.
    let run = cli::trigger(&*store, &DagId("bench_chain".into()), None, None).await?;
    notifier.scheduler.notify_one();
    let tasks = wait_done(&*store, run.id, Duration::from_secs(600)).await?;
    let by_id: std::collections::HashMap<&str, &TaskRow> =
        tasks.iter().map(|t| (t.task_id.as_str(), t)).collect();
    let mut hops: Vec<f64> = (1..args.chain)
        .filter_map(|i| {
            let up = by_id.get(format!("t{}", i - 1).as_str())?;
            let down = by_id.get(format!("t{i}").as_str())?;
            let gap = down.started_at?.as_microsecond() - up.ended_at?.as_microsecond();
            Some(gap as f64 / 1000.0)
        })
        .collect();
    hops.sort_by(f64::total_cmp);

    // Fan-out.
    let cpu_before = cpu_seconds();
    let machine_before = machine_busy_seconds();
    let run = cli::trigger(&*store, &DagId("bench_fanout".into()), None, None).await?;
    notifier.scheduler.notify_one();
    let tasks = wait_done(&*store, run.id, Duration::from_secs(600)).await?;
    let cpu = cpu_seconds() - cpu_before;
    let machine = machine_busy_seconds()
        .zip(machine_before)
        .map(|(after, before)| after - before);
    let run = store
        .get_run(run.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("run vanished"))?;
    let created = run.created_at.as_microsecond();
    // Throughput counts from the moment the scheduler started the run; the wait
    // before that is reported on its own (fanout_start_delay_ms).
    let start = run.started_at.map_or(created, |s| s.as_microsecond());
    let end = tasks
        .iter()
        .filter_map(|t| t.ended_at)
        .map(|t| t.as_microsecond())
        .max()
        .unwrap_or(start);
    let seconds = (end - start) as f64 / 1e6;
    let mut attempt_ms: Vec<f64> = tasks
        .iter()
        .filter_map(|t| {
            Some((t.ended_at?.as_microsecond() - t.started_at?.as_microsecond()) as f64 / 1000.0)
        })
        .collect();
    attempt_ms.sort_by(f64::total_cmp);

    cancel.cancel();
    for engine in engines {
        engine.await??;
    }

    let report = BenchReport {
        store: kind,
        workers: args.workers,
        chain_tasks: args.chain,
        chain_hop_p50_ms: percentile(&hops, 0.50),
        chain_hop_p95_ms: percentile(&hops, 0.95),
        chain_hop_max_ms: hops.last().copied().unwrap_or(0.0),
        fanout_tasks: args.fanout,
        fanout_seconds: seconds,
        fanout_tasks_per_s: args.fanout as f64 / seconds.max(1e-6),
        cpu_ms_per_task: cpu * 1000.0 / args.fanout as f64,
        machine_cpu_ms_per_task: machine.map(|m| m * 1000.0 / args.fanout as f64),
        fanout_attempt_p50_ms: percentile(&attempt_ms, 0.50),
        fanout_start_delay_ms: (start - created) as f64 / 1000.0,
        concurrency: args.concurrency,
        lookups_per_task: args.lookups,
        alerts: args.alerts,
        ceiling_spawns_per_s: ceiling.map(|c| c.0),
        ceiling_machine_cpu_ms: ceiling.and_then(|c| c.1),
        fanout_ceiling_ratio: ceiling.map(|c| args.fanout as f64 / seconds.max(1e-6) / c.0),
        cpu_ceiling_ratio: ceiling
            .and_then(|c| c.1)
            .zip(machine)
            .map(|(per_spawn, m)| m * 1000.0 / args.fanout as f64 / per_spawn),
    };
    if output == Output::Json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("store                 {}", report.store);
        println!(
            "chain ({} tasks)      hop p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            report.chain_tasks,
            report.chain_hop_p50_ms,
            report.chain_hop_p95_ms,
            report.chain_hop_max_ms
        );
        println!(
            "fan-out ({} tasks)  {:.0} tasks/s ({:.2} s), {:.2} ms CPU per task ({} on the whole machine)",
            report.fanout_tasks,
            report.fanout_tasks_per_s,
            report.fanout_seconds,
            report.cpu_ms_per_task,
            report
                .machine_cpu_ms_per_task
                .map_or("?".to_owned(), |m| format!("{m:.2} ms"))
        );
        if let (Some(spawns), Some(ratio)) =
            (report.ceiling_spawns_per_s, report.fanout_ceiling_ratio)
        {
            println!(
                "machine ceiling       {spawns:.0} spawns/s of /bin/true ({} per spawn): fan-out at {ratio:.2} of it{}",
                report
                    .ceiling_machine_cpu_ms
                    .map_or("?".to_owned(), |m| format!("{m:.2} ms CPU")),
                report
                    .cpu_ceiling_ratio
                    .map_or(String::new(), |r| format!(", {r:.2}× its CPU per task"))
            );
        }
    }
    Ok(exit::OK)
}
