//! The DAG list (the home page) and the pause toggle. The list is read a
//! page at a time by the store (filters in the query, 100 DAGs a page), and
//! the page's DAGs' last runs in one query (`recent_runs`), never one per DAG.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use gale_store::{DagRow, RunFilter, RunRow, Store};
use jiff::Timestamp;
use serde::Deserialize;

use super::{Ctx, Flash, Layout, UiError, dag_id_of, format, html, is_htmx, is_local_path};
use crate::AppState;
use crate::auth::url_escape;

/// Runs shown per DAG.
const RECENT: u32 = 10;
/// DAGs per page of the list.
const PER_PAGE: u64 = 100;
/// Broken files shown above the list (all of them: `gale dags errors`).
const BROKEN_SHOWN: usize = 50;

/// The pause switch of one DAG (a macro in `macros.html`).
#[derive(Clone, Debug)]
pub(crate) struct Toggle {
    pub dag_id: String,
    pub paused: bool,
    /// The form's action: `/dags/ID/pause` or `/unpause`.
    pub action: String,
    /// Where a browser without JavaScript returns.
    pub back: String,
    pub csrf: String,
    pub enabled: bool,
    /// In the DAG list, htmx swaps the DAG's row in place; elsewhere the
    /// form reloads the page (which then shows every consequence).
    pub in_list: bool,
}

impl Toggle {
    pub fn new(dag_id: &str, paused: bool, back: &str, page: &Layout) -> Toggle {
        let verb = if paused { "unpause" } else { "pause" };
        Toggle {
            dag_id: dag_id.to_owned(),
            paused,
            action: format!("/dags/{}/{verb}", url_escape(dag_id)),
            back: back.to_owned(),
            csrf: page.csrf.clone(),
            enabled: page.operator,
            in_list: false,
        }
    }
}

pub(crate) struct RunDot {
    pub state: &'static str,
    pub href: String,
    pub title: String,
}

impl From<&RunRow> for RunDot {
    fn from(r: &RunRow) -> RunDot {
        RunDot {
            state: r.state.as_str(),
            href: format!("/runs/{}", r.id.0),
            title: format!(
                "run {} · {} · {} · {}",
                r.id.0,
                r.run_type.as_str(),
                r.state.as_str(),
                format::ts(r.logical_date)
            ),
        }
    }
}

/// One DAG's line of the list; `runs` oldest first.
async fn dag_line(
    store: &dyn Store,
    row: &DagRow,
    runs: Vec<RunDot>,
    now: Timestamp,
    back: &str,
    page: &Layout,
) -> Result<DagLine, UiError> {
    let spec = super::version(store, &row.dag_id, &row.version_hash).await?;
    let spec = spec.as_ref().map(|v| &v.spec);
    let sched = spec.and_then(crate::next_run::schedule_of);
    let next = spec
        .filter(|_| !row.paused)
        .and_then(|spec| crate::next_run::next_run(row, spec, now));
    let origin = crate::api::dags::OriginOut::of(row.origin.as_ref(), row.owner_kind());
    Ok(DagLine {
        source: if origin.kind == "folder" {
            String::new()
        } else {
            origin.words()
        },
        dag_id: row.dag_id.0.clone(),
        href: format!("/dags/{}", url_escape(&row.dag_id.0)),
        description: row.description.clone().unwrap_or_default(),
        tags: row.tags.clone(),
        toggle: Toggle {
            in_list: true,
            ..Toggle::new(&row.dag_id.0, row.paused, back, page)
        },
        schedule: match &sched {
            Some(s) => format::schedule(&s.words, &row.timezone),
            None => "manual".to_owned(),
        },
        schedule_expr: row.schedule.clone().unwrap_or_default(),
        next_run: next.map(|t| format::ago(t, now)).unwrap_or_default(),
        next_run_title: next.map(format::ts).unwrap_or_default(),
        runs,
    })
}

pub(crate) struct DagLine {
    pub dag_id: String,
    pub href: String,
    pub description: String,
    pub tags: Vec<String>,
    pub toggle: Toggle,
    pub schedule: String,
    pub schedule_expr: String,
    pub next_run: String,
    pub next_run_title: String,
    pub runs: Vec<RunDot>,
    /// `push by USER` or `git NAME@COMMIT`; empty for a folder's DAG.
    pub source: String,
}

pub(crate) struct Broken {
    pub file: String,
    pub errors: Vec<String>,
    pub when: String,
}

#[derive(Template)]
#[template(path = "dags.html")]
struct DagsPage {
    page: Layout,
    q: String,
    tag: String,
    paused: String,
    all_tags: Vec<String>,
    dags: Vec<DagLine>,
    /// Active DAGs, and paused ones among them.
    total: u64,
    n_paused: u64,
    /// `101–200 of 3000` (empty for an empty page), and the neighbour pages.
    range: String,
    prev_href: String,
    next_href: String,
    /// Files that did not load, and the first of them, shown.
    n_broken: usize,
    broken: Vec<Broken>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    tag: Option<String>,
    /// `yes` or `no`.
    paused: Option<String>,
    /// From 1.
    page: Option<u64>,
}

pub async fn list(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Query(q): Query<ListQuery>,
) -> Response {
    let res = list_page(&s, &ctx, q).await;
    ctx.respond(res)
}

async fn list_page(s: &AppState, ctx: &Ctx, q: ListQuery) -> Result<Response, UiError> {
    let store = &*s.store;
    let page = ctx.layout("dags");
    let now = store.now().await?;
    let needle = q.q.as_deref().map(str::trim).unwrap_or("").to_owned();
    let tag = q.tag.clone().unwrap_or_default();
    let paused = q.paused.clone().unwrap_or_default();
    let number = q.page.unwrap_or(1).max(1);
    let found = store
        .dag_page(&gale_store::DagQuery {
            search: Some(needle.clone()).filter(|n| !n.is_empty()),
            tag: Some(tag.clone()).filter(|t| !t.is_empty()),
            paused: match paused.as_str() {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            },
            include_inactive: false,
            offset: (number - 1).saturating_mul(PER_PAGE),
            limit: PER_PAGE as u32,
        })
        .await?;
    let all_tags = store.dag_tags().await?;
    let ids: Vec<gale_model::DagId> = found.dags.iter().map(|d| d.dag_id.clone()).collect();
    let mut runs_of: HashMap<String, Vec<RunDot>> = HashMap::new();
    for r in store.recent_runs(&ids, RECENT).await? {
        runs_of
            .entry(r.dag_id.0.clone())
            .or_default()
            .push(RunDot::from(&r));
    }

    let back = back_of_list(&q);
    let mut dags = Vec::with_capacity(found.dags.len());
    for row in &found.dags {
        let mut runs = runs_of.remove(&row.dag_id.0).unwrap_or_default();
        runs.reverse();
        dags.push(dag_line(store, row, runs, now, &back, &page).await?);
    }
    let errors = store.list_import_errors().await?;
    let n_broken = errors.len();
    let broken = errors
        .into_iter()
        .take(BROKEN_SHOWN)
        .map(|e| Broken {
            file: e.file,
            // The file heads its errors: each says only where in it.
            errors: e
                .errors
                .iter()
                .map(|d| format!("line {}, column {}: {}", d.line, d.column, d.message))
                .collect(),
            when: format::ago(e.updated_at, now),
        })
        .collect();
    let first = (number - 1).saturating_mul(PER_PAGE);
    let shown_to = first + dags.len() as u64;
    let page_href = |n: u64| {
        let base = back_of_list(&q);
        let sep = if base.contains('?') { '&' } else { '?' };
        if n <= 1 {
            base
        } else {
            format!("{base}{sep}page={n}")
        }
    };
    let tmpl = DagsPage {
        n_paused: found.paused,
        total: found.active,
        range: if dags.is_empty() {
            String::new()
        } else {
            format!("{}–{} of {}", first + 1, shown_to, found.matched)
        },
        prev_href: if number > 1 {
            page_href(number - 1)
        } else {
            String::new()
        },
        next_href: if shown_to < found.matched {
            page_href(number + 1)
        } else {
            String::new()
        },
        page,
        q: q.q.unwrap_or_default(),
        tag,
        paused,
        all_tags,
        dags,
        n_broken,
        broken,
    };
    Ok(ctx.page(StatusCode::OK, &tmpl))
}

/// The list's own URL with its filters, for the toggle to come back to.
fn back_of_list(q: &ListQuery) -> String {
    let mut parts = Vec::new();
    for (k, v) in [("q", &q.q), ("tag", &q.tag), ("paused", &q.paused)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", url_escape(v)));
        }
    }
    if parts.is_empty() {
        "/".to_owned()
    } else {
        format!("/?{}", parts.join("&"))
    }
}

#[derive(Deserialize)]
pub struct ToggleForm {
    back: Option<String>,
}

/// A DAG's row of the list, for htmx to swap in after its switch was used.
#[derive(Template)]
#[template(path = "dag_row.html")]
struct RowFragment {
    d: DagLine,
}

pub async fn pause(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(dag_id): Path<String>,
    Form(form): Form<ToggleForm>,
) -> Response {
    set_paused(&s, ctx, &headers, dag_id, form, true).await
}

pub async fn unpause(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(dag_id): Path<String>,
    Form(form): Form<ToggleForm>,
) -> Response {
    set_paused(&s, ctx, &headers, dag_id, form, false).await
}

/// Pauses or unpauses; an htmx request (the DAG list's switch) gets the DAG's
/// new row, a plain form a redirect back with a flash.
async fn set_paused(
    s: &AppState,
    ctx: Ctx,
    headers: &HeaderMap,
    dag_id: String,
    form: ToggleForm,
    paused: bool,
) -> Response {
    let dag_id = match dag_id_of(dag_id) {
        Ok(d) => d,
        Err(e) => return ctx.error(e),
    };
    match gale_actions::set_paused(&*s.store, &ctx.actor(), &dag_id, paused).await {
        Ok(()) => {}
        Err(gale_actions::Error::Store(e)) => return ctx.error(e.into()),
        Err(e) => return ctx.error(UiError::NotFound(e.to_string())),
    }
    if let Some(n) = &s.notifier {
        n.scheduler.notify_one();
    }
    let back = form
        .back
        .filter(|b| is_local_path(b))
        .unwrap_or_else(|| format!("/dags/{}", url_escape(&dag_id.0)));
    if is_htmx(headers) {
        let res = async {
            let store = &*s.store;
            let row = store
                .get_dag(&dag_id)
                .await?
                .ok_or_else(|| UiError::NotFound(format!("no DAG {dag_id}")))?;
            let runs = store
                .list_runs(&RunFilter {
                    dag_id: Some(dag_id.clone()),
                    limit: RECENT,
                    ..RunFilter::default()
                })
                .await?;
            let runs = runs.iter().rev().map(RunDot::from).collect();
            let now = store.now().await?;
            let d = dag_line(store, &row, runs, now, &back, &ctx.layout("dags")).await?;
            Ok(html(&RowFragment { d }))
        }
        .await;
        return ctx.respond(res);
    }
    let word = if paused { "paused" } else { "unpaused" };
    ctx.redirect(&back, Flash::ok(format!("{dag_id} {word}")))
}
