//! The DAG page and its tabs (grid, graph, runs, durations, tries, landing,
//! calendar, source, trigger, backfill), the grid's self-refreshing fragment,
//! and the backfill form. The history tabs' reads are in `dag_history.rs`,
//! the trigger form and its handler in `dag_trigger.rs`.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use gale_model::{DagId, RunId};
use gale_store::{Role, RunFilter, Store};
use jiff::Timestamp;
use serde::Deserialize;

use super::dag_history::{CalendarView, HistoryView, calendar_view, history_runs, history_view};
use super::dag_trigger::trigger_form;
use super::dags::Toggle;
use super::grid::{self, Grid};
use super::history::Metric;
use super::params_form::Field;
use super::{
    ActionError, Ctx, Flash, Layout, UiError, current_dag, dag_id_of, format, graph, html,
};
use crate::AppState;

use crate::auth::url_escape;

/// Runs in the grid.
const GRID_RUNS: u32 = 25;
/// Runs per page of the runs tab.
const RUNS_PAGE: u32 = 50;
/// Versions listed on the source tab.
const VERSIONS_SHOWN: usize = 50;
/// Backfills listed on the backfill tab.
const BACKFILLS_SHOWN: u32 = 20;

// ------------------------------------------------------------------ views

pub(crate) struct Head {
    pub dag_id: String,
    pub href: String,
    pub description: String,
    pub tags: Vec<String>,
    pub toggle: Toggle,
    pub paused: bool,
    pub active: bool,
    pub schedule: String,
    pub schedule_expr: String,
    pub timezone: String,
    /// When, relative to now: `in 3h`.
    pub next_run: String,
    /// When, in the page's zone: `2026-07-01 06:30:00 CEST`.
    pub next_run_at: String,
    pub file: String,
    /// Where its version came from: `folder`, `push by USER`, `git NAME@COMMIT`.
    pub source: String,
    pub n_tasks: usize,
    pub max_active_runs: u32,
}

pub(crate) struct TabLink {
    pub label: &'static str,
    pub href: String,
    pub active: bool,
}

pub(crate) struct GridView {
    pub url: String,
    pub trigger_href: String,
    pub grid: Grid,
}

pub(crate) struct GraphRun {
    pub run_id: i64,
    pub label: String,
    pub selected: bool,
}

pub(crate) struct GraphView {
    pub action: String,
    pub runs: Vec<GraphRun>,
    pub run_href: String,
    pub svg: String,
}

pub(crate) struct RunLine {
    pub run_id: i64,
    pub href: String,
    pub state: &'static str,
    pub run_type: &'static str,
    pub logical_date: String,
    pub started: String,
    pub ended: String,
    pub duration: String,
    pub conf: String,
}

pub(crate) struct RunsView {
    pub runs: Vec<RunLine>,
    pub newer_href: String,
    pub older_href: String,
}

pub(crate) struct VersionLine {
    pub short: String,
    pub href: String,
    /// The shown version compared with this one.
    pub compare_href: String,
    pub created: String,
    /// Where it came from: `folder`, `push by USER`, `git NAME@COMMIT`.
    pub source: String,
    pub current: bool,
    pub selected: bool,
}

pub(crate) struct SourceView {
    pub file: String,
    pub short: String,
    pub current: bool,
    pub source: String,
    pub lines: Vec<String>,
    pub versions: Vec<VersionLine>,
    pub more_versions: usize,
    /// This version against the one before it.
    pub previous_href: String,
    /// This version against the newest successful run's.
    pub last_success_href: String,
    /// The comparison asked for (`against`), shown instead of the text.
    pub diff: Option<super::dag_versions::DiffView>,
}

pub(crate) struct TriggerView {
    pub action: String,
    /// One per param not secret.
    pub fields: Vec<Field>,
    /// The advanced JSON box.
    pub conf: String,
    pub logical_date: String,
    pub error: String,
    pub hidden_secrets: bool,
}

pub(crate) struct BackfillLine {
    pub id: i64,
    pub from: String,
    pub to: String,
    pub by: String,
    pub created: String,
    pub done: u32,
    pub total: u32,
    pub percent: u32,
    pub states: Vec<(String, u32)>,
}

pub(crate) struct BackfillView {
    pub action: String,
    pub scheduled: bool,
    pub from: String,
    pub to: String,
    pub error: String,
    pub backfills: Vec<BackfillLine>,
}

#[derive(Template)]
#[template(path = "dag.html")]
struct DagPage {
    page: Layout,
    head: Head,
    tabs: Vec<TabLink>,
    grid_tab: Option<GridView>,
    graph_tab: Option<GraphView>,
    runs_tab: Option<RunsView>,
    history_tab: Option<HistoryView>,
    calendar_tab: Option<CalendarView>,
    source_tab: Option<SourceView>,
    trigger_tab: Option<TriggerView>,
    backfill_tab: Option<BackfillView>,
}

#[derive(Template)]
#[template(path = "grid.html")]
struct GridFragment {
    grid: GridView,
}

/// Which tab, with what it needs.
pub(super) enum Tab {
    Grid,
    Graph(Option<RunId>),
    Runs(Option<RunId>),
    /// A history chart over the newest this many runs.
    History(Metric, u32),
    Calendar,
    Source(Option<String>, Option<String>),
    /// The form, or (after a refused POST) what was typed and why it failed.
    Trigger(Option<TriggerView>),
    Backfill(Option<(String, String, String)>),
}

#[derive(Deserialize)]
pub struct DagQuery {
    tab: Option<String>,
    run: Option<String>,
    before: Option<String>,
    version: Option<String>,
    runs: Option<String>,
    /// On the source tab: the version to compare the shown one with.
    against: Option<String>,
}

fn run_param(s: Option<&str>) -> Result<Option<RunId>, UiError> {
    match s.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .map(|n| Some(RunId(n)))
            .map_err(|_| UiError::BadRequest(format!("{s:?} is not a run id"))),
    }
}

pub async fn page(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(dag_id): Path<String>,
    Query(q): Query<DagQuery>,
) -> Response {
    let res = async {
        let dag_id = dag_id_of(dag_id)?;
        let tab = match q.tab.as_deref().unwrap_or("grid") {
            "grid" => Tab::Grid,
            "graph" => Tab::Graph(run_param(q.run.as_deref())?),
            "runs" => Tab::Runs(run_param(q.before.as_deref())?),
            "durations" => Tab::History(Metric::Duration, history_runs(q.runs.as_deref())?),
            "tries" => Tab::History(Metric::Tries, history_runs(q.runs.as_deref())?),
            "landing" => Tab::History(Metric::Landing, history_runs(q.runs.as_deref())?),
            "calendar" => Tab::Calendar,
            "source" => Tab::Source(
                q.version.filter(|v| !v.is_empty()),
                q.against.filter(|v| !v.is_empty()),
            ),
            "trigger" => Tab::Trigger(None),
            "backfill" => Tab::Backfill(None),
            other => {
                return Err(UiError::NotFound(format!(
                    "the DAG page has no tab {other:?}"
                )));
            }
        };
        render(&s, &ctx, &dag_id, tab, StatusCode::OK).await
    }
    .await;
    ctx.respond(res)
}

pub(super) async fn render(
    s: &AppState,
    ctx: &Ctx,
    dag_id: &DagId,
    tab: Tab,
    status: StatusCode,
) -> Result<Response, UiError> {
    let store = &*s.store;
    let (row, current) = current_dag(store, dag_id).await?;
    let zone = ctx.zone_for(&row.timezone);
    let page = ctx.layout_in("dags", &zone);
    let now = store.now().await?;
    let spec = &current.spec;
    let href = format!("/dags/{}", url_escape(&dag_id.0));
    let sched = crate::next_run::schedule_of(spec);
    let next = if row.active && !row.paused {
        crate::next_run::next_run(&row, spec, now)
    } else {
        None
    };
    let head = Head {
        dag_id: dag_id.0.clone(),
        href: href.clone(),
        description: row.description.clone().unwrap_or_default(),
        tags: row.tags.clone(),
        toggle: Toggle::new(&dag_id.0, row.paused, &href, &page),
        paused: row.paused,
        active: row.active,
        schedule: sched.as_ref().map_or_else(
            || "manual".to_owned(),
            |s| format::schedule(&s.words, &row.timezone),
        ),
        schedule_expr: row.schedule.clone().unwrap_or_default(),
        timezone: row.timezone.clone(),
        next_run: next.map(|t| format::ago(t, now)).unwrap_or_default(),
        next_run_at: next.map(|t| zone.ts(t)).unwrap_or_default(),
        file: row.file.clone(),
        source: crate::api::dags::OriginOut::of(row.origin.as_ref(), row.owner_kind()).words(),
        n_tasks: spec.tasks.len(),
        max_active_runs: row.max_active_runs,
    };
    let active = match &tab {
        Tab::Grid => "grid",
        Tab::Graph(_) => "graph",
        Tab::Runs(_) => "runs",
        Tab::History(Metric::Duration, _) => "durations",
        Tab::History(Metric::Tries, _) => "tries",
        Tab::History(Metric::Landing, _) => "landing",
        Tab::Calendar => "calendar",
        Tab::Source(..) => "source",
        Tab::Trigger(_) => "trigger",
        Tab::Backfill(_) => "backfill",
    };
    let tabs = [
        ("grid", "Grid"),
        ("graph", "Graph"),
        ("runs", "Runs"),
        ("durations", "Durations"),
        ("tries", "Tries"),
        ("landing", "Landing"),
        ("calendar", "Calendar"),
        ("source", "Source"),
        ("trigger", "Trigger"),
        ("backfill", "Backfill"),
    ]
    .into_iter()
    .map(|(name, label)| TabLink {
        label,
        href: if name == "grid" {
            href.clone()
        } else {
            format!("{href}?tab={name}")
        },
        active: name == active,
    })
    .collect();
    let mut tmpl = DagPage {
        page,
        head,
        tabs,
        grid_tab: None,
        graph_tab: None,
        runs_tab: None,
        history_tab: None,
        calendar_tab: None,
        source_tab: None,
        trigger_tab: None,
        backfill_tab: None,
    };
    match tab {
        Tab::Grid => {
            tmpl.grid_tab = Some(grid_view(store, dag_id, spec, now, &zone).await?);
        }
        Tab::Graph(run) => {
            tmpl.graph_tab = Some(graph_view(store, dag_id, &current, run, &zone).await?);
        }
        Tab::Runs(before) => {
            tmpl.runs_tab = Some(runs_view(store, dag_id, before, now, &zone).await?);
        }
        Tab::History(metric, n) => {
            tmpl.history_tab = Some(history_view(store, dag_id, spec, metric, n, &zone).await?);
        }
        Tab::Calendar => {
            tmpl.calendar_tab = Some(calendar_view(store, dag_id, now).await?);
        }
        Tab::Source(version, against) => {
            tmpl.source_tab = Some(
                source_view(
                    store,
                    dag_id,
                    &row.version_hash,
                    (version, against),
                    ctx.identity.role,
                    &zone,
                )
                .await?,
            );
        }
        Tab::Trigger(form) => {
            tmpl.trigger_tab = Some(form.unwrap_or_else(|| trigger_form(dag_id, spec)));
        }
        Tab::Backfill(form) => {
            let (from, to, error) = form.unwrap_or_default();
            tmpl.backfill_tab = Some(BackfillView {
                action: format!("/dags/{}/backfill", url_escape(&dag_id.0)),
                scheduled: sched.is_some(),
                from,
                to,
                error,
                backfills: backfills(store, dag_id, &zone).await?,
            });
        }
    }
    Ok(ctx.page(status, &tmpl))
}

// ------------------------------------------------------------------ grid

async fn grid_view(
    store: &dyn Store,
    dag_id: &DagId,
    spec: &gale_model::Dag,
    now: Timestamp,
    zone: &format::Zone,
) -> Result<GridView, UiError> {
    let runs = store
        .list_runs(&RunFilter {
            dag_id: Some(dag_id.clone()),
            limit: GRID_RUNS,
            ..RunFilter::default()
        })
        .await?;
    let ids: Vec<RunId> = runs.iter().map(|r| r.id).collect();
    let tasks = if ids.is_empty() {
        Vec::new()
    } else {
        store.tasks_of_runs(&ids).await?
    };
    let order: Vec<&str> = spec.tasks.iter().map(|t| t.id.as_str()).collect();
    let href = format!("/dags/{}", url_escape(&dag_id.0));
    Ok(GridView {
        url: format!("{href}/grid"),
        trigger_href: format!("{href}?tab=trigger"),
        grid: grid::assemble(&order, &runs, &tasks, now, zone),
    })
}

/// The grid alone, for htmx to swap in every few seconds.
pub async fn grid_fragment(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(dag_id): Path<String>,
) -> Response {
    let res = async {
        let dag_id = dag_id_of(dag_id)?;
        let store = &*s.store;
        let (row, current) = current_dag(store, &dag_id).await?;
        let now = store.now().await?;
        let zone = ctx.zone_for(&row.timezone);
        let grid = grid_view(store, &dag_id, &current.spec, now, &zone).await?;
        Ok(html(&GridFragment { grid }))
    }
    .await;
    ctx.respond(res)
}

// ------------------------------------------------------------------ graph

async fn graph_view(
    store: &dyn Store,
    dag_id: &DagId,
    current: &gale_store::DagVersion,
    run: Option<RunId>,
    zone: &format::Zone,
) -> Result<GraphView, UiError> {
    let recent = store
        .list_runs(&RunFilter {
            dag_id: Some(dag_id.clone()),
            limit: GRID_RUNS,
            ..RunFilter::default()
        })
        .await?;
    let chosen = match run {
        Some(id) => match recent.iter().find(|r| r.id == id) {
            Some(r) => Some(r.clone()),
            None => Some(
                store
                    .get_run(id)
                    .await?
                    .filter(|r| r.dag_id == *dag_id)
                    .ok_or_else(|| UiError::NotFound(format!("{dag_id} has no run {id}")))?,
            ),
        },
        None => recent.first().cloned(),
    };
    let svg = match &chosen {
        Some(r) => run_graph(store, r, &store.run_tasks(r.id).await?).await?,
        None => graph::svg(&plain_nodes(&current.spec)),
    };
    let mut runs: Vec<GraphRun> = recent
        .iter()
        .map(|r| GraphRun {
            run_id: r.id.0,
            label: format!(
                "{} · {} · {}",
                r.id.0,
                zone.ts(r.logical_date),
                r.state.as_str()
            ),
            selected: chosen.as_ref().is_some_and(|c| c.id == r.id),
        })
        .collect();
    if let Some(c) = chosen
        .as_ref()
        .filter(|c| !recent.iter().any(|r| r.id == c.id))
    {
        runs.push(GraphRun {
            run_id: c.id.0,
            label: format!("{} · {}", c.id.0, zone.ts(c.logical_date)),
            selected: true,
        });
    }
    Ok(GraphView {
        action: format!("/dags/{}", url_escape(&dag_id.0)),
        runs,
        run_href: chosen
            .map(|r| format!("/runs/{}", r.id.0))
            .unwrap_or_default(),
        svg,
    })
}

fn plain_nodes(spec: &gale_model::Dag) -> Vec<graph::GraphNode> {
    spec.tasks
        .iter()
        .map(|t| graph::GraphNode {
            id: t.id.0.clone(),
            needs: t.needs.iter().map(|n| n.0.clone()).collect(),
            state: None,
            href: None,
            label: Some(kind_of(t).to_owned()),
        })
        .collect()
}

pub(crate) fn kind_of(t: &gale_model::Task) -> &'static str {
    match t.kind {
        gale_model::TaskKind::Shell { .. } => "shell",
        gale_model::TaskKind::Http(_) => "http",
    }
}

/// The graph of a run's own DAG version, coloured by its task instances.
pub(crate) async fn run_graph(
    store: &dyn Store,
    run: &gale_store::RunRow,
    tasks: &[gale_store::TaskRow],
) -> Result<String, UiError> {
    let version = super::version(store, &run.dag_id, &run.version_hash).await?;
    Ok(graph::svg(&run_nodes(run.id, version.as_deref(), tasks)))
}

pub(crate) fn run_nodes(
    run_id: RunId,
    version: Option<&gale_store::DagVersion>,
    tasks: &[gale_store::TaskRow],
) -> Vec<graph::GraphNode> {
    let states: std::collections::HashMap<&str, &'static str> = tasks
        .iter()
        .map(|t| (t.task_id.as_str(), t.state.as_str()))
        .collect();
    let state_of = |id: &str| states.get(id).map(|s| (*s).to_owned());
    let href = |id: &str| Some(format!("/runs/{}/tasks/{}", run_id.0, url_escape(id)));
    match version {
        Some(v) => v
            .spec
            .tasks
            .iter()
            .map(|t| graph::GraphNode {
                id: t.id.0.clone(),
                needs: t.needs.iter().map(|n| n.0.clone()).collect(),
                state: state_of(t.id.as_str()),
                href: href(t.id.as_str()),
                label: Some(kind_of(t).to_owned()),
            })
            .collect(),
        // The version is gone: the tasks, without their edges.
        None => tasks
            .iter()
            .map(|t| graph::GraphNode {
                id: t.task_id.0.clone(),
                needs: Vec::new(),
                state: Some(t.state.as_str().to_owned()),
                href: href(t.task_id.as_str()),
                label: None,
            })
            .collect(),
    }
}

// ------------------------------------------------------------------ runs

async fn runs_view(
    store: &dyn Store,
    dag_id: &DagId,
    before: Option<RunId>,
    now: Timestamp,
    zone: &format::Zone,
) -> Result<RunsView, UiError> {
    let runs = store
        .list_runs(&RunFilter {
            dag_id: Some(dag_id.clone()),
            before,
            limit: RUNS_PAGE,
            ..RunFilter::default()
        })
        .await?;
    let href = format!("/dags/{}?tab=runs", url_escape(&dag_id.0));
    let older_href = match runs.last() {
        Some(last) if runs.len() == RUNS_PAGE as usize => format!("{href}&before={}", last.id.0),
        _ => String::new(),
    };
    Ok(RunsView {
        runs: runs
            .iter()
            .map(|r| RunLine {
                run_id: r.id.0,
                href: format!("/runs/{}", r.id.0),
                state: r.state.as_str(),
                run_type: r.run_type.as_str(),
                logical_date: zone.ts(r.logical_date),
                started: zone.ts_opt(r.started_at),
                ended: zone.ts_opt(r.ended_at),
                duration: format::span(r.started_at, r.ended_at, now),
                conf: if r.conf.is_empty() {
                    String::new()
                } else {
                    serde_json::to_string(&crate::secrets::mask_conf(&r.conf)).unwrap_or_default()
                },
            })
            .collect(),
        newer_href: if before.is_some() {
            href
        } else {
            String::new()
        },
        older_href,
    })
}

// ------------------------------------------------------------------ source

async fn source_view(
    store: &dyn Store,
    dag_id: &DagId,
    current_hash: &str,
    (version, against): (Option<String>, Option<String>),
    role: Role,
    zone: &format::Zone,
) -> Result<SourceView, UiError> {
    let hash = version.unwrap_or_else(|| current_hash.to_owned());
    let v = super::version(store, dag_id, &hash)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("{dag_id} has no version {hash:?}")))?;
    let versions = store.list_versions(dag_id).await?;
    let href = format!("/dags/{}?tab=source", url_escape(&dag_id.0));
    let shown = format!("{href}&version={}", url_escape(&v.version_hash));
    let diff = match against {
        Some(against) => Some(
            super::dag_versions::diff_view(store, dag_id, &v.version_hash, &against, role).await?,
        ),
        None => None,
    };
    let source_words = |origin: Option<&gale_store::Origin>, file: &str| {
        crate::api::dags::OriginOut::of(origin, crate::api::dags::owner_of_file(file)).words()
    };
    Ok(SourceView {
        file: v.file.clone(),
        short: format::short_hash(&v.version_hash).to_owned(),
        current: v.version_hash == current_hash,
        source: source_words(v.origin.as_ref(), &v.file),
        // Secret literals masked for all but admins.
        lines: crate::secrets::source_for(&v.source, &v.spec, role)
            .lines()
            .map(str::to_owned)
            .collect(),
        more_versions: versions.len().saturating_sub(VERSIONS_SHOWN),
        versions: versions
            .iter()
            .take(VERSIONS_SHOWN)
            .map(|x| VersionLine {
                short: format::short_hash(&x.version_hash).to_owned(),
                href: format!("{href}&version={}", url_escape(&x.version_hash)),
                compare_href: format!("{shown}&against={}", url_escape(&x.version_hash)),
                created: zone.ts(x.created_at),
                source: source_words(x.origin.as_ref(), &x.file),
                current: x.version_hash == current_hash,
                selected: x.version_hash == v.version_hash,
            })
            .collect(),
        previous_href: format!("{shown}&against={}", crate::versions::PREVIOUS),
        last_success_href: format!("{shown}&against={}", crate::versions::LAST_SUCCESS),
        diff,
    })
}

// ------------------------------------------------------------------ backfill

async fn backfills(
    store: &dyn Store,
    dag_id: &DagId,
    zone: &format::Zone,
) -> Result<Vec<BackfillLine>, UiError> {
    Ok(store
        .list_backfills(Some(dag_id), BACKFILLS_SHOWN)
        .await?
        .iter()
        .map(|b| {
            let total: u32 = b.runs.values().sum();
            let done: u32 = gale_model::RunState::ALL
                .iter()
                .filter(|s| s.is_terminal())
                .filter_map(|s| b.runs.get(s.as_str()))
                .sum();
            BackfillLine {
                id: b.id,
                from: zone.ts(b.from_date),
                to: zone.ts(b.to_date),
                by: b.created_by.clone().unwrap_or_default(),
                created: zone.ts(b.created_at),
                done,
                total,
                percent: (done * 100).checked_div(total).unwrap_or(0),
                states: b.runs.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            }
        })
        .collect())
}

#[derive(Deserialize)]
pub struct BackfillForm {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

pub async fn backfill(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(dag_id): Path<String>,
    Form(form): Form<BackfillForm>,
) -> Response {
    let res = async {
        let dag_id = dag_id_of(dag_id)?;
        let (from, to) = (form.from.trim(), form.to.trim());
        let attempt = async {
            if from.is_empty() || to.is_empty() {
                return Err(ActionError::Refused(
                    "give both dates, e.g. 2026-01-01 and 2026-01-07".to_owned(),
                ));
            }
            gale_actions::backfill(&*s.store, &ctx.actor(), &dag_id, from, to)
                .await
                .map_err(ActionError::from)
        };
        match attempt.await {
            Ok(b) => {
                if let Some(n) = &s.notifier {
                    n.scheduler.notify_one();
                }
                let existing = if b.existing > 0 {
                    format!(" ({} slots already had a run)", b.existing)
                } else {
                    String::new()
                };
                Ok(ctx.redirect(
                    &format!("/dags/{}?tab=backfill", url_escape(&dag_id.0)),
                    Flash::ok(format!(
                        "backfill {} created {} runs{existing}",
                        b.id,
                        b.created.len()
                    )),
                ))
            }
            Err(ActionError::Page(e)) => Err(e),
            Err(ActionError::Refused(msg)) => {
                let tab = Tab::Backfill(Some((from.to_owned(), to.to_owned(), msg)));
                render(&s, &ctx, &dag_id, tab, StatusCode::BAD_REQUEST).await
            }
        }
    }
    .await;
    ctx.respond(res)
}
