//! The audit log page (admins only; the auth middleware refuses everyone
//! else): the newest entries first, 100 a page, filtered by actor and action.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use gale_store::{AuditAction, AuditOutcome, AuditRow};

use super::{Ctx, Layout, UiError, format};
use crate::AppState;
use crate::api::audit::{AuditQuery, filter_of};
use crate::auth::url_escape;

/// Entries on one page.
const PAGE: u32 = 100;

pub(crate) struct AuditLine {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub origin: String,
    pub action: &'static str,
    /// A page about the target, when there is one (a DAG or a run).
    pub target_href: String,
    pub target: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: Layout,
    lines: Vec<AuditLine>,
    actor: String,
    action: String,
    actions: Vec<&'static str>,
    newer_href: String,
    older_href: String,
}

/// Where a target's page is: `dag/<id>` and `run/<id>[/task/<task>]`.
fn target_href(target: &str) -> String {
    let mut parts = target.splitn(4, '/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("dag"), Some(id), None, None) => format!("/dags/{}", url_escape(id)),
        (Some("run"), Some(id), None, None) => format!("/runs/{}", url_escape(id)),
        (Some("run"), Some(id), Some("task"), Some(task)) => {
            format!("/runs/{}/tasks/{}", url_escape(id), url_escape(task))
        }
        _ => String::new(),
    }
}

fn line(r: &AuditRow) -> AuditLine {
    AuditLine {
        id: r.id,
        at: format::ts(r.at),
        actor: r.actor.clone(),
        origin: r.origin.clone(),
        action: r.action.as_str(),
        target_href: target_href(&r.target),
        target: r.target.clone(),
        ok: r.outcome == AuditOutcome::Success,
        detail: if r.detail.is_empty() {
            String::new()
        } else {
            serde_json::Value::Object(r.detail.clone()).to_string()
        },
    }
}

/// `/audit?…` with these filters and cursor.
fn href(actor: &str, action: &str, before: Option<i64>) -> String {
    let mut q = Vec::new();
    if !actor.is_empty() {
        q.push(format!("actor={}", url_escape(actor)));
    }
    if !action.is_empty() {
        q.push(format!("action={}", url_escape(action)));
    }
    if let Some(b) = before {
        q.push(format!("before={b}"));
    }
    if q.is_empty() {
        "/audit".to_owned()
    } else {
        format!("/audit?{}", q.join("&"))
    }
}

pub async fn page(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Query(mut q): Query<AuditQuery>,
) -> Response {
    // An empty field of the filter form means "any".
    q.actor = q.actor.filter(|a| !a.trim().is_empty());
    q.action = q.action.filter(|a| !a.is_empty());
    q.since = q.since.filter(|a| !a.is_empty());
    q.limit = Some(q.limit.unwrap_or(PAGE));
    let res = async {
        let filter = filter_of(&q).map_err(|e| UiError::BadRequest(e.detail))?;
        let rows = s.store.list_audit(&filter).await?;
        let (actor, action) = (
            q.actor.clone().unwrap_or_default(),
            q.action.clone().unwrap_or_default(),
        );
        let older = (rows.len() == filter.limit as usize)
            .then(|| rows.last().map(|r| r.id))
            .flatten();
        Ok(ctx.page(
            StatusCode::OK,
            &AuditPage {
                page: ctx.layout("audit"),
                lines: rows.iter().map(line).collect(),
                newer_href: if q.before.is_some() {
                    href(&actor, &action, None)
                } else {
                    String::new()
                },
                older_href: older.map_or_else(String::new, |b| href(&actor, &action, Some(b))),
                actor,
                action,
                actions: AuditAction::ALL.map(AuditAction::as_str).to_vec(),
            },
        ))
    }
    .await;
    ctx.respond(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_link_to_their_pages() {
        assert_eq!(target_href("dag/etl"), "/dags/etl");
        assert_eq!(target_href("run/7"), "/runs/7");
        assert_eq!(target_href("run/7/task/a b"), "/runs/7/tasks/a%20b");
        assert_eq!(target_href("user/ann"), "");
        assert_eq!(target_href(""), "");
    }

    #[test]
    fn pages_keep_their_filters() {
        assert_eq!(href("", "", None), "/audit");
        assert_eq!(
            href("ann", "run.trigger", Some(9)),
            "/audit?actor=ann&action=run.trigger&before=9"
        );
    }
}
