//! What each scenario cost, from the database once everything drained: runs
//! are attributed to the scenario during which they were created, attempts to
//! the one during which they started.

use crate::cluster::Cluster;
use crate::load::LoadStats;
use crate::probe::Outage;
use crate::util::median;

/// One scenario's measurements.
pub struct Record {
    pub name: String,
    /// A database scenario: its "first task start after writes resume" counts
    /// toward the median.
    pub db: bool,
    /// Runs created from here on (until the next scenario's start) count here.
    pub start: f64,
    pub injected: f64,
    pub recovered: f64,
    pub outage: Option<Outage>,
    pub first_start: Option<f64>,
    pub trigger_failures: usize,
    /// Failed API polls, and all polls (the webserver scenario).
    pub polls: Option<(usize, usize)>,
    pub skipped: Option<String>,
    /// The Gale process killed or cut off (node id), and when.
    pub victim: Option<(String, f64)>,
    pub notes: Vec<String>,
    pub runs: usize,
    pub lost: usize,
    pub double: usize,
    pub stuck: usize,
}

impl Record {
    pub fn new(name: &str, db: bool, start: f64) -> Record {
        Record {
            name: name.to_owned(),
            db,
            start,
            injected: start,
            recovered: start,
            outage: None,
            first_start: None,
            trigger_failures: 0,
            polls: None,
            skipped: None,
            victim: None,
            notes: Vec::new(),
            runs: 0,
            lost: 0,
            double: 0,
            stuck: 0,
        }
    }
}

pub struct Report {
    pub markdown: String,
    /// One line per violated expectation (empty: all held).
    pub problems: Vec<String>,
    /// The runs still open, if draining did not finish.
    pub open_runs: String,
}

/// Fills in runs, runs lost, double-running and stuck attempts per scenario
/// and renders the figures.
pub fn account(cluster: &Cluster, records: &mut [Record], load: &LoadStats) -> Report {
    let index = |t: f64| -> usize { records.iter().rposition(|r| r.start <= t).unwrap_or(0) };
    let mut problems = Vec::new();

    // Runs: every one must end `success`.
    let runs = cluster.sql(
        "SELECT id || ' ' || extract(epoch FROM created_at)::float8 || ' ' || dag_id || ' ' || state \
         FROM runs ORDER BY id",
    );
    let mut total = vec![0usize; records.len()];
    let mut lost = vec![0usize; records.len()];
    let mut known = std::collections::HashSet::new();
    let mut bad_runs = Vec::new();
    for line in runs.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (Some(id), Some(t)) = (
            f.first().and_then(|s| s.parse::<i64>().ok()),
            f.get(1).and_then(|s| s.parse::<f64>().ok()),
        ) else {
            continue;
        };
        known.insert(id);
        let i = index(t);
        total[i] += 1;
        if f.get(3) != Some(&"success") {
            lost[i] += 1;
            bad_runs.push(line.to_owned());
        }
    }
    // A run the API created (201) must still exist: one that vanished in a
    // failover was lost too.
    for (id, t) in &load.runs {
        if !known.contains(id) {
            lost[index(*t)] += 1;
            bad_runs.push(format!(
                "{id} (created through the API at {t:.3}) is missing"
            ));
        }
    }
    if !bad_runs.is_empty() {
        let detail = cluster.sql(
            "SELECT r.id || ' ' || r.dag_id || ' ' || r.state || ': ' || coalesce(string_agg(ti.task_id || '=' || ti.state \
             || ' try ' || ti.try_number, ', ' ORDER BY ti.task_id), '') \
             FROM runs r LEFT JOIN task_instances ti ON ti.run_id = r.id WHERE r.state <> 'success' \
             GROUP BY r.id, r.dag_id, r.state ORDER BY r.id LIMIT 50",
        );
        problems.push(format!(
            "{} runs did not end success:\n  {}\n  tasks of those runs:\n  {}",
            bad_runs.len(),
            bad_runs
                .iter()
                .take(50)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  "),
            detail.replace('\n', "\n  ")
        ));
    }

    // Two attempts of one task instance whose [started_at, ended_at) overlap
    // (an attempt never ended counts as running on).
    let overlaps = cluster.sql(
        "SELECT extract(epoch FROM a.started_at)::float8 || ' run ' || a.run_id || ' ' || a.task_id \
         || ' tries ' || a.try_number || ' (' || a.worker_id || ', ' || a.state || ') and ' || b.try_number \
         || ' (' || b.worker_id || ', ' || b.state || ')' \
         FROM attempts a JOIN attempts b ON a.ti_id = b.ti_id AND a.try_number < b.try_number \
         WHERE b.started_at < coalesce(a.ended_at, 'infinity') \
           AND a.started_at < coalesce(b.ended_at, 'infinity') ORDER BY 1",
    );
    let mut double = vec![0usize; records.len()];
    for line in overlaps.lines() {
        if let Some(t) = line.split(' ').next().and_then(|s| s.parse::<f64>().ok()) {
            double[index(t)] += 1;
        }
    }
    if !overlaps.is_empty() {
        problems.push(format!(
            "attempts that ran at once:\n  {}",
            overlaps.replace('\n', "\n  ")
        ));
    }

    // Task instances left queued or running, or with an attempt never ended.
    let stuck_rows = cluster.sql(
        "SELECT extract(epoch FROM r.created_at)::float8 || ' run ' || r.id || ' ' || ti.task_id || ' ' \
         || ti.state || ' try ' || ti.try_number || ' on ' || coalesce(ti.worker_id, '-') \
         FROM task_instances ti JOIN runs r ON r.id = ti.run_id \
         WHERE ti.state IN ('queued', 'running') \
            OR EXISTS (SELECT 1 FROM attempts a WHERE a.ti_id = ti.id \
                       AND (a.ended_at IS NULL OR a.state = 'running')) ORDER BY 1",
    );
    let mut stuck = vec![0usize; records.len()];
    for line in stuck_rows.lines() {
        if let Some(t) = line.split(' ').next().and_then(|s| s.parse::<f64>().ok()) {
            stuck[index(t)] += 1;
        }
    }
    if !stuck_rows.is_empty() {
        problems.push(format!(
            "task instances left queued or running:\n  {}",
            stuck_rows.replace('\n', "\n  ")
        ));
    }

    for (i, r) in records.iter_mut().enumerate() {
        r.runs = total[i];
        r.lost = lost[i];
        r.double = double[i];
        r.stuck = stuck[i];
    }
    let open_runs = cluster
        .try_sql(
            "SELECT string_agg(id || ' ' || dag_id || ' ' || state, E'\\n' ORDER BY id) FROM runs \
             WHERE state NOT IN ('success', 'failed')",
        )
        .unwrap_or_else(|e| e);

    let attempts = cluster.sql("SELECT count(*) FROM attempts");
    Report {
        markdown: render(records, load, total.iter().sum(), &attempts),
        problems,
        open_runs,
    }
}

fn render(records: &[Record], load: &LoadStats, runs: usize, attempts: &str) -> String {
    let mut md = String::from(
        "| scenario | write outage s | first task start after writes resume s | runs lost | double-running attempts | stuck |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for r in records {
        if let Some(why) = &r.skipped {
            md += &format!("| {} | skipped: {why} | | | | |\n", r.name);
            continue;
        }
        let outage = r
            .outage
            .map_or("0".into(), |o| format!("{:.2}", o.seconds()));
        let first = match (r.db, r.first_start) {
            (false, _) => "–".into(),
            (true, Some(s)) => format!("{s:.2}"),
            (true, None) => "n/a".into(),
        };
        md += &format!(
            "| {} | {outage} | {first} | {} | {} | {} |\n",
            r.name, r.lost, r.double, r.stuck
        );
    }
    let db_firsts: Vec<f64> = records
        .iter()
        .filter(|r| r.db)
        .filter_map(|r| r.first_start)
        .collect();
    let db_numbers: Vec<&str> = records
        .iter()
        .filter(|r| r.db && r.skipped.is_none())
        .filter_map(|r| r.name.split('.').next())
        .collect();
    md += &format!(
        "\nMedian first task start after writes resume over the database scenarios ({}): {} \
         (target: at most 1 s).\n",
        db_numbers.join(", "),
        median(&db_firsts).map_or("n/a".into(), |m| format!("{m:.2} s"))
    );
    md += &format!(
        "\n{runs} runs ({} triggered through HAProxy, the rest scheduled every 5 s or checks), \
         {attempts} attempts; {} triggers were refused or failed and retried.\n\n",
        load.runs.len(),
        load.failures.len()
    );
    for r in records {
        md += &format!(
            "- {}: {} runs; {}{}",
            r.name,
            r.runs,
            r.notes.join("; "),
            if r.trigger_failures > 0 {
                format!("; {} triggers retried", r.trigger_failures)
            } else {
                String::new()
            }
        );
        if let Some(o) = r.outage {
            md += &format!("; {} probe writes failed", o.failed);
        }
        md += "\n";
    }
    md
}
