//! The REST API under `/api/v1`: JSON in and out, errors as problem+json, and
//! an OpenAPI document generated from the handlers (`/api/v1/openapi.json`).
//! This module assembles the router and the document and holds the helpers
//! every resource shares; each resource's handlers and DTOs live in a module
//! of their own.

use std::sync::Arc;

use axum::extract::State;
use gale_model::{DagId, RunId};
use gale_store::Store;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Identity;
use crate::error::{ApiError, ApiResult, Problem};

pub mod alerts;
pub mod audit;
pub mod backfills;
pub mod cluster;
pub mod connections;
pub mod dags;
pub mod logs;
pub mod runs;
pub mod sources;
pub mod tasks;
pub mod tokens;
pub mod variables;
pub mod versions;

type Shared = State<Arc<AppState>>;

/// Who calls, and from where: the identity the auth middleware found, and
/// the peer's address (for the audit log).
pub(crate) struct Caller {
    identity: Identity,
    peer: String,
}

impl Caller {
    pub(crate) fn actor(&self) -> gale_actions::Actor {
        crate::audit::actor(&self.identity, &self.peer)
    }

    /// [`Caller::require`] for a reveal: a refused one is recorded in the
    /// audit log as a failure of `action` on `target`, as an admin's is as a
    /// success.
    pub(crate) async fn require_reveal(
        &self,
        store: &(impl gale_store::Audit + ?Sized),
        action: gale_store::AuditAction,
        target: &str,
        doing: &str,
    ) -> ApiResult<()> {
        let result = self.require(gale_store::Role::Admin, doing);
        if let Err(e) = &result {
            let mut detail = serde_json::Map::new();
            detail.insert("error".into(), serde_json::Value::String(e.detail.clone()));
            gale_actions::audit::record(
                store,
                &self.actor(),
                action,
                target,
                detail,
                gale_store::AuditOutcome::Failure,
            )
            .await;
        }
        result
    }

    /// A 403 unless the caller has `role`, saying what `doing` needs.
    pub(crate) fn require(&self, role: gale_store::Role, doing: &str) -> ApiResult<()> {
        if self.identity.can(role) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "{} is a {}; {doing} needs the {} role",
            self.identity.user,
            self.identity.role.as_str(),
            role.as_str()
        )))
    }
}

impl std::ops::Deref for Caller {
    type Target = Identity;
    fn deref(&self) -> &Identity {
        &self.identity
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let identity = parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("log in, or send an API token"))?;
        Ok(Caller {
            identity,
            peer: crate::audit::peer_of(&parts.extensions),
        })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Gale API", description = "Workflows (DAGs of tasks): list, trigger, follow, retry. Authenticate with `Authorization: Bearer <token>` (`gale tokens create`)."),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "dags"), (name = "runs"), (name = "tasks"), (name = "backfills"), (name = "cluster"), (name = "tokens"), (name = "audit"), (name = "variables"), (name = "connections"), (name = "alerts"), (name = "health"))
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
        .routes(routes!(cluster::version))
        .routes({
            // A push may carry many files: its own body limit.
            let (schemas, paths, method) = routes!(dags::list_dags, sources::push_dags);
            let limit = axum::extract::DefaultBodyLimit::max(sources::PUSH_BODY_LIMIT);
            (schemas, paths, method.layer(limit))
        })
        .routes(routes!(sources::list_sources))
        .routes(routes!(sources::refresh_source))
        .routes(routes!(dags::get_dag, dags::patch_dag, dags::delete_dag))
        .routes(routes!(dags::dag_source))
        .routes(routes!(dags::dag_versions))
        .routes(routes!(versions::dag_diff))
        .routes(routes!(dags::import_errors))
        .routes(routes!(runs::list_runs))
        .routes(routes!(runs::trigger_run))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::cancel_run))
        .routes(routes!(runs::mark_run))
        .routes(routes!(runs::clear_run))
        .routes(routes!(tasks::list_tasks))
        .routes(routes!(tasks::get_task))
        .routes(routes!(logs::task_logs))
        .routes(routes!(tasks::clear_task))
        .routes(routes!(tasks::mark_task))
        .routes(routes!(backfills::create_backfill))
        .routes(routes!(backfills::list_backfills))
        .routes(routes!(backfills::get_backfill))
        .routes(routes!(backfills::cancel_backfill))
        .routes(routes!(dags::dag_slots))
        .routes(routes!(cluster::list_nodes))
        .routes(routes!(cluster::list_pools))
        .routes(routes!(tokens::create_token))
        .routes(routes!(audit::list_audit))
        .routes(routes!(
            variables::list_variables,
            variables::create_variable
        ))
        .routes(routes!(
            variables::get_variable,
            variables::put_variable,
            variables::delete_variable
        ))
        .routes(routes!(
            connections::list_connections,
            connections::create_connection
        ))
        .routes(routes!(
            connections::get_connection,
            connections::put_connection,
            connections::delete_connection
        ))
        .routes(routes!(alerts::list_channels, alerts::create_channel))
        .routes(routes!(
            alerts::get_channel,
            alerts::put_channel,
            alerts::delete_channel
        ))
        .routes(routes!(alerts::test_channel))
        .routes(routes!(alerts::list_deliveries))
        .routes(routes!(alerts::run_alerts))
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

pub(super) fn limit_of(limit: Option<u32>, default: u32, max: u32) -> ApiResult<u32> {
    match limit {
        None => Ok(default),
        Some(0) => Err(ApiError::bad_request("limit must be at least 1")),
        Some(n) if n > max => Err(ApiError::bad_request(format!(
            "limit must be at most {max}"
        ))),
        Some(n) => Ok(n),
    }
}

pub(super) fn dag_id_of(s: String) -> ApiResult<DagId> {
    if s.is_empty() || s.len() > 250 {
        return Err(ApiError::not_found(format!("no DAG {s:?}")));
    }
    Ok(DagId(s))
}

pub(super) async fn run_of(store: &dyn Store, run_id: i64) -> ApiResult<gale_store::RunRow> {
    store
        .get_run(RunId(run_id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {run_id}")))
}

pub(super) async fn run_and_task(
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
