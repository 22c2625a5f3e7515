//! The run page (facts, tasks, alert deliveries, Gantt chart, graph,
//! actions) and the attempt page (a task instance, its attempts, the chosen
//! try's command and log), with the operators' actions on both.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use gale_model::{RunId, TaskState};
use gale_store::{AttemptRow, RunRow, Store, TaskRow};
use serde::Deserialize;

use super::dag::run_graph;
use super::{ActionError, Ctx, Flash, Layout, UiError, format, gantt, masked_json, run_id_of};
use crate::AppState;
use crate::auth::url_escape;
use gale_actions::{self as actions, ClearWhat, Mark};

/// Tasks whose attempts the run page reads for its Gantt chart.
const ATTEMPT_READS: usize = 200;

/// Log lines rendered into the attempt page; the rest is fetched by the
/// follower, a page at a time.
const LOG_LINES: u32 = 5000;

// ------------------------------------------------------------------ run page

pub(crate) struct Fact {
    pub name: &'static str,
    pub value: String,
    pub href: String,
    /// Takes two columns (long values).
    pub wide: bool,
}

fn fact(name: &'static str, value: impl Into<String>) -> Fact {
    Fact {
        name,
        value: value.into(),
        href: String::new(),
        wide: false,
    }
}

fn wide(name: &'static str, value: impl Into<String>) -> Fact {
    Fact {
        wide: true,
        ..fact(name, value)
    }
}

pub(crate) struct TaskLine {
    pub task_id: String,
    pub href: String,
    pub state: &'static str,
    pub tries: String,
    pub queue: String,
    pub worker: String,
    pub started: String,
    pub ended: String,
    pub duration: String,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    page: Layout,
    href: String,
    run_id: i64,
    dag_id: String,
    dag_href: String,
    state: &'static str,
    finished: bool,
    has_failed: bool,
    facts: Vec<Fact>,
    conf: String,
    tasks: Vec<TaskLine>,
    gantt: String,
    graph: String,
    /// The run's alert deliveries, newest first.
    alerts: Vec<super::alerts::DeliveryLine>,
}

pub async fn run_page(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(run_id): Path<String>,
) -> Response {
    let res = async {
        let store = &*s.store;
        let run = run_of(store, &run_id).await?;
        let now = store.now().await?;
        let zone = run_zone(store, &ctx, &run).await?;
        let tasks = store.run_tasks(run.id).await?;
        let dag_href = format!("/dags/{}", url_escape(&run.dag_id.0));
        let mut facts = vec![
            fact("Type", run.run_type.as_str()),
            wide("Key", run.run_key.clone()),
            fact("Logical date", zone.ts(run.logical_date)),
            wide(
                "Data interval",
                format!(
                    "{} → {}",
                    zone.ts(run.interval_start),
                    zone.ts(run.interval_end)
                ),
            ),
            fact("Created", zone.ts(run.created_at)),
            fact("Started", zone.ts_opt(run.started_at)),
            fact("Ended", zone.ts_opt(run.ended_at)),
            fact("Duration", format::span(run.started_at, run.ended_at, now)),
        ];
        facts.push(Fact {
            name: "DAG version",
            value: format::short_hash(&run.version_hash).to_owned(),
            href: format!(
                "{dag_href}?tab=source&version={}",
                url_escape(&run.version_hash)
            ),
            wide: false,
        });
        let bars = gantt_bars(store, run.id, &tasks).await?;
        let tmpl = RunPage {
            page: ctx.layout_in("dags", &zone),
            href: format!("/runs/{}", run.id.0),
            run_id: run.id.0,
            dag_id: run.dag_id.0.clone(),
            dag_href,
            state: run.state.as_str(),
            finished: run.state.is_terminal(),
            has_failed: tasks
                .iter()
                .any(|t| matches!(t.state, TaskState::Failed | TaskState::UpstreamFailed)),
            facts,
            conf: masked_json(&run.conf),
            tasks: tasks
                .iter()
                .map(|t| TaskLine {
                    task_id: t.task_id.0.clone(),
                    href: format!(
                        "/runs/{}/tasks/{}",
                        run.id.0,
                        url_escape(t.task_id.as_str())
                    ),
                    state: t.state.as_str(),
                    tries: format!("{} / {}", t.try_number, t.max_tries),
                    queue: t.queue.clone(),
                    worker: t.worker_id.clone().map(|w| w.0).unwrap_or_default(),
                    started: zone.ts_opt(t.started_at),
                    ended: zone.ts_opt(t.ended_at),
                    duration: format::span(t.started_at, t.ended_at, now),
                })
                .collect(),
            gantt: gantt::svg(&bars, now, &zone),
            graph: run_graph(store, &run, &tasks).await?,
            alerts: super::alerts::run_lines(store, run.id, &zone).await?,
        };
        Ok(ctx.page(StatusCode::OK, &tmpl))
    }
    .await;
    ctx.respond(res)
}

/// The zone a page about `run` writes its times in: its DAG's zone (as the
/// run's own version declares it, or the DAG's current one if that version
/// is gone), or UTC if the reader chose UTC.
async fn run_zone(store: &dyn Store, ctx: &Ctx, run: &RunRow) -> Result<format::Zone, UiError> {
    let dag_tz = match super::version(store, &run.dag_id, &run.version_hash).await? {
        Some(v) => v.spec.timezone.clone(),
        None => store
            .get_dag(&run.dag_id)
            .await?
            .map_or_else(|| "UTC".to_owned(), |d| d.timezone),
    };
    Ok(ctx.zone_for(&dag_tz))
}

async fn run_of(store: &dyn Store, run_id: &str) -> Result<RunRow, UiError> {
    let id = run_id_of(run_id)?;
    store
        .get_run(id)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("no run {id}")))
}

/// Every attempt of the run's tasks as a Gantt bar. A task on its first try
/// is drawn from its own row; only tasks that ran more than once (few) cost a
/// read of their attempts, and at most [`ATTEMPT_READS`] of them do (the
/// rest show their latest try).
///
/// The queued part of a bar: the store keeps one `queued_at` per task
/// instance, set each time it is queued, and none per attempt. So only the
/// task's current try gets a queued part (from that instant to its start);
/// earlier tries' queued instants were overwritten when the task was queued
/// again, and their bars show the running time alone.
async fn gantt_bars(
    store: &dyn Store,
    run_id: RunId,
    tasks: &[TaskRow],
) -> Result<Vec<gantt::GanttBar>, UiError> {
    let mut bars = Vec::new();
    let mut reads = 0;
    for t in tasks {
        let href = |try_number: u32| {
            Some(format!(
                "/runs/{}/tasks/{}?try={try_number}",
                run_id.0,
                url_escape(t.task_id.as_str())
            ))
        };
        let read = t.try_number > 1 || t.state == TaskState::None;
        match (t.try_number, t.started_at) {
            (0, _) => {}
            (n, Some(start)) if !read || reads >= ATTEMPT_READS => bars.push(gantt::GanttBar {
                task_id: t.task_id.0.clone(),
                try_number: n,
                state: t.state.as_str().to_owned(),
                queued: queued_before(t, n, start),
                start,
                end: t.ended_at.or(if t.state == TaskState::Running {
                    None
                } else {
                    Some(start)
                }),
                href: href(n),
            }),
            _ if reads < ATTEMPT_READS => {
                reads += 1;
                for a in store.attempts(t.id).await? {
                    bars.push(gantt::GanttBar {
                        task_id: t.task_id.0.clone(),
                        try_number: a.try_number,
                        state: a.state.to_string(),
                        queued: queued_before(t, a.try_number, a.started_at),
                        start: a.started_at,
                        end: a.ended_at,
                        href: href(a.try_number),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(bars)
}

/// When try `try_number` of `t`, started at `start`, was queued: the task's
/// `queued_at` if that try is its current one and the instant comes before
/// the start (a clock that disagrees draws no queued part).
fn queued_before(t: &TaskRow, try_number: u32, start: jiff::Timestamp) -> Option<jiff::Timestamp> {
    t.queued_at
        .filter(|q| try_number == t.try_number && *q <= start)
}

#[derive(Deserialize)]
pub struct MarkForm {
    #[serde(default)]
    state: String,
}

/// What to say after an action: the flash, or the page of its error.
fn after(ctx: &Ctx, to: &str, res: Result<String, ActionError>) -> Response {
    match res {
        Ok(msg) => ctx.redirect(to, Flash::ok(msg)),
        Err(ActionError::Refused(msg)) => ctx.redirect(to, Flash::error(msg)),
        Err(ActionError::Page(e)) => ctx.error(e),
    }
}

pub async fn cancel(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(run_id): Path<String>,
) -> Response {
    let to = format!("/runs/{}", url_escape(&run_id));
    let res = async {
        let id = run_id_of(&run_id)?;
        let run = actions::cancel_run(&*s.store, &ctx.actor(), id)
            .await
            .map_err(ActionError::of_mark)?;
        s.run_changed(run.id);
        Ok(format!("run {} cancelled", run.id))
    }
    .await;
    after(&ctx, &to, res)
}

pub async fn mark(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(run_id): Path<String>,
    Form(form): Form<MarkForm>,
) -> Response {
    let to = format!("/runs/{}", url_escape(&run_id));
    let res = async {
        let mark = Mark::parse(&form.state)?;
        let id = run_id_of(&run_id)?;
        let run = actions::mark_run(&*s.store, &ctx.actor(), id, mark)
            .await
            .map_err(ActionError::of_mark)?;
        s.run_changed(run.id);
        Ok(format!("run {} marked {}", run.id, form.state))
    }
    .await;
    after(&ctx, &to, res)
}

pub async fn clear(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(run_id): Path<String>,
) -> Response {
    let to = format!("/runs/{}", url_escape(&run_id));
    let res = async {
        let run = run_of(&*s.store, &run_id).await?;
        let cleared = actions::clear(&*s.store, &ctx.actor(), run.id, &ClearWhat::Failed).await?;
        notify(&s, run.id);
        Ok(cleared_words(&cleared))
    }
    .await;
    after(&ctx, &to, res)
}

fn cleared_words(cleared: &[String]) -> String {
    match cleared.len() {
        0 => "nothing to clear".to_owned(),
        1 => format!("cleared {}: it runs again", cleared[0]),
        n => format!("cleared {n} tasks ({}): they run again", cleared.join(", ")),
    }
}

fn notify(s: &AppState, run_id: RunId) {
    s.run_changed(run_id);
    if let Some(n) = &s.notifier {
        n.scheduler.notify_one();
    }
}

// ------------------------------------------------------------------ attempt page

pub(crate) struct AttemptLine {
    pub try_number: u32,
    pub href: String,
    pub selected: bool,
    pub worker: String,
    pub host: String,
    pub pid: String,
    pub state: String,
    /// The task-state class that colours it.
    pub state_class: &'static str,
    pub exit_code: String,
    pub message: String,
    pub started: String,
    pub ended: String,
    pub duration: String,
}

pub(crate) struct LogLineView {
    pub seq: i64,
    pub stream: &'static str,
    pub ts: String,
    pub time: String,
    pub text: String,
}

#[derive(Template)]
#[template(path = "task.html")]
struct TaskPage {
    page: Layout,
    run_id: i64,
    dag_id: String,
    dag_href: String,
    run_href: String,
    task_id: String,
    href: String,
    state: &'static str,
    facts: Vec<Fact>,
    attempts: Vec<AttemptLine>,
    try_number: u32,
    command: String,
    outputs: Vec<(String, String)>,
    log: Vec<LogLineView>,
    /// The IANA zone the log follower writes new lines' times in (empty:
    /// UTC, as the API gives them).
    log_zone: String,
    /// Where the log follower reads on (empty: the log is complete).
    follow_url: String,
    last_seq: i64,
    /// The task has not started: the page refreshes itself until it does.
    waiting: bool,
    finished: bool,
}

#[derive(Deserialize)]
pub struct TaskQuery {
    #[serde(rename = "try")]
    try_number: Option<String>,
}

/// The class an attempt's outcome is coloured with.
fn attempt_class(state: &str) -> &'static str {
    match state {
        "running" => "running",
        "success" | "marked_success" => "success",
        "failed" | "timed_out" | "marked_failed" => "failed",
        "skipped" => "skipped",
        "lost" => "up_for_retry",
        "cancelled" => "upstream_failed",
        _ => "queued",
    }
}

pub async fn task_page(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path((run_id, task_id)): Path<(String, String)>,
    Query(q): Query<TaskQuery>,
) -> Response {
    let res = async {
        let store = &*s.store;
        let (run, t) = task_of(store, &run_id, &task_id).await?;
        let now = store.now().await?;
        let zone = run_zone(store, &ctx, &run).await?;
        let attempts = store.attempts(t.id).await?;
        let try_number = match q.try_number.as_deref().filter(|s| !s.is_empty()) {
            None => t.try_number,
            Some(n) => n
                .parse::<u32>()
                .ok()
                .filter(|n| attempts.iter().any(|a| a.try_number == *n))
                .ok_or_else(|| {
                    UiError::NotFound(format!(
                        "task {task_id} of run {} has no attempt {n:?}",
                        run.id
                    ))
                })?,
        };
        let chosen: Option<&AttemptRow> = attempts.iter().find(|a| a.try_number == try_number);
        let secrets = crate::secrets::Secrets::of_conf(&run.conf);
        let base = format!("/runs/{}/tasks/{}", run.id.0, url_escape(&task_id));
        let (log, follow_url, last_seq) = match chosen {
            Some(a) => {
                let rows = store.read_logs(t.id, try_number, 0, LOG_LINES).await?;
                let last_seq = rows.last().map_or(0, |r| r.seq);
                let complete = a.ended_at.is_some() && rows.len() < LOG_LINES as usize;
                let follow_url = if complete {
                    String::new()
                } else {
                    format!(
                        "/api/v1/runs/{}/tasks/{}/logs?try={try_number}",
                        run.id.0,
                        url_escape(&task_id)
                    )
                };
                let lines = rows
                    .into_iter()
                    .map(|r| LogLineView {
                        seq: r.seq,
                        stream: r.stream.as_str(),
                        ts: zone.ts(r.ts),
                        time: zone.clock(r.ts),
                        text: secrets.mask(&r.text),
                    })
                    .collect();
                (lines, follow_url, last_seq)
            }
            None => (Vec::new(), String::new(), 0),
        };
        let mut facts = vec![
            fact("Try", format!("{} of {}", t.try_number, t.max_tries)),
            fact("Queue", t.queue.clone()),
        ];
        if let Some(pool) = &t.pool {
            facts.push(fact("Pool", pool.clone()));
        }
        facts.extend([
            wide(
                "Worker",
                t.worker_id
                    .clone()
                    .map(|w| w.0)
                    .unwrap_or_else(|| "—".into()),
            ),
            fact("Queued", zone.ts_opt(t.queued_at)),
            fact("Started", zone.ts_opt(t.started_at)),
            fact("Ended", zone.ts_opt(t.ended_at)),
            fact("Duration", format::span(t.started_at, t.ended_at, now)),
        ]);
        if let Some(retry) = t.retry_at.filter(|_| t.state == TaskState::UpForRetry) {
            facts.push(fact(
                "Retry",
                format!("{} ({})", format::ago(retry, now), zone.ts(retry)),
            ));
        }
        if !t.state.is_terminal()
            && t.state != TaskState::Running
            && let Some(v) = store.get_version(&run.dag_id, &run.version_hash).await?
        {
            let tasks = store.run_tasks(run.id).await?;
            // A reason that cannot be read leaves the page as it is.
            if let Ok(mut why) = gale_actions::waiting_reasons(store, &run, &v.spec, &tasks).await
                && let Some(w) = why.remove(t.task_id.as_str())
            {
                facts.insert(0, wide("Waiting for", w));
            }
        }
        let tmpl = TaskPage {
            page: ctx.layout_in("dags", &zone),
            log_zone: if zone.is_utc() {
                String::new()
            } else {
                zone.name().to_owned()
            },
            run_id: run.id.0,
            dag_id: run.dag_id.0.clone(),
            dag_href: format!("/dags/{}", url_escape(&run.dag_id.0)),
            run_href: format!("/runs/{}", run.id.0),
            task_id: task_id.clone(),
            href: base.clone(),
            state: t.state.as_str(),
            facts,
            attempts: attempts
                .iter()
                .map(|a| AttemptLine {
                    try_number: a.try_number,
                    href: format!("{base}?try={}", a.try_number),
                    selected: a.try_number == try_number,
                    worker: a.worker_id.0.clone(),
                    host: a.host.clone().unwrap_or_default(),
                    pid: a.pid.map(|p| p.to_string()).unwrap_or_default(),
                    state: a.state.to_string(),
                    state_class: attempt_class(a.state.as_str()),
                    exit_code: a.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                    message: a.message.clone().unwrap_or_default(),
                    started: zone.ts(a.started_at),
                    ended: zone.ts_opt(a.ended_at),
                    duration: format::span(Some(a.started_at), a.ended_at, now),
                })
                .collect(),
            try_number,
            command: chosen
                .and_then(|a| a.command.as_deref())
                .map(|c| secrets.mask(c))
                .unwrap_or_default(),
            outputs: t
                .outputs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            log,
            follow_url,
            last_seq,
            waiting: chosen.is_none() && !t.state.is_terminal(),
            finished: t.state.is_terminal(),
        };
        Ok(ctx.page(StatusCode::OK, &tmpl))
    }
    .await;
    ctx.respond(res)
}

async fn task_of(
    store: &dyn Store,
    run_id: &str,
    task_id: &str,
) -> Result<(RunRow, TaskRow), UiError> {
    let run = run_of(store, run_id).await?;
    let t = store
        .run_tasks(run.id)
        .await?
        .into_iter()
        .find(|t| t.task_id.as_str() == task_id)
        .ok_or_else(|| UiError::NotFound(format!("run {} has no task {task_id:?}", run.id)))?;
    Ok((run, t))
}

#[derive(Deserialize)]
pub struct ClearTaskForm {
    downstream: Option<String>,
}

pub async fn clear_task(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path((run_id, task_id)): Path<(String, String)>,
    Form(form): Form<ClearTaskForm>,
) -> Response {
    let to = format!(
        "/runs/{}/tasks/{}",
        url_escape(&run_id),
        url_escape(&task_id)
    );
    let res = async {
        let (run, _) = task_of(&*s.store, &run_id, &task_id).await?;
        let what = ClearWhat::Tasks {
            task_ids: vec![task_id.clone()],
            downstream: form.downstream.is_some(),
        };
        let cleared = actions::clear(&*s.store, &ctx.actor(), run.id, &what).await?;
        notify(&s, run.id);
        Ok(cleared_words(&cleared))
    }
    .await;
    after(&ctx, &to, res)
}

pub async fn mark_task(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path((run_id, task_id)): Path<(String, String)>,
    Form(form): Form<MarkForm>,
) -> Response {
    let to = format!(
        "/runs/{}/tasks/{}",
        url_escape(&run_id),
        url_escape(&task_id)
    );
    let res = async {
        let mark = Mark::parse(&form.state)?;
        let id = run_id_of(&run_id)?;
        let t = actions::mark_task(&*s.store, &ctx.actor(), id, &task_id, mark)
            .await
            .map_err(ActionError::of_mark)?;
        s.run_changed(t.run_id);
        Ok(format!("task {task_id} marked {}", mark.task_state()))
    }
    .await;
    after(&ctx, &to, res)
}
