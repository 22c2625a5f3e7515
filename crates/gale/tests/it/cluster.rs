//! Chaos on PostgreSQL: three `gale scheduler` and three `gale worker`
//! processes share one real database while a few hundred runs flow through
//! them, and a killer thread SIGKILLs a random one every few seconds and starts
//! the same role again. Afterwards the database must show a clean history:
//! every run succeeded, every task instance has exactly one successful attempt
//! (its last), no two attempts of one task instance overlap in time, nothing is
//! left queued or running, and neither `max_active_tasks`, `max_active_runs`
//! nor the slots of a pool two DAGs share was ever exceeded: not in counts
//! sampled while the runs
//! flowed, and not by the recorded times of attempts and runs, which must also
//! follow cause and effect (no attempt stamped as started before its task
//! instance was queued, or before its upstream's successful attempt ended).
//! Every process must then stop with exit code 0 on SIGTERM.
//!
//! Without PostgreSQL binaries this test prints SKIPPED and passes, except
//! under `CI=true`, where it fails (see `gale_pgtest`). `GALE_IT_SEED=N`
//! replays the killer's choices; `GALE_IT_KEEP=1` keeps the logs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gale_pgtest::{PgServer, server_or_skip};
use nix::sys::signal::Signal;

use crate::harness::Home;
use crate::pg::{Pg, Role, sql};

/// The lease every process runs with (the smallest Gale accepts).
const LEASE: &str = "3s";
/// The shutdown grace every process runs with, and how long a SIGTERMed
/// process may take to exit at the end (nothing is running by then).
const GRACE: &str = "10s";
const EXIT_WITHIN: Duration = Duration::from_secs(30);
const SCHEDULERS: usize = 3;
const WORKERS: usize = 3;
const WORKER_CONCURRENCY: &str = "4";
/// From the first trigger until every run must have ended.
const RUNS_DEADLINE: Duration = Duration::from_secs(480);
const MIN_KILLS: usize = 5;

/// One DAG of the load: its file, how many runs to trigger, and its limits.
struct Load {
    dag_id: &'static str,
    runs: usize,
    max_active_runs: i64,
    max_active_tasks: i64,
    tasks: usize,
    /// `needs` edges: (upstream, downstream).
    edges: Vec<(String, String)>,
    yaml: String,
}

/// Slots of the pool that the fan-out's sleeps and the chain's tasks share.
const SHARED_POOL_SLOTS: i64 = 4;

fn loads() -> Vec<Load> {
    // 20 independent tasks, half of them short sleeps.
    let mut fan = String::from(
        "id: chaos_fan\nmax_active_runs: 3\nmax_active_tasks: 6\nparams: { n: 0 }\n\
         defaults: { retries: 5, retry_delay: 1s }\ntasks:\n",
    );
    for i in 0..20 {
        // The sleeps share the `shared` pool with the chain's tasks.
        let run = if i % 2 == 0 {
            "sleep 0.2\n    pool: shared"
        } else {
            "'true'"
        };
        fan.push_str(&format!("  t{i:02}:\n    run: {run}\n"));
    }
    // 8 tasks in a line.
    let mut chain = String::from(
        "id: chaos_chain\nmax_active_runs: 6\nmax_active_tasks: 5\nparams: { n: 0 }\n\
         defaults: { retries: 5, retry_delay: 1s }\ntasks:\n",
    );
    for i in 0..8 {
        chain.push_str(&format!("  s{i}:\n    run: sleep 0.1\n    pool: shared\n"));
        if i > 0 {
            chain.push_str(&format!("    needs: [s{}]\n", i - 1));
        }
    }
    // A diamond passing an output from the run's conf down, so that a retried
    // attempt must still see its upstream's outputs.
    let mix = r#"id: chaos_mix
max_active_runs: 2
max_active_tasks: 3
params: { n: 0 }
defaults: { retries: 5, retry_delay: 1s }
tasks:
  start:
    run: |
      echo "n={{ params.n }}" >> "$GALE_OUTPUT"
      sleep 0.2
  left:
    needs: [start]
    run: |
      test "{{ tasks.start.outputs.n }}" = "{{ params.n }}"
      sleep 0.3
  right:
    needs: [start]
    run: sleep 0.5
  join:
    needs: [left, right]
    run: sleep 0.1
"#
    .to_owned();
    let chain_edges = (1..8).map(|i| (format!("s{}", i - 1), format!("s{i}")));
    let mix_edges = [
        ("start", "left"),
        ("start", "right"),
        ("left", "join"),
        ("right", "join"),
    ];
    vec![
        Load {
            dag_id: "chaos_fan",
            runs: 100,
            max_active_runs: 3,
            max_active_tasks: 6,
            tasks: 20,
            edges: Vec::new(),
            yaml: fan,
        },
        Load {
            dag_id: "chaos_chain",
            runs: 100,
            max_active_runs: 6,
            max_active_tasks: 5,
            tasks: 8,
            edges: chain_edges.collect(),
            yaml: chain,
        },
        Load {
            dag_id: "chaos_mix",
            runs: 40,
            max_active_runs: 2,
            max_active_tasks: 3,
            tasks: 4,
            edges: mix_edges
                .iter()
                .map(|(u, d)| (u.to_string(), d.to_string()))
                .collect(),
            yaml: mix,
        },
    ]
}

/// A small deterministic random source (xorshift64*), seeded from
/// `GALE_IT_SEED` or the clock; the seed is printed so a run can be replayed.
struct Rng(u64);

impl Rng {
    fn seeded() -> (Rng, u64) {
        let seed = std::env::var("GALE_IT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .expect("a clock after 1970")
                    .as_nanos() as u64
            });
        (Rng(seed | 1), seed)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }
}

/// The folder of every process log; on a failure, prints the errors, warnings
/// and panics of every log in it (earlier starts of a role included).
struct LogDir(PathBuf);

impl Drop for LogDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let notable: Vec<&str> = text
                .lines()
                .filter(|l| l.contains("ERROR") || l.contains("WARN") || l.contains("panicked"))
                .collect();
            if !notable.is_empty() {
                eprintln!(
                    "--- errors and warnings in {}:\n{}",
                    file.display(),
                    notable[notable.len().saturating_sub(30)..].join("\n")
                );
            }
        }
    }
}

/// Sets the flag when dropped: stops the killer even when the test panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// What the killer did.
#[derive(Default)]
struct Chaos {
    kills: usize,
    /// "12.3s killed worker-2 (pid 123), up again after 0.4s", in order.
    events: Vec<String>,
    /// Processes that exited without being killed (each restarted).
    unexpected: Vec<String>,
}

/// Every 2 to 4 s (at random), SIGKILLs a random role process, waits a moment
/// and starts the same role again, until `stop`. Between kills, any process
/// that ended by itself is recorded and started again.
fn killer(roles: &Mutex<Vec<Role<'_>>>, stop: &AtomicBool, mut rng: Rng, t0: Instant) -> Chaos {
    let mut chaos = Chaos::default();
    'outer: loop {
        let until = Instant::now() + rng.millis(2000, 4000);
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                break 'outer;
            }
            std::thread::sleep(Duration::from_millis(100));
            let mut roles = roles.lock().expect("the roles lock");
            for role in roles.iter_mut() {
                if let Some(status) = role.exited() {
                    let log = role.log();
                    let lines: Vec<&str> = log.lines().collect();
                    chaos.unexpected.push(format!(
                        "{:.1}s {} (pid {}) exited by itself ({status}); its log ends:\n{}",
                        t0.elapsed().as_secs_f64(),
                        role.name(),
                        role.pid(),
                        lines[lines.len().saturating_sub(40)..].join("\n")
                    ));
                    role.restart();
                }
            }
        }
        let mut roles = roles.lock().expect("the roles lock");
        let i = rng.below(roles.len());
        let role = &mut roles[i];
        let (pid, at) = (role.pid(), t0.elapsed());
        role.crash();
        chaos.kills += 1;
        let down = rng.millis(100, 1000);
        std::thread::sleep(down);
        role.restart();
        chaos.events.push(format!(
            "{:.1}s killed {} (pid {pid}), started again as pid {} after {:.1}s",
            at.as_secs_f64(),
            role.name(),
            role.pid(),
            down.as_secs_f64()
        ));
    }
    chaos
}

/// Checks a limit on intervals, by the database's own timestamps: `intervals`
/// is a query returning `dag_id, what, s, e` rows (`what` names the interval,
/// `[s, e)` its span), `limits` maps each DAG to the most intervals that may
/// overlap. At most `limit` intervals overlap at every moment iff, at each
/// interval's start, at most `limit` intervals (itself included) contain that
/// instant. Returns each DAG's peak, and a description of every start where the
/// limit is exceeded (the intervals holding it, with how long each still had
/// to run), empty when the limit held.
fn check_limit(
    server: &PgServer,
    intervals: &str,
    limits: &[(&str, i64)],
) -> (BTreeMap<String, i64>, String) {
    let values = limits
        .iter()
        .map(|(dag, n)| format!("('{dag}', {n})"))
        .collect::<Vec<_>>()
        .join(", ");
    let at_starts = format!(
        "WITH iv AS ({intervals}),
              lim (dag_id, n) AS (VALUES {values}),
              at AS (SELECT y.dag_id, y.what, y.s, count(*) AS n,
                            string_agg(x.what || ' [' || x.s || ', ' || x.e || ') '
                                       || (x.e - y.s) || ' left', '; ' ORDER BY x.s) AS holders
                     FROM iv y JOIN iv x ON x.dag_id = y.dag_id AND x.s <= y.s AND y.s < x.e
                     GROUP BY y.dag_id, y.what, y.s)"
    );
    let peaks = parse_counts(&sql(
        server,
        &format!(
            "{at_starts} SELECT dag_id || '=' || max(n) FROM at GROUP BY dag_id ORDER BY dag_id"
        ),
    ));
    let over = sql(
        server,
        &format!(
            "{at_starts} SELECT at.dag_id || ': ' || at.n || ' at once (limit ' || lim.n || ') when ' \
                 || at.what || ' started at ' || at.s || ': ' || at.holders \
             FROM at JOIN lim ON lim.dag_id = at.dag_id WHERE at.n > lim.n \
             ORDER BY at.s LIMIT 20"
        ),
    );
    (peaks, over)
}

fn parse_counts(text: &str) -> BTreeMap<String, i64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn chaos_kills_schedulers_and_workers_under_load() {
    let Some(server) = server_or_skip("chaos_kills_schedulers_and_workers_under_load") else {
        return;
    };
    let url = server
        .create_database("gale")
        .expect("creating database gale");
    let (rng, seed) = Rng::seeded();
    eprintln!("CHAOS: seed {seed} (GALE_IT_SEED={seed} replays the killer's choices)");

    let home = Home::new();
    let loads = loads();
    for load in &loads {
        home.write_dag(&format!("{}.yaml", load.dag_id), &load.yaml);
    }
    let logs = LogDir(home.path().join("logs"));
    std::fs::create_dir_all(&logs.0).expect("creating the log folder");
    let cli = Pg::new(&home, &url);
    let out = cli.gale(&["pools", "set", "shared", &SHARED_POOL_SLOTS.to_string()]);
    assert_eq!(out.code, 0, "creating the pool failed: {out}");

    let dags = home.dags().display().to_string();
    let common = ["--attempt-lease", LEASE, "--shutdown-grace", GRACE];
    let scheduler: Vec<&str> = ["scheduler", "--dags-folder", &dags]
        .into_iter()
        .chain(common)
        .collect();
    let worker: Vec<&str> = ["worker", "--concurrency", WORKER_CONCURRENCY]
        .into_iter()
        .chain(common)
        .collect();
    // Each process on a GALE_HOME of its own, which kills the task processes
    // it left behind when the test ends.
    let role_homes: Vec<Home> = (0..SCHEDULERS + WORKERS).map(|_| Home::new()).collect();
    let mut role_homes = role_homes.iter();
    let mut roles = Vec::new();
    for (name, args, n) in [
        ("scheduler", &scheduler, SCHEDULERS),
        ("worker", &worker, WORKERS),
    ] {
        for i in 1..=n {
            let role_home = role_homes.next().expect("a home per process");
            let role =
                Pg::new(role_home, &url).start_logging_in(&format!("{name}-{i}"), args, &logs.0);
            roles.push(role);
        }
    }
    let roles = Mutex::new(roles);

    let dag_ids: Vec<&str> = loads.iter().map(|l| l.dag_id).collect();
    cli.wait_dags(&dag_ids);

    let total_runs: usize = loads.iter().map(|l| l.runs).sum();
    let total_tis: usize = loads.iter().map(|l| l.runs * l.tasks).sum();
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let (chaos, triggered, sampled) = std::thread::scope(|s| {
        let stop_guard = StopOnDrop(&stop);
        let killer = s.spawn(|| killer(&roles, &stop, rng, t0));
        // One triggering thread per DAG, while the killer is already at work.
        let triggers: Vec<_> = loads
            .iter()
            .map(|load| {
                let cli = &cli;
                s.spawn(move || {
                    (0..load.runs)
                        .map(|i| {
                            let conf = format!("{{\"n\": {i}}}");
                            cli.trigger(load.dag_id, &["--conf", &conf])
                        })
                        .collect::<Vec<i64>>()
                })
            })
            .collect();
        let mut triggered = 0;
        for t in triggers {
            triggered += t.join().expect("a triggering thread panicked").len();
        }
        eprintln!(
            "CHAOS: triggered {triggered} runs in {:.1}s",
            t0.elapsed().as_secs_f64()
        );

        // Sampled by single statements, so in commit order whatever the
        // timestamps say: the most runs running, and task instances queued or
        // running, per DAG.
        let mut sampled: BTreeMap<String, i64> = BTreeMap::new();
        let mut last_report = Instant::now();
        loop {
            let now = server
                .psql(
                    "gale",
                    "SELECT 'runs ' || dag_id || '=' || count(*) FROM runs \
                     WHERE state = 'running' GROUP BY dag_id \
                     UNION ALL SELECT 'tasks ' || dag_id || '=' || count(*) FROM task_instances \
                     WHERE state IN ('queued', 'running') GROUP BY dag_id",
                )
                .unwrap_or_default();
            for (k, v) in parse_counts(&now) {
                let max = sampled.entry(k).or_insert(0);
                *max = (*max).max(v);
            }
            let states = server
                .psql(
                    "gale",
                    "SELECT state || '=' || count(*) FROM runs GROUP BY state ORDER BY state",
                )
                .unwrap_or_default();
            let counts = parse_counts(&states);
            let ended: i64 = ["success", "failed"]
                .iter()
                .map(|s| counts.get(*s).copied().unwrap_or(0))
                .sum();
            if ended as usize >= triggered {
                break;
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                last_report = Instant::now();
                eprintln!(
                    "CHAOS: {:.0}s runs {}",
                    t0.elapsed().as_secs_f64(),
                    states.replace('\n', " ")
                );
            }
            if t0.elapsed() > RUNS_DEADLINE {
                let stuck = server
                    .psql(
                        "gale",
                        "SELECT r.id || ' ' || r.dag_id || ' ' || r.state || ': ' || \
                                string_agg(t.task_id || '=' || t.state || '#' || t.try_number \
                                           || coalesce('@' || t.worker_id, ''), ' ' ORDER BY t.id) \
                         FROM runs r JOIN task_instances t ON t.run_id = r.id \
                         WHERE r.state NOT IN ('success', 'failed') \
                           AND t.state NOT IN ('success', 'skipped') \
                         GROUP BY r.id, r.dag_id, r.state ORDER BY r.id LIMIT 30",
                    )
                    .unwrap_or_else(|e| e);
                let nodes = cli.gale(&["cluster", "status"]);
                stop.store(true, Ordering::SeqCst);
                panic!(
                    "runs still not ended {RUNS_DEADLINE:?} after the first trigger: {}\n\
                     unfinished runs and their unfinished tasks:\n{stuck}\n\
                     cluster status:\n{}",
                    states.replace('\n', " "),
                    nodes.stdout
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        drop(stop_guard);
        let chaos = killer.join().expect("the killer thread panicked");
        (chaos, triggered, sampled)
    });
    let elapsed = t0.elapsed();
    eprintln!("CHAOS: killer's log:\n  {}", chaos.events.join("\n  "));

    // A clean stop of every process: SIGTERM, exit 0 within the grace. A
    // process the killer just started is first given time to come up: until
    // it has registered, it has no SIGTERM handler yet.
    let mut roles = roles.into_inner().expect("the roles lock");
    for role in &mut roles {
        role.wait_registered();
    }
    std::thread::sleep(Duration::from_millis(500));
    for role in &roles {
        role.signal(Signal::SIGTERM);
    }
    let mut bad_exits = Vec::new();
    for role in &mut roles {
        let pid = role.pid();
        let status = role.exit_within(EXIT_WITHIN).map(|(status, _)| status);
        match status {
            Some(s) if s.success() => {}
            other => bad_exits.push(format!("{} (pid {pid}): {other:?}", role.name())),
        }
    }
    assert!(
        bad_exits.is_empty(),
        "processes that did not exit 0 within {EXIT_WITHIN:?} of SIGTERM: {bad_exits:?}"
    );
    assert!(
        chaos.unexpected.is_empty(),
        "gale processes exited without being killed:\n{}",
        chaos.unexpected.join("\n\n")
    );

    let attempts = sql(
        &server,
        "SELECT state || '=' || count(*) FROM attempts GROUP BY state ORDER BY state",
    );
    let attempt_counts = parse_counts(&attempts);
    let total_attempts: i64 = attempt_counts.values().sum();
    let lost = attempt_counts.get("lost").copied().unwrap_or(0);
    eprintln!(
        "CHAOS SUMMARY: {triggered} runs, {total_tis} task instances, {total_attempts} attempts \
         ({}), {} kills, {lost} lost attempts, {:.1}s from the first trigger to the last run's end",
        attempts.replace('\n', " "),
        chaos.kills,
        elapsed.as_secs_f64()
    );
    let others = sql(
        &server,
        "SELECT run_id || '/' || task_id || ' try ' || try_number || ' ' || state || ' on ' \
         || worker_id || ': ' || coalesce(message, '') \
         FROM attempts WHERE state <> 'success' ORDER BY started_at LIMIT 40",
    );
    if !others.is_empty() {
        eprintln!("CHAOS: attempts that did not succeed (first 40):\n{others}");
    }

    // Every run succeeded, and nothing is left queued or running.
    assert_eq!(triggered, total_runs);
    assert_eq!(
        sql(
            &server,
            "SELECT dag_id || ' ' || state || '=' || count(*) FROM runs \
             GROUP BY dag_id, state ORDER BY dag_id, state"
        ),
        loads
            .iter()
            .map(|l| (l.dag_id, format!("{} success={}", l.dag_id, l.runs)))
            .collect::<BTreeMap<_, _>>()
            .into_values()
            .collect::<Vec<_>>()
            .join("\n"),
        "every run must succeed"
    );
    assert_eq!(
        sql(
            &server,
            "SELECT state || '=' || count(*) FROM task_instances GROUP BY state ORDER BY state"
        ),
        format!("success={total_tis}"),
        "every task instance must succeed; nothing may stay queued or running"
    );
    assert_eq!(
        sql(
            &server,
            "SELECT count(*) FROM attempts WHERE state = 'running' OR ended_at IS NULL \
             OR ended_at < started_at"
        ),
        "0",
        "every attempt ended (after it started)"
    );
    assert_eq!(
        sql(
            &server,
            "SELECT count(*) FROM runs WHERE started_at IS NULL OR ended_at IS NULL \
             OR ended_at < started_at"
        ),
        "0",
        "every run started and ended"
    );

    // Exactly one successful attempt per task instance: its last try.
    let not_once = sql(
        &server,
        "SELECT ti.run_id || '/' || ti.task_id || ' (try_number ' || ti.try_number || '): ' \
                || coalesce(string_agg(a.try_number || '=' || a.state, ' ' ORDER BY a.try_number), \
                            'no attempts') \
         FROM task_instances ti LEFT JOIN attempts a ON a.ti_id = ti.id \
         GROUP BY ti.id, ti.run_id, ti.task_id, ti.try_number \
         HAVING count(a.ti_id) FILTER (WHERE a.state = 'success') <> 1 \
             OR max(a.try_number) FILTER (WHERE a.state = 'success') <> ti.try_number \
         ORDER BY ti.id LIMIT 40",
    );
    assert_eq!(
        not_once, "",
        "task instances without exactly one successful attempt, as their last try"
    );

    // No two attempts of a task instance overlap in time.
    let overlaps = sql(
        &server,
        "SELECT a.run_id || '/' || a.task_id || ': try ' || a.try_number || ' ' || a.state \
                || ' on ' || a.worker_id || ' [' || a.started_at || ', ' || a.ended_at || ') and try ' \
                || b.try_number || ' ' || b.state || ' on ' || b.worker_id || ' [' || b.started_at \
                || ', ' || coalesce(b.ended_at::text, 'open') || ')' \
         FROM attempts a JOIN attempts b ON a.ti_id = b.ti_id AND a.try_number < b.try_number \
         WHERE b.started_at < coalesce(a.ended_at, 'infinity') \
           AND a.started_at < coalesce(b.ended_at, 'infinity') \
         ORDER BY a.ti_id, a.try_number LIMIT 40",
    );
    assert_eq!(
        overlaps, "",
        "attempts of one task instance that overlap in time"
    );

    // The limits held whenever the test looked (in commit order).
    eprintln!("CHAOS: most seen at once while sampling: {sampled:?}");
    for load in &loads {
        for (what, limit) in [
            ("runs", load.max_active_runs),
            ("tasks", load.max_active_tasks),
        ] {
            let seen = sampled.get(&format!("{what} {}", load.dag_id)).copied();
            assert!(
                seen.unwrap_or(0) <= limit,
                "{}: {seen:?} {what} active at once while sampling, over its limit {limit}",
                load.dag_id
            );
        }
    }

    // The recorded times follow cause and effect: an attempt starts after
    // its task instance was queued, and after its upstream tasks' successful
    // attempts ended.
    let before_queued = sql(
        &server,
        "SELECT 'attempt ' || a.run_id || '/' || a.task_id || '#' || a.try_number || ' started at ' \
                || a.started_at || ', ' || (t.queued_at - a.started_at) \
                || ' before its task instance was queued at ' || t.queued_at \
         FROM attempts a JOIN task_instances t ON t.id = a.ti_id AND t.try_number = a.try_number \
         WHERE a.started_at < t.queued_at ORDER BY a.started_at LIMIT 20",
    );
    let edges = loads
        .iter()
        .flat_map(|l| {
            l.edges
                .iter()
                .map(|(u, d)| format!("('{}', '{u}', '{d}')", l.dag_id))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let before_upstream = sql(
        &server,
        &format!(
            "WITH e (dag_id, up, down) AS (VALUES {edges}) \
             SELECT 'run ' || r.id || ': ' || d.task_id || '#' || d.try_number || ' started at ' \
                    || d.started_at || ', ' || (u.ended_at - d.started_at) || ' before ' \
                    || u.task_id || '#' || u.try_number || ' (success) ended at ' || u.ended_at \
             FROM e JOIN runs r ON r.dag_id = e.dag_id \
             JOIN attempts u ON u.run_id = r.id AND u.task_id = e.up AND u.state = 'success' \
             JOIN attempts d ON d.run_id = r.id AND d.task_id = e.down \
             WHERE d.started_at < u.ended_at ORDER BY d.started_at LIMIT 20"
        ),
    );
    if !before_queued.is_empty() || !before_upstream.is_empty() {
        eprintln!(
            "CHAOS: attempts stamped as started before they could have been claimed:\n\
             {before_queued}\n{before_upstream}"
        );
    }

    // The limits held at every moment, by the database's own timestamps.
    let task_limits: Vec<(&str, i64)> = loads
        .iter()
        .map(|l| (l.dag_id, l.max_active_tasks))
        .collect();
    let (task_peaks, tasks_over) = check_limit(
        &server,
        "SELECT r.dag_id, 'attempt ' || a.run_id || '/' || a.task_id || '#' || a.try_number \
                || ' (' || a.state || ' on ' || a.worker_id || ')' AS what, \
                a.started_at AS s, a.ended_at AS e \
         FROM attempts a JOIN runs r ON r.id = a.run_id",
        &task_limits,
    );
    let run_limits: Vec<(&str, i64)> = loads
        .iter()
        .map(|l| (l.dag_id, l.max_active_runs))
        .collect();
    let (run_peaks, runs_over) = check_limit(
        &server,
        "SELECT dag_id, 'run ' || id AS what, started_at AS s, ended_at AS e FROM runs",
        &run_limits,
    );
    let (pool_peaks, pool_over) = check_limit(
        &server,
        "SELECT t.pool AS dag_id, 'attempt ' || a.run_id || '/' || a.task_id || '#' || a.try_number \
                || ' (' || a.state || ' on ' || a.worker_id || ')' AS what, \
                a.started_at AS s, a.ended_at AS e \
         FROM attempts a JOIN task_instances t ON t.id = a.ti_id WHERE t.pool IS NOT NULL",
        &[("shared", SHARED_POOL_SLOTS)],
    );
    eprintln!("CHAOS: most attempts running at once in the shared pool: {pool_peaks:?}");
    assert_eq!(
        pool_over, "",
        "the shared pool's slots were exceeded (attempt intervals by the database's timestamps)"
    );
    assert_eq!(
        pool_peaks.get("shared"),
        Some(&SHARED_POOL_SLOTS),
        "the pool was never full: it did not limit anything"
    );
    eprintln!("CHAOS: most attempts running at once per DAG: {task_peaks:?}");
    eprintln!("CHAOS: most runs running at once per DAG: {run_peaks:?}");
    if !tasks_over.is_empty() || !runs_over.is_empty() {
        eprintln!("CHAOS: limits exceeded by the recorded times:\n{tasks_over}\n{runs_over}");
    }
    assert_eq!(
        before_queued, "",
        "attempts stamped as started before their task instance was queued"
    );
    assert_eq!(
        before_upstream, "",
        "attempts stamped as started before their upstream's successful attempt ended"
    );
    assert_eq!(
        tasks_over, "",
        "max_active_tasks exceeded (attempt intervals by the database's timestamps)"
    );
    assert_eq!(
        runs_over, "",
        "max_active_runs exceeded (run intervals by the database's timestamps)"
    );

    // The chaos mattered.
    assert!(
        chaos.kills >= MIN_KILLS,
        "only {} kills (at least {MIN_KILLS} expected)",
        chaos.kills
    );
    assert!(
        lost >= 1,
        "no attempt was recorded lost: the kills never hit a running task"
    );
}
