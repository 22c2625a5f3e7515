//! The REST API under `/api/v1`: JSON in and out, errors as problem+json, and
//! an OpenAPI document generated from these handlers (`/api/v1/openapi.json`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use gale_model::{DagId, RunId, RunState, TaskState};
use gale_store::{RunFilter, RunMark, RunType, Store};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::actions::{self, ClearWhat, Conflict, NotFound};
use crate::auth::Identity;
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};

type Shared = State<Arc<AppState>>;
type Caller = axum::Extension<Identity>;

#[derive(OpenApi)]
#[openapi(
    info(title = "Gale API", description = "Workflows (DAGs of tasks): list, trigger, follow, retry. Authenticate with `Authorization: Bearer <token>` (`gale tokens create`)."),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "dags"), (name = "runs"), (name = "tasks"), (name = "backfills"), (name = "cluster"), (name = "health"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every API route, with its OpenAPI description.
pub fn router() -> OpenApiRouter<Arc<AppState>> {
    let mut router = routes();
    describe_problems(router.get_openapi_mut());
    router
}

fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(version))
        .routes(routes!(list_dags))
        .routes(routes!(get_dag, patch_dag))
        .routes(routes!(dag_source))
        .routes(routes!(dag_versions))
        .routes(routes!(import_errors))
        .routes(routes!(list_runs))
        .routes(routes!(trigger_run))
        .routes(routes!(get_run))
        .routes(routes!(cancel_run))
        .routes(routes!(mark_run))
        .routes(routes!(clear_run))
        .routes(routes!(list_tasks))
        .routes(routes!(get_task))
        .routes(routes!(task_logs))
        .routes(routes!(clear_task))
        .routes(routes!(mark_task))
        .routes(routes!(create_backfill))
        .routes(routes!(list_backfills))
        .routes(routes!(get_backfill))
        .routes(routes!(dag_slots))
        .routes(routes!(list_nodes))
        .routes(routes!(list_pools))
}

/// Makes the document say what every operation answers besides its own
/// responses, as the extractors and the authentication middleware do: errors
/// are `application/problem+json` (not the `application/json` utoipa
/// assumes for `body = Problem`); 401 without a valid credential and 403
/// without the role, since every operation needs one; 400 for a malformed
/// parameter or body; 413 and 415 for a body too large or not JSON.
fn describe_problems(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let takes_body = op.request_body.is_some();
            let takes_parameters = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let responses = &mut op.responses.responses;
            for (status, response) in responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.starts_with(['4', '5']), response) {
                    response.content = std::mem::take(&mut response.content)
                        .into_iter()
                        .map(|(kind, content)| match kind.as_str() {
                            "application/json" => (PROBLEM_JSON.to_owned(), content),
                            _ => (kind, content),
                        })
                        .collect();
                }
            }
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| RefOr::T(problem(description)));
            };
            if takes_body || takes_parameters {
                add("400", "A malformed parameter or body");
            }
            add(
                "401",
                "No credential, or an unknown, revoked or expired one",
            );
            add("403", "The caller's role may not do this");
            if takes_body {
                add("413", "The body is larger than 1 MiB");
                add("415", "The body is not sent as `application/json`");
            }
        }
    }
}

const PROBLEM_JSON: &str = "application/problem+json";

impl From<anyhow::Error> for ErrorKind {
    fn from(e: anyhow::Error) -> ErrorKind {
        ErrorKind(e)
    }
}

/// An action's error, mapped to its status: not found 404, conflict 409,
/// store errors by kind, anything else 400.
pub struct ErrorKind(anyhow::Error);

impl From<ErrorKind> for ApiError {
    fn from(ErrorKind(e): ErrorKind) -> ApiError {
        if let Some(n) = e.downcast_ref::<NotFound>() {
            return ApiError::not_found(n.0.clone());
        }
        if let Some(c) = e.downcast_ref::<Conflict>() {
            return ApiError::conflict(c.0.clone());
        }
        ApiError::from(e)
    }
}

fn action_err(e: anyhow::Error) -> ApiError {
    ErrorKind(e).into()
}

// ------------------------------------------------------------------ types

/// Keys of `conf` whose values are never shown (API, pages, logs).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "credential",
        "auth",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// The values under secret-looking keys of a run's conf (at any depth), to be
/// masked wherever they appear: a rendered command, a log line.
#[derive(Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    pub fn of(conf: &serde_json::Map<String, serde_json::Value>) -> Secrets {
        fn walk(map: &serde_json::Map<String, serde_json::Value>, out: &mut Vec<String>) {
            for (k, v) in map {
                match v {
                    serde_json::Value::Object(inner) => walk(inner, out),
                    serde_json::Value::String(text) if is_secret_key(k) => out.push(text.clone()),
                    serde_json::Value::Number(n) if is_secret_key(k) => out.push(n.to_string()),
                    _ => {}
                }
            }
        }
        let mut found = Vec::new();
        walk(conf, &mut found);
        // Short values would mask ordinary text; longest first, so a secret
        // that contains another is masked whole.
        found.retain(|v| v.chars().count() >= 4);
        found.sort_by_key(|v| std::cmp::Reverse(v.len()));
        found.dedup();
        Secrets(found)
    }

    /// `text` with every secret value replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

/// `conf` with secret-looking values replaced by `***`.
pub fn mask_conf(
    conf: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    conf.iter()
        .map(|(k, v)| {
            let v = match v {
                _ if is_secret_key(k) => serde_json::Value::String("***".into()),
                serde_json::Value::Object(inner) => serde_json::Value::Object(mask_conf(inner)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

#[derive(Serialize, ToSchema)]
pub struct Version {
    pub version: String,
    pub schema_version: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Dag {
    pub dag_id: String,
    pub file: String,
    pub version_hash: String,
    pub paused: bool,
    /// False once its file left the DAG folder.
    pub active: bool,
    pub schedule: Option<String>,
    /// The schedule in words.
    pub schedule_words: Option<String>,
    pub timezone: String,
    pub max_active_runs: u32,
    pub description: Option<String>,
    pub tags: Vec<String>,
    /// When the next scheduled run is due (its interval's end).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

fn dag_out(row: &gale_store::DagRow, spec: Option<&gale_model::Dag>, now: Timestamp) -> Dag {
    let sched = spec.and_then(|s| s.parsed_schedule());
    Dag {
        dag_id: row.dag_id.0.clone(),
        file: row.file.clone(),
        version_hash: row.version_hash.clone(),
        paused: row.paused,
        active: row.active,
        schedule: row.schedule.clone(),
        schedule_words: sched.map(|s| s.describe()),
        timezone: row.timezone.clone(),
        max_active_runs: row.max_active_runs,
        description: row.description.clone(),
        tags: row.tags.clone(),
        next_run: spec
            .filter(|_| row.active && !row.paused)
            .and_then(|s| actions::next_run(row, s, now)),
        updated_at: row.updated_at,
    }
}

#[derive(Serialize, ToSchema)]
pub struct DagList {
    pub dags: Vec<Dag>,
    /// How many DAGs match the filters (before paging).
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DagQuery {
    /// Substring of the DAG id or description (case-insensitive).
    pub q: Option<String>,
    /// Only DAGs with this tag.
    pub tag: Option<String>,
    pub paused: Option<bool>,
    /// Include DAGs whose file is gone (default false).
    pub include_inactive: Option<bool>,
    /// 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct TaskSpec {
    pub task_id: String,
    /// `shell` or `http`.
    pub kind: String,
    pub needs: Vec<String>,
    pub trigger_rule: String,
    pub retries: u32,
    pub queue: String,
    pub pool: Option<String>,
    pub priority: i32,
}

#[derive(Serialize, ToSchema)]
pub struct DagDetail {
    #[serde(flatten)]
    pub dag: Dag,
    pub tasks: Vec<TaskSpec>,
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    pub max_active_tasks: Option<u32>,
    pub catchup: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DagPatch {
    /// Pause (stop creating runs) or unpause.
    pub paused: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DagSource {
    pub dag_id: String,
    pub version_hash: String,
    pub file: String,
    pub source: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SourceQuery {
    /// A version hash (default: the current version).
    pub version: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DagVersionInfo {
    pub version_hash: String,
    pub file: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct ImportErrorOut {
    pub file: String,
    pub dag_id: Option<String>,
    /// `file:line:column: message`, one per error.
    pub errors: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct Run {
    pub run_id: i64,
    pub dag_id: String,
    pub run_key: String,
    /// `scheduled`, `manual` or `backfill`.
    pub run_type: String,
    pub version_hash: String,
    /// `queued`, `running`, `success` or `failed`.
    pub state: String,
    #[schema(value_type = String, format = DateTime)]
    pub logical_date: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub interval_start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub interval_end: Timestamp,
    /// With secret-looking values (password, token, key, …) shown as `***`.
    #[schema(value_type = Object)]
    pub conf: serde_json::Map<String, serde_json::Value>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
}

impl From<&gale_store::RunRow> for Run {
    fn from(r: &gale_store::RunRow) -> Run {
        Run {
            run_id: r.id.0,
            dag_id: r.dag_id.0.clone(),
            run_key: r.run_key.clone(),
            run_type: r.run_type.as_str().into(),
            version_hash: r.version_hash.clone(),
            state: r.state.as_str().into(),
            logical_date: r.logical_date,
            interval_start: r.interval_start,
            interval_end: r.interval_end,
            conf: mask_conf(&r.conf),
            created_at: r.created_at,
            started_at: r.started_at,
            ended_at: r.ended_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<Run>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    pub dag_id: Option<String>,
    /// `queued`, `running`, `success` or `failed`.
    pub state: Option<String>,
    /// `scheduled`, `manual` or `backfill`.
    pub run_type: Option<String>,
    /// Only runs with a smaller id (the next page).
    pub before: Option<i64>,
    /// 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: Run,
    /// Task instances by state.
    pub task_counts: BTreeMap<String, u32>,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// A JSON object merged over the DAG's params.
    #[schema(value_type = Option<Object>)]
    pub conf: Option<serde_json::Map<String, serde_json::Value>>,
    /// Default: now. `2026-01-01`, `2026-01-01T02:00` (DAG time zone) or RFC 3339.
    pub logical_date: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRequest {
    pub state: MarkAs,
}

/// The state a run or task is marked with.
#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MarkAs {
    Success,
    Failed,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ClearRunRequest {
    /// These tasks (default: every failed and upstream-failed task).
    pub task_ids: Option<Vec<String>>,
    /// With `task_ids`: also every task downstream of them.
    #[serde(default)]
    pub downstream: bool,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ClearTaskRequest {
    /// Also every task downstream of it.
    #[serde(default)]
    pub downstream: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Cleared {
    /// Task ids sent back to the scheduler.
    pub cleared: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TaskInstance {
    pub run_id: i64,
    pub dag_id: String,
    pub task_id: String,
    pub state: String,
    /// The current (or last) attempt; 0 before the first.
    pub try_number: u32,
    pub max_tries: u32,
    pub queue: String,
    pub pool: Option<String>,
    pub worker_id: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub queued_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
    pub outputs: BTreeMap<String, String>,
}

impl From<&gale_store::TaskRow> for TaskInstance {
    fn from(t: &gale_store::TaskRow) -> TaskInstance {
        TaskInstance {
            run_id: t.run_id.0,
            dag_id: t.dag_id.0.clone(),
            task_id: t.task_id.0.clone(),
            state: t.state.as_str().into(),
            try_number: t.try_number,
            max_tries: t.max_tries,
            queue: t.queue.clone(),
            pool: t.pool.clone(),
            worker_id: t.worker_id.clone().map(|w| w.0),
            queued_at: t.queued_at,
            started_at: t.started_at,
            ended_at: t.ended_at,
            outputs: t.outputs.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Attempt {
    pub try_number: u32,
    pub worker_id: String,
    pub host: Option<String>,
    pub pid: Option<i64>,
    /// `running`, `success`, `failed`, `skipped`, `timed_out`, `lost`,
    /// `handed_back`, `cancelled`, `marked_success` or `marked_failed`.
    pub state: String,
    pub exit_code: Option<i32>,
    pub message: Option<String>,
    /// The rendered command.
    pub command: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
}

impl From<&gale_store::AttemptRow> for Attempt {
    fn from(a: &gale_store::AttemptRow) -> Attempt {
        Attempt {
            try_number: a.try_number,
            worker_id: a.worker_id.0.clone(),
            host: a.host.clone(),
            pid: a.pid,
            state: a.state.to_string(),
            exit_code: a.exit_code,
            message: a.message.clone(),
            command: a.command.clone(),
            started_at: a.started_at,
            ended_at: a.ended_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: TaskInstance,
    pub attempts: Vec<Attempt>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// The attempt (default: the latest).
    #[serde(rename = "try")]
    #[param(rename = "try")]
    pub try_number: Option<u32>,
    /// Only lines after this sequence number (from `next_after`).
    pub after: Option<i64>,
    /// 1–10000 lines (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    /// Wait up to 10 s for new lines while the attempt runs.
    pub follow: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct LogLineOut {
    pub seq: i64,
    #[schema(value_type = String, format = DateTime)]
    pub ts: Timestamp,
    /// `stdout`, `stderr` or `system`.
    pub stream: String,
    pub text: String,
}

#[derive(Serialize, ToSchema)]
pub struct LogPage {
    pub try_number: u32,
    pub lines: Vec<LogLineOut>,
    /// Pass as `after` to read on.
    pub next_after: i64,
    /// The attempt has ended: no more lines will come.
    pub finished: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// First logical date (inclusive), e.g. `2026-01-01`.
    pub from: String,
    /// Last logical date (inclusive).
    pub to: String,
}

#[derive(Serialize, ToSchema)]
pub struct Backfill {
    pub id: i64,
    pub dag_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub from_date: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub to_date: Timestamp,
    pub created_by: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// Its runs by state.
    pub runs: BTreeMap<String, u32>,
    /// Runs in all, and how many have finished.
    pub total: u32,
    pub done: u32,
}

impl From<&gale_store::BackfillRow> for Backfill {
    fn from(b: &gale_store::BackfillRow) -> Backfill {
        let total = b.runs.values().sum();
        let done = ["success", "failed"]
            .iter()
            .filter_map(|s| b.runs.get(*s))
            .sum();
        Backfill {
            id: b.id,
            dag_id: b.dag_id.0.clone(),
            from_date: b.from_date,
            to_date: b.to_date,
            created_by: b.created_by.clone(),
            created_at: b.created_at,
            runs: b.runs.clone(),
            total,
            done,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BackfillCreated {
    #[serde(flatten)]
    pub backfill: Backfill,
    /// Runs this request created.
    pub created_runs: Vec<i64>,
    /// Slots that already had a run.
    pub existing: usize,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BackfillQuery {
    pub dag_id: Option<String>,
    /// 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub struct Slot {
    #[schema(value_type = String, format = DateTime)]
    pub logical_date: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub interval_end: Timestamp,
    /// `run`, `skipped` or `missed`.
    pub status: String,
    pub run_id: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Timestamp,
}

#[derive(Serialize, ToSchema)]
pub struct Node {
    pub node_id: String,
    pub host: String,
    pub pid: i64,
    pub roles: Vec<String>,
    pub version: String,
    /// `running`, `unresponsive` (no recent heartbeat) or `stopped`.
    pub state: String,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub heartbeat_at: Timestamp,
    pub heartbeat_age_s: f64,
    pub running_attempts: u32,
    /// The node's clock minus the database's, in milliseconds.
    pub clock_skew_ms: f64,
}

#[derive(Serialize, ToSchema)]
pub struct Pool {
    pub name: String,
    pub slots: u32,
    pub description: Option<String>,
    pub queued: u32,
    pub running: u32,
}

// ------------------------------------------------------------------ helpers

fn limit_of(limit: Option<u32>, default: u32, max: u32) -> ApiResult<u32> {
    match limit {
        None => Ok(default),
        Some(0) => Err(ApiError::bad_request("limit must be at least 1")),
        Some(n) if n > max => Err(ApiError::bad_request(format!(
            "limit must be at most {max}"
        ))),
        Some(n) => Ok(n),
    }
}

fn dag_id_of(s: String) -> ApiResult<DagId> {
    if s.is_empty() || s.len() > 250 {
        return Err(ApiError::not_found(format!("no DAG {s:?}")));
    }
    Ok(DagId(s))
}

async fn run_of(store: &dyn Store, run_id: i64) -> ApiResult<gale_store::RunRow> {
    store
        .get_run(RunId(run_id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {run_id}")))
}

async fn task_of(store: &dyn Store, run_id: i64, task_id: &str) -> ApiResult<gale_store::TaskRow> {
    Ok(run_and_task(store, run_id, task_id).await?.1)
}

async fn run_and_task(
    store: &dyn Store,
    run_id: i64,
    task_id: &str,
) -> ApiResult<(gale_store::RunRow, gale_store::TaskRow)> {
    let run = run_of(store, run_id).await?;
    let task = store
        .run_tasks(run.id)
        .await?
        .into_iter()
        .find(|t| t.task_id.as_str() == task_id)
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} has no task {task_id:?}")))?;
    Ok((run, task))
}

fn mark_state(state: MarkAs) -> (RunMark, TaskState) {
    match state {
        MarkAs::Success => (RunMark::Success, TaskState::Success),
        MarkAs::Failed => (RunMark::Failed, TaskState::Failed),
    }
}

// ------------------------------------------------------------------ handlers

/// Gale's version and the database schema version.
#[utoipa::path(get, path = "/api/v1/version", tag = "cluster",
    responses((status = 200, body = Version), (status = 503, body = Problem)))]
async fn version(State(s): Shared) -> ApiResult<Json<Version>> {
    Ok(Json(Version {
        version: env!("CARGO_PKG_VERSION").into(),
        schema_version: s.store.schema_version().await?,
    }))
}

/// DAGs, filtered and paged, in id order.
#[utoipa::path(get, path = "/api/v1/dags", tag = "dags", params(DagQuery),
    responses((status = 200, body = DagList), (status = 400, body = Problem)))]
async fn list_dags(State(s): Shared, Query(q): Query<DagQuery>) -> ApiResult<Json<DagList>> {
    let limit = limit_of(
        q.limit.map(|l| u32::try_from(l).unwrap_or(u32::MAX)),
        100,
        1000,
    )? as usize;
    let offset = q.offset.unwrap_or(0);
    let now = s.store.now().await?;
    let needle = q.q.as_deref().map(str::to_lowercase);
    let mut rows: Vec<_> = s
        .store
        .list_dags()
        .await?
        .into_iter()
        .filter(|d| d.active || q.include_inactive.unwrap_or(false))
        .filter(|d| q.paused.is_none_or(|p| d.paused == p))
        .filter(|d| q.tag.as_ref().is_none_or(|t| d.tags.contains(t)))
        .filter(|d| {
            needle.as_ref().is_none_or(|n| {
                d.dag_id.0.to_lowercase().contains(n)
                    || d.description
                        .as_deref()
                        .is_some_and(|x| x.to_lowercase().contains(n))
            })
        })
        .collect();
    let total = rows.len();
    let page: Vec<_> = rows.drain(..).skip(offset).take(limit).collect();
    let mut dags = Vec::with_capacity(page.len());
    for row in &page {
        let spec = s.store.get_version(&row.dag_id, &row.version_hash).await?;
        dags.push(dag_out(row, spec.as_ref().map(|v| &v.spec), now));
    }
    Ok(Json(DagList {
        dags,
        total,
        limit,
        offset,
    }))
}

/// One DAG with its tasks (current version).
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}", tag = "dags",
    params(("dag_id" = String, Path)),
    responses((status = 200, body = DagDetail), (status = 404, body = Problem)))]
async fn get_dag(State(s): Shared, Path(dag_id): Path<String>) -> ApiResult<Json<DagDetail>> {
    let dag_id = dag_id_of(dag_id)?;
    let (row, version) = actions::current_dag(&*s.store, &dag_id)
        .await
        .map_err(action_err)?;
    let now = s.store.now().await?;
    let spec = &version.spec;
    Ok(Json(DagDetail {
        dag: dag_out(&row, Some(spec), now),
        tasks: spec
            .tasks
            .iter()
            .map(|t| TaskSpec {
                task_id: t.id.0.clone(),
                kind: match t.kind {
                    gale_model::dag::TaskKind::Shell { .. } => "shell".into(),
                    gale_model::dag::TaskKind::Http(_) => "http".into(),
                },
                needs: t.needs.iter().map(|n| n.0.clone()).collect(),
                trigger_rule: serde_json::to_value(t.trigger_rule)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                retries: t.retries,
                queue: t.queue.clone(),
                pool: t.pool.clone(),
                priority: t.priority,
            })
            .collect(),
        params: mask_conf(&spec.params),
        max_active_tasks: spec.max_active_tasks,
        catchup: spec.catchup,
    }))
}

/// Pause or unpause a DAG.
#[utoipa::path(patch, path = "/api/v1/dags/{dag_id}", tag = "dags",
    params(("dag_id" = String, Path)), request_body = DagPatch,
    responses((status = 200, body = Dag), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn patch_dag(
    State(s): Shared,
    Path(dag_id): Path<String>,
    Json(patch): Json<DagPatch>,
) -> ApiResult<Json<Dag>> {
    let dag_id = dag_id_of(dag_id)?;
    if !s.store.set_paused(&dag_id, patch.paused).await? {
        return Err(ApiError::not_found(format!("no DAG {dag_id}")));
    }
    let (row, version) = actions::current_dag(&*s.store, &dag_id)
        .await
        .map_err(action_err)?;
    if let Some(n) = &s.notifier {
        n.scheduler.notify_one();
    }
    Ok(Json(dag_out(
        &row,
        Some(&version.spec),
        s.store.now().await?,
    )))
}

/// The DAG file's text, of the current or a given version.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/source", tag = "dags",
    params(("dag_id" = String, Path), SourceQuery),
    responses((status = 200, body = DagSource), (status = 404, body = Problem)))]
async fn dag_source(
    State(s): Shared,
    Path(dag_id): Path<String>,
    Query(q): Query<SourceQuery>,
) -> ApiResult<Json<DagSource>> {
    let dag_id = dag_id_of(dag_id)?;
    let hash = match q.version {
        Some(h) => h,
        None => {
            s.store
                .get_dag(&dag_id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no DAG {dag_id}")))?
                .version_hash
        }
    };
    let v = s
        .store
        .get_version(&dag_id, &hash)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{dag_id} has no version {hash:?}")))?;
    Ok(Json(DagSource {
        dag_id: dag_id.0,
        version_hash: v.version_hash,
        file: v.file,
        source: v.source,
    }))
}

/// Every stored version of a DAG, newest first.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/versions", tag = "dags",
    params(("dag_id" = String, Path)),
    responses((status = 200, body = Vec<DagVersionInfo>), (status = 404, body = Problem)))]
async fn dag_versions(
    State(s): Shared,
    Path(dag_id): Path<String>,
) -> ApiResult<Json<Vec<DagVersionInfo>>> {
    let dag_id = dag_id_of(dag_id)?;
    let versions = s.store.list_versions(&dag_id).await?;
    if versions.is_empty() && s.store.get_dag(&dag_id).await?.is_none() {
        return Err(ApiError::not_found(format!("no DAG {dag_id}")));
    }
    Ok(Json(
        versions
            .into_iter()
            .map(|v| DagVersionInfo {
                version_hash: v.version_hash,
                file: v.file,
                created_at: v.created_at,
            })
            .collect(),
    ))
}

/// DAG files that failed to load, with `file:line:column` errors.
#[utoipa::path(get, path = "/api/v1/import-errors", tag = "dags",
    responses((status = 200, body = Vec<ImportErrorOut>)))]
async fn import_errors(State(s): Shared) -> ApiResult<Json<Vec<ImportErrorOut>>> {
    Ok(Json(
        s.store
            .list_import_errors()
            .await?
            .into_iter()
            .map(|e| ImportErrorOut {
                file: e.file,
                dag_id: e.dag_id,
                errors: e.errors.iter().map(ToString::to_string).collect(),
                updated_at: e.updated_at,
            })
            .collect(),
    ))
}

/// Runs, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunQuery),
    responses((status = 200, body = RunList), (status = 400, body = Problem)))]
async fn list_runs(State(s): Shared, Query(q): Query<RunQuery>) -> ApiResult<Json<RunList>> {
    let limit = limit_of(q.limit, 100, 1000)?;
    let state = q
        .state
        .as_deref()
        .map(|x| x.parse::<RunState>())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("state: {e}")))?;
    let run_type = q
        .run_type
        .as_deref()
        .map(|x| x.parse::<RunType>())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("run_type: {e}")))?;
    let runs = s
        .store
        .list_runs(&RunFilter {
            dag_id: q.dag_id.map(DagId),
            state,
            run_type,
            before: q.before.map(RunId),
            limit,
        })
        .await?;
    let next_before = (runs.len() == limit as usize)
        .then(|| runs.last().map(|r| r.id.0))
        .flatten();
    Ok(Json(RunList {
        runs: runs.iter().map(Run::from).collect(),
        next_before,
    }))
}

/// Trigger a run of the DAG's current version.
#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/runs", tag = "runs",
    params(("dag_id" = String, Path)), request_body = TriggerRequest,
    responses((status = 201, body = Run), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn trigger_run(
    State(s): Shared,
    Path(dag_id): Path<String>,
    Json(req): Json<TriggerRequest>,
) -> ApiResult<(StatusCode, Json<Run>)> {
    let dag_id = dag_id_of(dag_id)?;
    let run = actions::trigger(
        &*s.store,
        &dag_id,
        req.conf.unwrap_or_default(),
        req.logical_date.as_deref(),
    )
    .await
    .map_err(action_err)?;
    if let Some(n) = &s.notifier {
        n.scheduler.notify_one();
    }
    Ok((StatusCode::CREATED, Json(Run::from(&run))))
}

/// A run and how many of its tasks are in each state.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}", tag = "runs",
    params(("run_id" = i64, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = Problem)))]
async fn get_run(State(s): Shared, Path(run_id): Path<i64>) -> ApiResult<Json<RunDetail>> {
    let run = run_of(&*s.store, run_id).await?;
    let counts = s.store.run_state_counts(run.id).await?;
    Ok(Json(RunDetail {
        run: Run::from(&run),
        task_counts: counts
            .into_iter()
            .map(|(st, n)| (st.as_str().to_owned(), n))
            .collect(),
    }))
}

/// Cancel a queued or running run: running attempts are killed, the rest skipped.
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/cancel", tag = "runs",
    params(("run_id" = i64, Path)),
    responses((status = 200, body = Run), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn cancel_run(
    State(s): Shared,
    caller: Caller,
    Path(run_id): Path<i64>,
) -> ApiResult<Json<Run>> {
    let run = run_of(&*s.store, run_id).await?;
    if !s
        .store
        .mark_run(run.id, RunMark::Cancel, &caller.user)
        .await?
    {
        return Err(ApiError::conflict(format!(
            "run {run_id} has already finished ({})",
            run.state
        )));
    }
    s.run_changed(run.id);
    Ok(Json(Run::from(&run_of(&*s.store, run_id).await?)))
}

/// Mark a run success or failed, with its unfinished tasks.
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/mark", tag = "runs",
    params(("run_id" = i64, Path)), request_body = MarkRequest,
    responses((status = 200, body = Run), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn mark_run(
    State(s): Shared,
    caller: Caller,
    Path(run_id): Path<i64>,
    Json(req): Json<MarkRequest>,
) -> ApiResult<Json<Run>> {
    let (mark, state) = mark_state(req.state);
    let run = run_of(&*s.store, run_id).await?;
    if !s.store.mark_run(run.id, mark, &caller.user).await? {
        return Err(ApiError::conflict(format!(
            "run {run_id} is already {state}"
        )));
    }
    s.run_changed(run.id);
    Ok(Json(Run::from(&run_of(&*s.store, run_id).await?)))
}

/// Run tasks of a run again: its failed ones, or the ones named.
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/clear", tag = "runs",
    params(("run_id" = i64, Path)), request_body = ClearRunRequest,
    responses((status = 200, body = Cleared), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn clear_run(
    State(s): Shared,
    Path(run_id): Path<i64>,
    Json(req): Json<ClearRunRequest>,
) -> ApiResult<Json<Cleared>> {
    let what = match req.task_ids {
        None => ClearWhat::Failed,
        Some(task_ids) if task_ids.is_empty() => {
            return Err(ApiError::bad_request(
                "task_ids is empty: name at least one task",
            ));
        }
        Some(task_ids) => ClearWhat::Tasks {
            task_ids,
            downstream: req.downstream,
        },
    };
    let cleared = actions::clear(&*s.store, RunId(run_id), &what)
        .await
        .map_err(action_err)?;
    s.run_changed(RunId(run_id));
    if let Some(n) = &s.notifier {
        n.scheduler.notify_one();
    }
    Ok(Json(Cleared { cleared }))
}

/// A run's task instances.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/tasks", tag = "tasks",
    params(("run_id" = i64, Path)),
    responses((status = 200, body = Vec<TaskInstance>), (status = 404, body = Problem)))]
async fn list_tasks(
    State(s): Shared,
    Path(run_id): Path<i64>,
) -> ApiResult<Json<Vec<TaskInstance>>> {
    let run = run_of(&*s.store, run_id).await?;
    Ok(Json(
        s.store
            .run_tasks(run.id)
            .await?
            .iter()
            .map(TaskInstance::from)
            .collect(),
    ))
}

/// One task instance and all its attempts.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/tasks/{task_id}", tag = "tasks",
    params(("run_id" = i64, Path), ("task_id" = String, Path)),
    responses((status = 200, body = TaskDetail), (status = 404, body = Problem)))]
async fn get_task(
    State(s): Shared,
    Path((run_id, task_id)): Path<(i64, String)>,
) -> ApiResult<Json<TaskDetail>> {
    let (run, t) = run_and_task(&*s.store, run_id, &task_id).await?;
    let attempts = s.store.attempts(t.id).await?;
    let secrets = Secrets::of(&run.conf);
    Ok(Json(TaskDetail {
        task: TaskInstance::from(&t),
        attempts: attempts
            .iter()
            .map(|a| {
                let mut out = Attempt::from(a);
                out.command = out.command.map(|c| secrets.mask(&c));
                out
            })
            .collect(),
    }))
}

/// An attempt's log, a page at a time; `follow` waits for new lines.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/tasks/{task_id}/logs", tag = "tasks",
    params(("run_id" = i64, Path), ("task_id" = String, Path), LogQuery),
    responses((status = 200, body = LogPage), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn task_logs(
    State(s): Shared,
    Path((run_id, task_id)): Path<(i64, String)>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<LogPage>> {
    let limit = limit_of(q.limit, 1000, 10_000)?;
    let (run, t) = run_and_task(&*s.store, run_id, &task_id).await?;
    let secrets = Secrets::of(&run.conf);
    if t.try_number == 0 {
        return Err(ApiError::not_found(format!(
            "task {task_id} of run {run_id} has not started yet: no attempt, no log"
        )));
    }
    let try_number = q.try_number.unwrap_or(t.try_number);
    if try_number == 0 || try_number > t.try_number {
        return Err(ApiError::not_found(format!(
            "task {task_id} of run {run_id} has no attempt {try_number} (it has {})",
            t.try_number
        )));
    }
    let after = q.after.unwrap_or(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = s.store.read_logs(t.id, try_number, after, limit).await?;
        let finished = attempt_finished(&*s.store, t.id, try_number).await?;
        let waiting = rows.is_empty()
            && !finished
            && q.follow.unwrap_or(false)
            && tokio::time::Instant::now() < deadline;
        if !waiting {
            let next_after = rows.last().map_or(after, |r| r.seq);
            return Ok(Json(LogPage {
                try_number,
                // Lines written before the end are all in: a page that is not
                // full after the attempt ended is the last.
                finished: finished && rows.len() < limit as usize,
                next_after,
                lines: rows
                    .into_iter()
                    .map(|r| LogLineOut {
                        seq: r.seq,
                        ts: r.ts,
                        stream: r.stream.as_str().into(),
                        text: secrets.mask(&r.text),
                    })
                    .collect(),
            }));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn attempt_finished(
    store: &dyn Store,
    ti: gale_store::TiId,
    try_number: u32,
) -> ApiResult<bool> {
    Ok(store
        .attempts(ti)
        .await?
        .iter()
        .find(|a| a.try_number == try_number)
        .is_none_or(|a| a.ended_at.is_some()))
}

/// Run one task again (and, with `downstream`, everything after it).
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/tasks/{task_id}/clear", tag = "tasks",
    params(("run_id" = i64, Path), ("task_id" = String, Path)), request_body = ClearTaskRequest,
    responses((status = 200, body = Cleared), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn clear_task(
    State(s): Shared,
    Path((run_id, task_id)): Path<(i64, String)>,
    Json(req): Json<ClearTaskRequest>,
) -> ApiResult<Json<Cleared>> {
    let what = ClearWhat::Tasks {
        task_ids: vec![task_id],
        downstream: req.downstream,
    };
    let cleared = actions::clear(&*s.store, RunId(run_id), &what)
        .await
        .map_err(action_err)?;
    s.run_changed(RunId(run_id));
    Ok(Json(Cleared { cleared }))
}

/// Mark one task success or failed (a running attempt is stopped).
#[utoipa::path(post, path = "/api/v1/runs/{run_id}/tasks/{task_id}/mark", tag = "tasks",
    params(("run_id" = i64, Path), ("task_id" = String, Path)), request_body = MarkRequest,
    responses((status = 200, body = TaskInstance), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn mark_task(
    State(s): Shared,
    caller: Caller,
    Path((run_id, task_id)): Path<(i64, String)>,
    Json(req): Json<MarkRequest>,
) -> ApiResult<Json<TaskInstance>> {
    let (_, to) = mark_state(req.state);
    let t = task_of(&*s.store, run_id, &task_id).await?;
    if !s.store.mark_task(t.id, to, &caller.user).await? {
        return Err(ApiError::conflict(format!(
            "task {task_id} of run {run_id} is already {to}"
        )));
    }
    s.run_changed(RunId(run_id));
    let t = s
        .store
        .get_task(t.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {run_id} has no task {task_id:?}")))?;
    Ok(Json(TaskInstance::from(&t)))
}

/// Create one backfill run per schedule slot in a date range.
#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/backfills", tag = "backfills",
    params(("dag_id" = String, Path)), request_body = BackfillRequest,
    responses((status = 201, body = BackfillCreated), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn create_backfill(
    State(s): Shared,
    caller: Caller,
    Path(dag_id): Path<String>,
    Json(req): Json<BackfillRequest>,
) -> ApiResult<(StatusCode, Json<BackfillCreated>)> {
    let dag_id = dag_id_of(dag_id)?;
    let b = actions::backfill(&*s.store, &dag_id, &req.from, &req.to, Some(&caller.user))
        .await
        .map_err(action_err)?;
    let row = s
        .store
        .get_backfill(b.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("backfill {} vanished", b.id)))?;
    if let Some(n) = &s.notifier {
        n.scheduler.notify_one();
    }
    Ok((
        StatusCode::CREATED,
        Json(BackfillCreated {
            backfill: Backfill::from(&row),
            created_runs: b.created.iter().map(|r| r.0).collect(),
            existing: b.existing,
        }),
    ))
}

/// Backfills, newest first, with their progress.
#[utoipa::path(get, path = "/api/v1/backfills", tag = "backfills", params(BackfillQuery),
    responses((status = 200, body = Vec<Backfill>), (status = 400, body = Problem)))]
async fn list_backfills(
    State(s): Shared,
    Query(q): Query<BackfillQuery>,
) -> ApiResult<Json<Vec<Backfill>>> {
    let limit = limit_of(q.limit, 100, 1000)?;
    let dag = q.dag_id.map(DagId);
    Ok(Json(
        s.store
            .list_backfills(dag.as_ref(), limit)
            .await?
            .iter()
            .map(Backfill::from)
            .collect(),
    ))
}

/// One backfill and its progress.
#[utoipa::path(get, path = "/api/v1/backfills/{backfill_id}", tag = "backfills",
    params(("backfill_id" = i64, Path)),
    responses((status = 200, body = Backfill), (status = 404, body = Problem)))]
async fn get_backfill(State(s): Shared, Path(id): Path<i64>) -> ApiResult<Json<Backfill>> {
    let b = s
        .store
        .get_backfill(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no backfill {id}")))?;
    Ok(Json(Backfill::from(&b)))
}

/// The schedule-slot ledger of a DAG, newest first: each slot once, as `run`,
/// `skipped` or `missed`.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/slots", tag = "dags",
    params(("dag_id" = String, Path), LimitQuery),
    responses((status = 200, body = Vec<Slot>), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn dag_slots(
    State(s): Shared,
    Path(dag_id): Path<String>,
    Query(q): Query<LimitQuery>,
) -> ApiResult<Json<Vec<Slot>>> {
    let limit = limit_of(q.limit, 100, 1000)?;
    let dag_id = dag_id_of(dag_id)?;
    if s.store.get_dag(&dag_id).await?.is_none() {
        return Err(ApiError::not_found(format!("no DAG {dag_id}")));
    }
    Ok(Json(
        s.store
            .list_slots(&dag_id, limit)
            .await?
            .into_iter()
            .map(|x| Slot {
                logical_date: x.logical_date,
                interval_end: x.interval_end,
                status: x.status.as_str().into(),
                run_id: x.run_id.map(|r| r.0),
                recorded_at: x.recorded_at,
            })
            .collect(),
    ))
}

/// Every Gale process: roles, state, heartbeat age, running attempts.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "cluster",
    responses((status = 200, body = Vec<Node>)))]
async fn list_nodes(State(s): Shared) -> ApiResult<Json<Vec<Node>>> {
    Ok(Json(nodes(&*s.store).await?))
}

/// The cluster's processes, as `/api/v1/nodes` and the cluster page show them.
pub async fn nodes(store: &dyn Store) -> ApiResult<Vec<Node>> {
    let now = store.now().await?;
    Ok(store
        .list_nodes()
        .await?
        .into_iter()
        .map(|n| {
            let age = now.duration_since(n.heartbeat_at).as_secs_f64().max(0.0);
            let state = if n.state != "running" {
                n.state.to_string()
            } else if age > crate::health::LIVE_WITHIN.as_secs_f64() {
                "unresponsive".into()
            } else {
                "running".into()
            };
            Node {
                node_id: n.node_id,
                host: n.host,
                pid: n.pid,
                roles: n.roles,
                version: n.version,
                state,
                started_at: n.started_at,
                heartbeat_at: n.heartbeat_at,
                heartbeat_age_s: (age * 10.0).round() / 10.0,
                running_attempts: n.running_attempts,
                clock_skew_ms: n.clock_skew_us as f64 / 1000.0,
            }
        })
        .collect())
}

/// Pools with their slots and use.
#[utoipa::path(get, path = "/api/v1/pools", tag = "cluster",
    responses((status = 200, body = Vec<Pool>)))]
async fn list_pools(State(s): Shared) -> ApiResult<Json<Vec<Pool>>> {
    Ok(Json(
        s.store
            .list_pools()
            .await?
            .into_iter()
            .map(|p| Pool {
                name: p.name,
                slots: p.slots,
                description: p.description,
                queued: p.queued,
                running: p.running,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_text() {
        let conf = serde_json::json!({
            "db_password": "hunter22",
            "name": "hunter22-is-not-secret-here",
            "nested": {"api_token": 123456, "region": "eu"},
            "short_secret": "abc",
        });
        let secrets = Secrets::of(conf.as_object().expect("an object"));
        assert_eq!(
            secrets.mask("psql --password hunter22 --token 123456 --region eu"),
            "psql --password *** --token *** --region eu"
        );
        assert_eq!(
            secrets.mask("abc stays: too short to mask"),
            "abc stays: too short to mask"
        );
        let masked = mask_conf(conf.as_object().expect("an object"));
        assert_eq!(masked["db_password"], "***");
        assert_eq!(masked["name"], "hunter22-is-not-secret-here");
        assert_eq!(masked["nested"]["api_token"], "***");
        assert_eq!(masked["nested"]["region"], "eu");
    }
}
