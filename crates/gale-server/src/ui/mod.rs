//! The server-rendered web UI: askama templates (`templates/`), htmx for the
//! parts that refresh themselves, and the embedded assets. Every page reads the
//! store within bounded windows (the newest runs of a DAG, one run's tasks, one
//! task's attempts), so a long history never slows a page down.
//!
//! Pages never show a raw database error (a store failure is a 503 page) and
//! never show conf values unmasked (`secrets::mask_conf`). Forms are plain POSTs
//! with the session's CSRF token that answer with a 303 and a flash message, so
//! they work without JavaScript; htmx only makes some of them quicker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use askama::Template;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use gale_model::DagId;
use gale_store::{DagVersion, Store};

use crate::AppState;
use crate::auth::{self, Identity, Role, Via};

mod admin;
mod alerts;
mod assets;
mod audit;
mod cluster;
mod connections;
mod dag;
mod dag_history;
mod dag_trigger;
mod dag_versions;
mod dags;
mod format;
pub mod gantt;
pub mod graph;
mod grid;
mod history;
mod login;
mod params_form;
mod run;
mod variables;

#[cfg(test)]
mod tests;

/// The UI's pages and assets.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/", get(dags::list))
        .route("/dags/{dag_id}", get(dag::page))
        .route("/dags/{dag_id}/grid", get(dag::grid_fragment))
        .route("/dags/{dag_id}/pause", post(dags::pause))
        .route("/dags/{dag_id}/unpause", post(dags::unpause))
        .route("/dags/{dag_id}/trigger", post(dag_trigger::trigger))
        .route("/dags/{dag_id}/backfill", post(dag::backfill))
        .route("/runs/{run_id}", get(run::run_page))
        .route("/runs/{run_id}/cancel", post(run::cancel))
        .route("/runs/{run_id}/mark", post(run::mark))
        .route("/runs/{run_id}/clear", post(run::clear))
        .route("/runs/{run_id}/tasks/{task_id}", get(run::task_page))
        .route(
            "/runs/{run_id}/tasks/{task_id}/clear",
            post(run::clear_task),
        )
        .route("/runs/{run_id}/tasks/{task_id}/mark", post(run::mark_task))
        .route("/cluster", get(cluster::page))
        .route("/cluster/live", get(cluster::fragment))
        .route("/audit", get(audit::page))
        .route("/variables", get(variables::list).post(variables::add))
        .route(
            "/variables/{name}",
            get(variables::page).post(variables::save),
        )
        .route("/variables/{name}/delete", post(variables::delete))
        .route(
            "/connections",
            get(connections::list).post(connections::add),
        )
        .route(
            "/connections/{name}",
            get(connections::page).post(connections::save),
        )
        .route("/connections/{name}/delete", post(connections::delete))
        .route("/alerts", get(alerts::page))
        .route("/alerts/channels/{name}/test", post(alerts::test))
        .route("/alerts/channels/{name}/delete", post(alerts::delete))
        .route("/tz", get(set_tz))
        .route("/users", get(admin::users))
        .route("/users/{name}/role", post(admin::set_role))
        .route("/users/{name}/delete", post(admin::delete_user))
        .route("/tokens", get(admin::tokens))
        .route("/tokens/{id}/revoke", post(admin::revoke_token))
        .route("/pools", get(admin::pools).post(admin::create_pool))
        .route("/pools/{name}/slots", post(admin::set_slots))
        .route("/pools/{name}/delete", post(admin::delete_pool))
        .route("/assets/{*file}", get(assets::asset))
        .route("/favicon.svg", get(assets::favicon))
}

// ------------------------------------------------------------------ flash

/// The cookie that carries a flash message across a redirect.
const FLASH_COOKIE: &str = "gale_flash";

/// A one-time message shown at the top of the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Flash {
    /// `ok` or `error` (a CSS class).
    pub kind: &'static str,
    pub text: String,
}

impl Flash {
    pub fn ok(text: impl Into<String>) -> Flash {
        Flash {
            kind: "ok",
            text: text.into(),
        }
    }
    pub fn error(text: impl Into<String>) -> Flash {
        Flash {
            kind: "error",
            text: text.into(),
        }
    }

    /// The cookie value: `ok:` or `error:` and the percent-encoded text.
    fn encode(&self) -> String {
        let text: String = self.text.chars().take(500).collect();
        format!("{}:{}", self.kind, auth::url_escape(&text))
    }

    fn decode(value: &str) -> Option<Flash> {
        let (kind, text) = value.split_once(':')?;
        let kind = match kind {
            "ok" => "ok",
            "error" => "error",
            _ => return None,
        };
        let text = percent_decode(text);
        (!text.is_empty()).then_some(Flash { kind, text })
    }
}

fn flash_cookie(flash: Option<&Flash>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = match flash {
        Some(f) => format!(
            "{FLASH_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=60{secure}",
            f.encode()
        ),
        None => format!("{FLASH_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A 303 to `to`, carrying `flash` to the next page.
pub(crate) fn see_other(to: &str, flash: Option<Flash>, secure: bool) -> Response {
    let mut res = Redirect::to(to).into_response();
    if let Some(f) = flash {
        res.headers_mut()
            .append(header::SET_COOKIE, flash_cookie(Some(&f), secure));
    }
    res
}

/// Whether `next` is a path on this server (`/...`, but not `//host` or
/// `/\host`, which browsers treat as another host), so a login cannot be
/// turned into a redirect elsewhere.
pub(crate) fn is_local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control())
}

// ------------------------------------------------------------------ time zone

#[derive(serde::Deserialize)]
pub struct TzQuery {
    #[serde(default)]
    to: String,
    #[serde(default)]
    next: String,
}

/// `GET /tz?to=utc|dag&next=/path`: remembers the reader's choice of zone in
/// the `gale_tz` cookie and goes back to `next` (a local path only). A plain
/// link, so it works without JavaScript; it changes nothing but how this
/// browser shows times, so it needs no CSRF token and is not audited.
async fn set_tz(ctx: Ctx, axum::extract::Query(q): axum::extract::Query<TzQuery>) -> Response {
    let Some(choice) = format::TzChoice::parse(&q.to) else {
        return ctx.error(UiError::BadRequest(format!(
            "unknown time zone choice {:?}: use to=dag (each DAG's own zone) or to=utc",
            q.to.chars().take(40).collect::<String>()
        )));
    };
    let to = if is_local_path(&q.next) {
        q.next.as_str()
    } else {
        "/"
    };
    let mut res = Redirect::to(to).into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, tz_cookie(choice, ctx.secure));
    res
}

/// The `gale_tz` cookie for a choice; kept for a year.
fn tz_cookie(choice: format::TzChoice, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{}={}; Path=/; SameSite=Lax; Max-Age=31536000{secure}",
        format::TZ_COOKIE,
        choice.as_str()
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

// ------------------------------------------------------------------ context

/// Who is looking, and the flash message waiting for them: what every page's
/// frame needs. Extracted from the request the auth middleware let in.
pub(crate) struct Ctx {
    pub identity: Identity,
    pub flash: Option<Flash>,
    pub secure: bool,
    /// The peer's address (`crate::audit::peer_of`).
    pub peer: String,
    /// The zone DAG pages write times in (the `gale_tz` cookie).
    pub tz: format::TzChoice,
    /// The path and query of this page, for the time-zone links to come back to.
    pub here: String,
}

impl FromRequestParts<Arc<AppState>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(identity) = parts.extensions.get::<Identity>().cloned() else {
            return Err(Redirect::to("/login").into_response());
        };
        let flash = auth::cookie(&parts.headers, FLASH_COOKIE).and_then(Flash::decode);
        let tz = format::TzChoice::of_cookie(auth::cookie(&parts.headers, format::TZ_COOKIE));
        let here = page_path(parts);
        Ok(Ctx {
            identity,
            flash,
            secure: state.secure_cookies,
            peer: crate::audit::peer_of(&parts.extensions),
            tz,
            here,
        })
    }
}

/// The path a page's time-zone links come back to: the page itself when it
/// was fetched, or, for a page drawn as the answer to a form (a POST, which a
/// link cannot repeat), the local page the form was sent from, else `/`.
fn page_path(parts: &Parts) -> String {
    let own = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    if parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD {
        return own.to_owned();
    }
    parts
        .headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<axum::http::Uri>().ok())
        .and_then(|u| u.path_and_query().map(|p| p.as_str().to_owned()))
        .filter(|p| is_local_path(p))
        .unwrap_or_else(|| "/".to_owned())
}

/// What the frame of every page shows: the nav with the user, the CSRF token,
/// the flash message.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub user: String,
    pub role: &'static str,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// Which nav entry is current: `dags`, `cluster`, `variables`,
    /// `connections`, `alerts`, `audit`, `users`, `tokens` or `pools`.
    pub nav: &'static str,
    /// Whether this user may change things (trigger, clear, pause, mark).
    pub operator: bool,
    /// Whether this user may read the audit log and change variables and
    /// connections (admins).
    pub admin: bool,
    /// A session that can log out (not an API token, not `--no-auth`).
    pub logout: bool,
    /// Appended to asset URLs, so they can be cached for good.
    pub asset_v: &'static str,
    /// The reader's choice of zone: `dag` or `utc`.
    pub tz: &'static str,
    /// This page's path and query, percent-encoded for a `next=` parameter.
    pub here: String,
    /// The zone this page's times are in (`UTC`, `Europe/Berlin`).
    pub zone: String,
}

impl Ctx {
    /// Who is acting, and from where, for the audit log.
    pub fn actor(&self) -> gale_actions::Actor {
        crate::audit::actor(&self.identity, &self.peer)
    }

    pub fn layout(&self, nav: &'static str) -> Layout {
        Layout {
            user: self.identity.user.clone(),
            role: self.identity.role.as_str(),
            csrf: self.identity.csrf.clone().unwrap_or_default(),
            flash: self.flash.clone(),
            nav,
            operator: self.identity.can(Role::Operator),
            admin: self.identity.can(Role::Admin),
            logout: self.identity.via == Via::Session,
            asset_v: assets::version(),
            tz: self.tz.as_str(),
            here: auth::url_escape(&self.here),
            zone: "UTC".to_owned(),
        }
    }

    /// The zone of a page about the DAG whose time zone is `dag_tz`: that
    /// zone, or UTC if the reader chose UTC.
    pub fn zone_for(&self, dag_tz: &str) -> format::Zone {
        self.tz.zone_for(dag_tz)
    }

    /// [`Ctx::layout`] of a page whose times are in `zone`.
    pub fn layout_in(&self, nav: &'static str, zone: &format::Zone) -> Layout {
        Layout {
            zone: zone.name().to_owned(),
            ..self.layout(nav)
        }
    }

    /// A full page: the rendered template, and the flash it showed cleared.
    pub fn page(&self, status: StatusCode, tmpl: &impl Template) -> Response {
        let mut res = (status, html(tmpl)).into_response();
        if self.flash.is_some() {
            res.headers_mut()
                .append(header::SET_COOKIE, flash_cookie(None, self.secure));
        }
        res
    }

    /// The page for an error.
    pub fn error(&self, e: UiError) -> Response {
        let (status, title, detail) = match e {
            UiError::NotFound(d) => (StatusCode::NOT_FOUND, "Not found", d),
            UiError::BadRequest(d) => (StatusCode::BAD_REQUEST, "Bad request", d),
            UiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable",
                "Gale could not read from its database just now. This page will work again \
                 once the database answers: try again in a few seconds (the server log has the \
                 details)."
                    .to_owned(),
            ),
        };
        let tmpl = ErrorPage {
            page: self.layout(""),
            status: status.as_u16(),
            title,
            detail,
        };
        self.page(status, &tmpl)
    }

    /// `res`, or the page for its error.
    pub fn respond(&self, res: Result<Response, UiError>) -> Response {
        res.unwrap_or_else(|e| self.error(e))
    }

    pub fn redirect(&self, to: &str, flash: Flash) -> Response {
        see_other(to, Some(flash), self.secure)
    }
}

/// The page for a path nothing serves (the API's paths get problem+json).
pub(crate) async fn not_found_page(
    state: &Arc<AppState>,
    req: axum::extract::Request,
    detail: String,
) -> Response {
    let (mut parts, _) = req.into_parts();
    match Ctx::from_request_parts(&mut parts, state).await.ok() {
        Some(ctx) => ctx.error(UiError::NotFound(detail)),
        None => crate::ApiError::not_found(detail).into_response(),
    }
}

/// Renders a template, or (a bug in a template) a plain 500.
pub(crate) fn html(tmpl: &impl Template) -> Response {
    match tmpl.render() {
        Ok(s) => Html(s).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: Layout,
    status: u16,
    title: &'static str,
    detail: String,
}

// ------------------------------------------------------------------ errors

/// Why a page could not be shown.
#[derive(Debug)]
pub(crate) enum UiError {
    /// A DAG, run, task or version that does not exist (404).
    NotFound(String),
    /// A malformed id or parameter (400).
    BadRequest(String),
    /// The store failed; its text went to the log only (503).
    Unavailable,
}

impl From<gale_store::Error> for UiError {
    fn from(e: gale_store::Error) -> UiError {
        match e {
            gale_store::Error::Invalid(msg) => UiError::BadRequest(msg),
            gale_store::Error::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database unavailable while serving a page");
                UiError::Unavailable
            }
            gale_store::Error::Full(msg) => {
                tracing::warn!(error = %msg, "the database's disk is full while serving a page");
                UiError::Unavailable
            }
            gale_store::Error::Database(msg) => {
                tracing::error!(error = %msg, "database error while serving a page");
                UiError::Unavailable
            }
        }
    }
}

/// What an action's error means for the person who asked.
pub(crate) enum ActionError {
    /// Show the page for it (not found, store failure).
    Page(UiError),
    /// Tell them on the form or in a flash (bad input, conflicts).
    Refused(String),
}

/// An action's error by the status the API gives it (`crate::error`, the one
/// table): what the API answers 404 shows the not-found page, a store failure
/// the page for it, and every other refusal (conflicts, bad input) is told on
/// the form or in a flash.
impl From<gale_actions::Error> for ActionError {
    fn from(e: gale_actions::Error) -> ActionError {
        match e {
            gale_actions::Error::Store(gale_store::Error::Invalid(msg)) => {
                ActionError::Refused(msg)
            }
            gale_actions::Error::Store(store) => ActionError::Page(store.into()),
            other => {
                let answer = crate::ApiError::from(other);
                if answer.status == StatusCode::NOT_FOUND {
                    ActionError::Page(UiError::NotFound(answer.detail))
                } else {
                    ActionError::Refused(answer.detail)
                }
            }
        }
    }
}

impl ActionError {
    /// An operator's mark or cancel: its store errors, a refusal by the store
    /// included, show the page for them (the forms never told them in a flash).
    pub(crate) fn of_mark(e: gale_actions::Error) -> ActionError {
        match e {
            gale_actions::Error::Store(store) => ActionError::Page(store.into()),
            other => other.into(),
        }
    }
}

impl From<gale_store::Error> for ActionError {
    fn from(e: gale_store::Error) -> ActionError {
        ActionError::Page(e.into())
    }
}

impl From<UiError> for ActionError {
    fn from(e: UiError) -> ActionError {
        ActionError::Page(e)
    }
}

// ------------------------------------------------------------------ helpers

/// Whether an htmx request asked (it wants a fragment, not a redirect).
pub(crate) fn is_htmx(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

/// A run id from the path, or a 404 for anything else.
pub(crate) fn run_id_of(s: &str) -> Result<gale_model::RunId, UiError> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(gale_model::RunId)
        .ok_or_else(|| UiError::NotFound(format!("no run {s:?}")))
}

/// A DAG id from the path, or a 404 for one that cannot exist.
pub(crate) fn dag_id_of(s: String) -> Result<DagId, UiError> {
    if gale_model::ids::is_valid_id(&s) {
        Ok(DagId(s))
    } else {
        Err(UiError::NotFound(format!("no DAG {s:?}")))
    }
}

/// Parsed DAG versions by (DAG, content hash). A version never changes, so
/// this cache is never stale; it only saves reading and parsing the spec on
/// every page (the DAG list needs one per DAG). Bounded: emptied when full.
static VERSIONS: Mutex<Option<VersionCache>> = Mutex::new(None);
type VersionCache = HashMap<(DagId, String), Arc<DagVersion>>;
const VERSIONS_MAX: usize = 1024;

/// A DAG version, from the cache or the store.
pub(crate) async fn version(
    store: &dyn Store,
    dag_id: &DagId,
    hash: &str,
) -> Result<Option<Arc<DagVersion>>, gale_store::Error> {
    let key = (dag_id.clone(), hash.to_owned());
    if let Some(v) = VERSIONS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&key))
    {
        return Ok(Some(v.clone()));
    }
    let Some(v) = store.get_version(dag_id, hash).await? else {
        return Ok(None);
    };
    let v = Arc::new(v);
    let mut guard = VERSIONS.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if map.len() >= VERSIONS_MAX {
        map.clear();
    }
    map.insert(key, v.clone());
    Ok(Some(v))
}

/// A DAG's row and current version; 404 when there is no such DAG.
pub(crate) async fn current_dag(
    store: &dyn Store,
    dag_id: &DagId,
) -> Result<(gale_store::DagRow, Arc<DagVersion>), UiError> {
    let row = store
        .get_dag(dag_id)
        .await?
        .ok_or_else(|| UiError::NotFound(format!("no DAG {dag_id}")))?;
    let v = version(store, dag_id, &row.version_hash)
        .await?
        .ok_or_else(|| {
            tracing::error!(%dag_id, hash = %row.version_hash, "current DAG version missing");
            UiError::Unavailable
        })?;
    Ok((row, v))
}

/// Pretty JSON of a conf with secret-looking values masked.
pub(crate) fn masked_json(conf: &serde_json::Map<String, serde_json::Value>) -> String {
    if conf.is_empty() {
        return String::new();
    }
    serde_json::to_string_pretty(&crate::secrets::mask_conf(conf)).unwrap_or_default()
}
