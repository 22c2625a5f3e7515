//! `gale bench web`: page times of the web UI and API on a long history. Seeds
//! a store (temporary SQLite, or `--database-url`: use a scratch database) with
//! one DAG of `--runs` finished runs × `--tasks` tasks (one attempt each: the
//! default, 50,000 × 20, is a million attempts) and `--dags` more DAGs of a
//! few runs each (the DAG list's many-DAGs case), serves it on loopback with
//! authentication on, and times each page over real HTTP.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use gale_model::DagId;
use gale_model::dag::{content_hash, parse};
use gale_store::Store;
use gale_store::postgres::PgStore;
use gale_store::prelude::Dags;
use gale_store::sqlite::SqliteStore;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

use crate::{Output, Paths, exit};

#[derive(Args, Debug)]
pub struct WebBenchArgs {
    /// Finished runs of the seeded DAG.
    #[arg(long, default_value_t = 50_000)]
    runs: u32,
    /// Tasks per run (attempts = runs × tasks).
    #[arg(long, default_value_t = 20)]
    tasks: u32,
    /// Requests per page.
    #[arg(long, default_value_t = 40)]
    requests: usize,
    /// More DAGs besides the one with the history (5-task chains, `*/5`,
    /// tagged, with 3 runs each): what the DAG list's pages are timed on.
    #[arg(long, default_value_t = 0)]
    dags: u32,
}

/// Seeds `n` DAGs `many_00000..` of a 5-task chain with 3 runs each.
async fn seed_dags(store: &dyn Store, n: u32) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for i in 0..n {
        let id = format!("many_{i:05}");
        let yaml = format!(
            "description: one of many, number {i}\nschedule: '*/5 * * * *'\n\
             tags: [many, group_{}]\ntasks:\n  t1: {{run: 'true'}}\n\
             \x20 t2: {{run: 'true', needs: [t1]}}\n  t3: {{run: 'true', needs: [t2]}}\n\
             \x20 t4: {{run: 'true', needs: [t3]}}\n  t5: {{run: 'true', needs: [t4]}}\n",
            i % 10
        );
        let file = format!("bench/{id}.yaml");
        let dag = parse(&file, &id, &yaml).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let hash = content_hash(&yaml);
        store.upsert_dag(&dag, &file, &yaml, &hash, "bench").await?;
        for k in 0..3 {
            let at = jiff::Timestamp::from_second(1_700_000_000 + k * 300)?;
            let interval = gale_model::schedule::Interval {
                start: at,
                end: at + jiff::SignedDuration::from_mins(5),
            };
            runs.push(gale_model::NewRun::scheduled(
                &dag.id, &hash, &dag, interval,
            ));
        }
        if runs.len() >= 768 || i + 1 == n {
            store.create_runs(&runs).await?;
            runs.clear();
        }
    }
    Ok(())
}

#[derive(Serialize, Debug)]
struct PageTime {
    page: String,
    path: String,
    status: u16,
    p50_ms: f64,
    p95_ms: f64,
    max_ms: f64,
}

/// One HTTP/1.1 GET over a fresh connection; returns the status code.
async fn get(addr: std::net::SocketAddr, path: &str, token: &str) -> anyhow::Result<u16> {
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(request.as_bytes()).await?;
    let mut body = Vec::new();
    conn.read_to_end(&mut body).await?;
    let head = String::from_utf8_lossy(&body[..body.len().min(32)]).into_owned();
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status in the answer to GET {path}: {head:?}"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

pub async fn run(paths: &Paths, output: Output, args: WebBenchArgs) -> anyhow::Result<u8> {
    if args.runs < 2 || args.tasks < 1 || args.requests < 1 {
        bail!("--runs must be at least 2, --tasks and --requests at least 1");
    }
    let dir = tempfile::tempdir()?;
    let dag_id = DagId("bench_history".into());
    let mut yaml = String::from("schedule: '@hourly'\ntasks:\n");
    let task_ids: Vec<String> = (0..args.tasks).map(|i| format!("task_{i:02}")).collect();
    for (i, t) in task_ids.iter().enumerate() {
        yaml.push_str(&format!("  {t}:\n    run: 'true'\n"));
        if i > 0 {
            yaml.push_str(&format!("    needs: [{}]\n", task_ids[i - 1]));
        }
    }
    let dag = parse("bench_history.yaml", "bench_history", &yaml)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let hash = content_hash(&yaml);
    let start = jiff::Timestamp::from_second(1_600_000_000)?;
    let seeding = Instant::now();
    let (store, kind, (first, last)): (Arc<dyn Store>, &str, _) = match &paths.database_url {
        Some(url) => {
            let pg = Arc::new(PgStore::connect(url, Duration::from_secs(10)).await?);
            pg.upsert_dag(&dag, "bench/bench_history.yaml", &yaml, &hash, "bench")
                .await?;
            let range = pg
                .seed_history(&dag_id, &hash, &task_ids, args.runs, start)
                .await?;
            (pg, "postgres", range)
        }
        None => {
            let db = Arc::new(SqliteStore::open(&dir.path().join("bench.db"))?);
            db.upsert_dag(&dag, "bench/bench_history.yaml", &yaml, &hash, "bench")
                .await?;
            let range = db
                .seed_history(&dag_id, &hash, &task_ids, args.runs, start)
                .await?;
            (db, "sqlite", range)
        }
    };
    let attempts = u64::from(args.runs) * u64::from(args.tasks);
    eprintln!(
        "seeded {} runs and {attempts} attempts on {kind} in {:.1}s",
        args.runs,
        seeding.elapsed().as_secs_f64()
    );
    if args.dags > 0 {
        let seeding = Instant::now();
        seed_dags(&*store, args.dags).await?;
        eprintln!(
            "seeded {} more DAGs with 3 runs each in {:.1}s",
            args.dags,
            seeding.elapsed().as_secs_f64()
        );
    }
    let password = gale_server::auth::new_password();
    let user = format!("bench-{}", rand::random::<u32>());
    store
        .create_user(
            &user,
            gale_store::Role::Viewer,
            &gale_server::auth::hash_password(&password)?,
        )
        .await?;
    let (_, token) = gale_server::auth::create_token(&*store, &user, "bench", None).await?;

    let listener = gale_server::bind("127.0.0.1:0".parse()?)?;
    let addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let state = Arc::new(gale_server::AppState::new(store.clone()));
    let server = tokio::spawn(gale_server::serve(
        state,
        listener,
        None,
        gale_server::HttpLimits::default(),
        cancel.clone(),
    ));

    let mid = gale_model::RunId((first.0 + last.0) / 2);
    let task = &task_ids[task_ids.len() / 2];
    let last_page = u64::from(args.dags).div_ceil(100).max(1);
    let pages: Vec<(&str, String)> = vec![
        ("DAG list", "/".into()),
        ("DAG list, last page", format!("/?page={last_page}")),
        ("DAG list, search", "/?q=many_0042".into()),
        ("DAG list, tag", "/?tag=group_3".into()),
        ("DAG grid", format!("/dags/{dag_id}")),
        ("DAG grid partial", format!("/dags/{dag_id}/grid")),
        ("DAG runs", format!("/dags/{dag_id}?tab=runs")),
        (
            "DAG runs, deep page",
            format!("/dags/{dag_id}?tab=runs&before={mid}"),
        ),
        ("DAG graph", format!("/dags/{dag_id}?tab=graph")),
        ("DAG durations", format!("/dags/{dag_id}?tab=durations")),
        (
            "DAG durations, 100 runs",
            format!("/dags/{dag_id}?tab=durations&runs=100"),
        ),
        ("DAG tries", format!("/dags/{dag_id}?tab=tries")),
        ("DAG landing", format!("/dags/{dag_id}?tab=landing")),
        ("DAG calendar", format!("/dags/{dag_id}?tab=calendar")),
        ("run (newest)", format!("/runs/{last}")),
        ("run (oldest)", format!("/runs/{first}")),
        ("attempt", format!("/runs/{mid}/tasks/{task}")),
        ("cluster", "/cluster".into()),
        ("API dags", "/api/v1/dags".into()),
        ("API dags, search", "/api/v1/dags?q=many_0042".into()),
        (
            "API runs",
            format!("/api/v1/runs?dag_id={dag_id}&limit=100"),
        ),
        (
            "API runs, deep page",
            format!("/api/v1/runs?dag_id={dag_id}&before={mid}&limit=100"),
        ),
        ("API run tasks", format!("/api/v1/runs/{mid}/tasks")),
        ("API task", format!("/api/v1/runs/{mid}/tasks/{task}")),
        ("metrics", "/metrics".into()),
    ];
    let mut results = Vec::new();
    for (name, path) in &pages {
        // One request to warm caches, then the timed ones.
        let status = get(addr, path, &token).await?;
        let mut times = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            let t = Instant::now();
            get(addr, path, &token).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        results.push(PageTime {
            page: (*name).into(),
            path: path.clone(),
            status,
            p50_ms: percentile(&times, 0.5),
            p95_ms: percentile(&times, 0.95),
            max_ms: times.last().copied().unwrap_or(0.0),
        });
    }
    cancel.cancel();
    let _ = server.await;
    let _ = store.delete_user(&user).await;
    if output == Output::Json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "store": kind, "runs": args.runs, "attempts": attempts, "dags": args.dags + 1,
                "pages": results
            }))?
        );
    } else {
        println!(
            "store {kind}, {} runs, {attempts} attempts, {} DAGs",
            args.runs,
            args.dags + 1
        );
        println!(
            "{:<22} {:>6} {:>9} {:>9} {:>9}",
            "PAGE", "STATUS", "P50 ms", "P95 ms", "MAX ms"
        );
        for r in &results {
            println!(
                "{:<22} {:>6} {:>9.1} {:>9.1} {:>9.1}",
                r.page, r.status, r.p50_ms, r.p95_ms, r.max_ms
            );
        }
    }
    let failed: Vec<&PageTime> = results.iter().filter(|r| r.status != 200).collect();
    if !failed.is_empty() {
        for r in failed {
            eprintln!("error: {} ({}) answered {}", r.page, r.path, r.status);
        }
        return Ok(exit::FAILED);
    }
    Ok(exit::OK)
}
