//! Alerts: channels (anyone reads them, secret settings masked; admins
//! create, change, delete and test them, each recorded in the audit log) and
//! the delivery outbox (anyone reads it), filtered or for one run.

use axum::extract::State;
use axum::http::StatusCode;
use gale_model::RunId;
use gale_store::{DeliveryFilter, DeliveryState, Role};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::{Caller, Shared, limit_of, run_of};
use crate::alerts::{self, ChannelView, DeliveryView, Saved, TestResult};
use crate::error::{ApiError, ApiResult, Json, Path, Problem, Query};

const CHANGING: &str = "changing and testing alert channels";

/// A channel document: its name and kind, and every setting of that kind,
/// secret or not, in one object. Secret settings (`password`, `url`,
/// `signing_secret`) are sealed, and need the server's secret key.
#[derive(ToSchema)]
pub struct ChannelBody {
    /// 1 to 100 letters, digits, `_`, `.` and `-` (in `POST` only; a `PUT`
    /// takes the path's).
    pub name: Option<String>,
    /// `email`, `webhook` or `slack` (command channels are added with
    /// `gale alerts channels add --command`).
    pub kind: String,
    pub description: Option<String>,
    /// email: the recipients.
    pub to: Option<Vec<String>>,
    /// email: the sender (default: the server's `GALE_SMTP_FROM`).
    pub from: Option<String>,
    /// email: `smtp://user@host:587?tls=required`, `smtps://host`, `smtp://host`.
    pub smtp: Option<String>,
    /// email: the SMTP password (secret). Left out, or `***`, keeps it.
    pub password: Option<String>,
    /// webhook, slack: where to post (secret). Left out, or sent back as
    /// shown, keeps it.
    pub url: Option<String>,
    /// webhook: what bodies are signed with (secret, HMAC-SHA256).
    pub signing_secret: Option<String>,
    /// webhook: extra request headers (not secret).
    #[schema(value_type = Option<Object>)]
    pub headers: Option<Map<String, Value>>,
    /// webhook: seconds, or a duration such as `"10s"`.
    #[schema(value_type = Option<String>)]
    pub timeout: Option<Value>,
    /// Events this channel gets from every DAG that names none for them:
    /// `on_failure`, `on_retry`, `on_success`, `on_recovery`, `on_deadline`,
    /// `cluster`.
    pub defaults: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only this run's deliveries.
    #[param(minimum = 1)]
    pub run: Option<i64>,
    /// Only this channel's.
    #[param(max_length = 100)]
    pub channel: Option<String>,
    /// `pending`, `sending`, `sent` or `failed`.
    pub state: Option<String>,
    /// Only deliveries with a smaller id (the next page).
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Only deliveries with a smaller id (the next page).
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// A filter from the query, or a 400 naming the parameter that is wrong.
pub(crate) fn filter_of(q: &DeliveryQuery) -> ApiResult<DeliveryFilter> {
    let limit = limit_of(q.limit, 100, gale_store::DELIVERIES_LISTED)?;
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(DeliveryState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state must be pending, sending, sent or failed, not {:?}",
                s.chars().take(100).collect::<String>()
            ))
        })?),
    };
    if q.channel
        .as_deref()
        .is_some_and(|c| c.len() > gale_alerts::NAME_MAX)
    {
        return Err(ApiError::bad_request(format!(
            "channel must be at most {} characters",
            gale_alerts::NAME_MAX
        )));
    }
    if q.run.is_some_and(|r| r < 1) {
        return Err(ApiError::bad_request("run must be at least 1"));
    }
    if q.before.is_some_and(|b| b < 1) {
        return Err(ApiError::bad_request("before must be at least 1"));
    }
    Ok(DeliveryFilter {
        run_id: q.run.map(RunId),
        channel: q.channel.clone(),
        state,
        before: q.before,
        limit,
    })
}

async fn list(s: &crate::AppState, filter: &DeliveryFilter) -> ApiResult<DeliveryList> {
    let rows = s.store.list_deliveries(filter).await?;
    let next_before = (rows.len() == filter.limit as usize)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(DeliveryList {
        deliveries: rows.iter().map(DeliveryView::from).collect(),
        next_before,
    })
}

/// Every alert channel, secret settings masked.
#[utoipa::path(get, path = "/api/v1/alerts/channels", tag = "alerts",
    responses((status = 200, body = Vec<ChannelView>)))]
pub(super) async fn list_channels(State(s): Shared) -> ApiResult<Json<Vec<ChannelView>>> {
    Ok(Json(alerts::channels(&s).await?))
}

/// Create an alert channel (admins only). A secret setting needs the
/// server's secret key: without one the answer is 400, saying how to make it.
#[utoipa::path(post, path = "/api/v1/alerts/channels", tag = "alerts",
    request_body = ChannelBody,
    responses((status = 201, body = ChannelView), (status = 400, body = Problem),
        (status = 409, body = Problem)))]
pub(super) async fn create_channel(
    State(s): Shared,
    caller: Caller,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    caller.require(Role::Admin, CHANGING)?;
    let spec = alerts::spec_of_json(body, None).map_err(ApiError::bad_request)?;
    let name = spec.name.clone();
    alerts::save_channel(&s, &caller.actor(), spec, true).await?;
    Ok((StatusCode::CREATED, Json(alerts::channel(&s, &name).await?)))
}

/// An alert channel, secret settings masked.
#[utoipa::path(get, path = "/api/v1/alerts/channels/{name}", tag = "alerts",
    params(("name" = String, Path, description = "The channel's name")),
    responses((status = 200, body = ChannelView), (status = 404, body = Problem)))]
pub(super) async fn get_channel(
    State(s): Shared,
    Path(name): Path<String>,
) -> ApiResult<Json<ChannelView>> {
    Ok(Json(alerts::channel(&s, &name).await?))
}

/// Create or replace an alert channel (admins only): a secret setting left
/// out, or sent back as shown, keeps its value, so a secret need not be sent
/// again.
#[utoipa::path(put, path = "/api/v1/alerts/channels/{name}", tag = "alerts",
    params(("name" = String, Path, description = "The channel's name")),
    request_body = ChannelBody,
    responses((status = 200, body = ChannelView), (status = 201, body = ChannelView),
        (status = 400, body = Problem)))]
pub(super) async fn put_channel(
    State(s): Shared,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    caller.require(Role::Admin, CHANGING)?;
    let spec = alerts::spec_of_json(body, Some(&name)).map_err(ApiError::bad_request)?;
    let status = match alerts::save_channel(&s, &caller.actor(), spec, false).await? {
        Saved::Created => StatusCode::CREATED,
        Saved::Replaced => StatusCode::OK,
    };
    Ok((status, Json(alerts::channel(&s, &name).await?)))
}

/// Delete an alert channel (admins only); its pending deliveries are given up.
#[utoipa::path(delete, path = "/api/v1/alerts/channels/{name}", tag = "alerts",
    params(("name" = String, Path, description = "The channel's name")),
    responses((status = 204, description = "Deleted"), (status = 404, body = Problem)))]
pub(super) async fn delete_channel(
    State(s): Shared,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin, CHANGING)?;
    alerts::delete_channel(&s, &caller.actor(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a test message through an alert channel now, from this server
/// (admins only), and say what the receiving server answered: a refusal is
/// `ok: false` with its words, not an error.
#[utoipa::path(post, path = "/api/v1/alerts/channels/{name}/test", tag = "alerts",
    params(("name" = String, Path, description = "The channel's name")),
    responses((status = 200, body = TestResult), (status = 404, body = Problem)))]
pub(super) async fn test_channel(
    State(s): Shared,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<TestResult>> {
    caller.require(Role::Admin, CHANGING)?;
    Ok(Json(
        alerts::test_channel(&s, &caller.actor(), &name).await?,
    ))
}

/// The outbox's deliveries, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/alerts/deliveries", tag = "alerts", params(DeliveryQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = Problem)))]
pub(super) async fn list_deliveries(
    State(s): Shared,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult<Json<DeliveryList>> {
    let filter = filter_of(&q)?;
    Ok(Json(list(&s, &filter).await?))
}

/// A run's alert deliveries, newest first.
#[utoipa::path(get, path = "/api/v1/runs/{run_id}/alerts", tag = "alerts",
    params(("run_id" = i64, Path, description = "The run's id"), PageQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = Problem),
        (status = 404, body = Problem)))]
pub(super) async fn run_alerts(
    State(s): Shared,
    Path(run_id): Path<i64>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<DeliveryList>> {
    let filter = filter_of(&DeliveryQuery {
        run: None,
        channel: None,
        state: None,
        before: q.before,
        limit: q.limit,
    })?;
    let run = run_of(&*s.store, run_id).await?;
    Ok(Json(
        list(
            &s,
            &DeliveryFilter {
                run_id: Some(run.id),
                ..filter
            },
        )
        .await?,
    ))
}
