//! Where DAGs come from besides a DAG folder: pushed files
//! (`POST /api/v1/dags`), and the git sources schedulers follow (listed, and
//! asked to fetch at once by a git host's webhook).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Caller, Shared};
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};

/// The largest push: a thousand files' worth of JSON would be more; one
/// request carries up to 16 MiB (each file at most 1 MiB).
pub const PUSH_BODY_LIMIT: usize = 16 << 20;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PushQuery {
    /// The file's name, for a YAML body (e.g. `etl.yaml`, or `team/etl.yaml`):
    /// its stem is the DAG's id unless the file says `id:`.
    pub file: Option<String>,
}

/// One pushed file, in a JSON body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushFileIn {
    /// A relative `.yaml` or `.yml` path.
    pub name: String,
    /// The file's text.
    pub content: String,
}

/// Several files in one push (stored all together or not at all).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushIn {
    pub files: Vec<PushFileIn>,
}

#[derive(Serialize, ToSchema)]
pub struct PushedOut {
    pub file: String,
    pub dag_id: String,
    pub version_hash: String,
    /// False when this content was stored before.
    pub new_version: bool,
    /// The DAG's current version changed.
    pub changed: bool,
    pub tasks: usize,
}

impl From<gale_actions::Pushed> for PushedOut {
    fn from(p: gale_actions::Pushed) -> PushedOut {
        PushedOut {
            file: p.name,
            dag_id: p.dag_id.0,
            version_hash: p.version_hash,
            new_version: p.new_version,
            changed: p.changed,
            tasks: p.tasks,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PushOut {
    pub dags: Vec<PushedOut>,
}

/// Push DAG files (operators and admins): a YAML body (`Content-Type:
/// application/yaml`, with `?file=NAME.yaml`) or a JSON body with several
/// files. Each is checked as a DAG folder's file is; any error refuses the
/// whole push (422, every error as `file:line:column: message`). A pushed DAG
/// is never retired by a folder scan (`DELETE /api/v1/dags/{dag_id}` drops
/// it); a DAG id a folder or a git source holds is refused (400).
#[utoipa::path(post, path = "/api/v1/dags", tag = "dags", params(PushQuery),
    request_body(content(
        (PushIn = "application/json"),
        (String = "application/yaml"),
    )),
    responses((status = 200, body = PushOut), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 415, body = Problem),
        (status = 422, body = Problem)))]
pub(super) async fn push_dags(
    State(s): Shared,
    caller: Caller,
    Query(q): Query<PushQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<PushOut>> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let files = match kind.as_str() {
        "application/json" => {
            if q.file.is_some() {
                return Err(ApiError::bad_request(
                    "`file` names a YAML body's file; a JSON body names each of its files",
                ));
            }
            let push: PushIn = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("the JSON body does not read: {e}")))?;
            push.files
                .into_iter()
                .map(|f| gale_actions::PushFile {
                    name: f.name,
                    content: f.content.into_bytes(),
                })
                .collect()
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
            let Some(name) = q.file else {
                return Err(ApiError::bad_request(
                    "a YAML body needs its file's name: ?file=NAME.yaml",
                ));
            };
            vec![gale_actions::PushFile {
                name,
                content: body.to_vec(),
            }]
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the DAG file as application/yaml (with ?file=NAME.yaml), or several as \
                 application/json: {\"files\": [{\"name\": \"etl.yaml\", \"content\": \"...\"}]}",
            ));
        }
    };
    let pushed = gale_actions::push_dags(&*s.store, &caller.actor(), files).await?;
    if pushed.iter().any(|p| p.changed)
        && let Some(n) = &s.notifier
    {
        n.scheduler.notify_one();
    }
    Ok(Json(PushOut {
        dags: pushed.into_iter().map(PushedOut::from).collect(),
    }))
}

/// A git repository schedulers follow.
#[derive(Serialize, ToSchema)]
pub struct SourceOut {
    pub name: String,
    pub url: String,
    /// The branch or tag followed ('' for the remote's default branch).
    pub reference: String,
    /// The repository's folder the DAG files are read from ('' for all).
    pub path: String,
    /// The commit whose DAGs are stored.
    pub commit: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub committed_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub applied_at: Option<Timestamp>,
    /// The host of the scheduler that stored it.
    pub applied_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub refresh_requested_at: Option<Timestamp>,
}

impl From<gale_store::SourceRow> for SourceOut {
    fn from(r: gale_store::SourceRow) -> SourceOut {
        SourceOut {
            name: r.name,
            url: without_password(&r.url),
            reference: r.reference,
            path: r.path,
            commit: r.commit,
            committed_at: r.committed_at,
            applied_at: r.applied_at,
            applied_by: r.applied_by,
            refresh_requested_at: r.refresh_requested_at,
        }
    }
}

/// A URL as shown: a password in it (which `--dags-git` refuses, but an
/// older row may hold) as `***`.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

/// The git sources schedulers follow, with the commit each has stored.
#[utoipa::path(get, path = "/api/v1/sources", tag = "dags",
    responses((status = 200, body = Vec<SourceOut>)))]
pub(super) async fn list_sources(State(s): Shared) -> ApiResult<Json<Vec<SourceOut>>> {
    Ok(Json(
        s.store
            .list_sources()
            .await?
            .into_iter()
            .map(SourceOut::from)
            .collect(),
    ))
}

/// Ask the schedulers following a git source to fetch now (a git host's
/// webhook; operators and admins): they fetch within a second instead of at
/// their next poll.
#[utoipa::path(post, path = "/api/v1/dags/sources/{name}/refresh", tag = "dags",
    params(("name" = String, Path)),
    responses((status = 202, body = SourceOut), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub(super) async fn refresh_source(
    State(s): Shared,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<SourceOut>)> {
    caller.require(gale_store::Role::Operator, "refreshing a DAG source")?;
    if !s.store.request_refresh(&name).await? {
        return Err(ApiError::not_found(format!(
            "no git source {name:?} is followed"
        )));
    }
    let row = s
        .store
        .get_source(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no git source {name:?} is followed")))?;
    Ok((StatusCode::ACCEPTED, Json(row.into())))
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn a_password_in_a_url_is_masked() {
        assert_eq!(
            without_password("https://bot:s3cret@git.example.com/a/b.git"),
            "https://bot:***@git.example.com/a/b.git"
        );
        assert_eq!(
            without_password("https://git.example.com/a/b.git"),
            "https://git.example.com/a/b.git"
        );
        assert_eq!(without_password("/srv/git/dags.git"), "/srv/git/dags.git");
        assert_eq!(
            without_password("ssh://git@host/x.git"),
            "ssh://git@host/x.git"
        );
    }
}
