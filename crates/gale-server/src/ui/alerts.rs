//! The alerts page: the channels (everyone; secret settings masked, a URL as
//! its scheme, host and port), with a test and a delete button for admins (the
//! auth middleware refuses everyone else's posts), the failed deliveries
//! first and then the newest ones, each list bounded. Channels are added and
//! changed with `gale alerts channels add` or the API. The run page's alerts
//! section ([`run_lines`]) lists one run's deliveries.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gale_model::RunId;
use gale_store::{DeliveryFilter, DeliveryRow, DeliveryState, Store};

use super::variables::page_error;
use super::{ActionError, Ctx, Flash, Layout, UiError, format};
use crate::AppState;
use crate::alerts::{self, ChannelView};
use crate::auth::url_escape;

/// Failed deliveries the page lists.
const FAILED_SHOWN: u32 = 50;
/// Deliveries of every state the page lists.
const RECENT_SHOWN: u32 = 100;
/// A run's deliveries its page lists.
pub(crate) const RUN_SHOWN: u32 = 100;

pub(crate) struct ChannelLine {
    pub name: String,
    pub href: String,
    pub kind: String,
    /// The addresses, the masked URL or the program.
    pub target: String,
    /// The events it is a default for, comma-separated.
    pub defaults: String,
    pub description: String,
    pub updated: String,
}

impl From<ChannelView> for ChannelLine {
    fn from(c: ChannelView) -> ChannelLine {
        ChannelLine {
            href: format!("/alerts/channels/{}", url_escape(&c.name)),
            target: c.target(),
            defaults: c.defaults().join(", "),
            name: c.name,
            kind: c.kind,
            description: c.description.unwrap_or_default(),
            updated: format::ts_opt(c.updated_at),
        }
    }
}

pub(crate) struct DeliveryLine {
    pub id: i64,
    pub created: String,
    pub channel: String,
    pub kind: String,
    pub dag_id: String,
    pub run: String,
    pub run_href: String,
    pub state: &'static str,
    /// The state class that colours it.
    pub state_class: &'static str,
    pub attempts: u32,
    pub last_error: String,
    pub sent: String,
}

/// The state class a delivery's state is coloured with.
fn state_class(s: DeliveryState) -> &'static str {
    match s {
        DeliveryState::Pending => "queued",
        DeliveryState::Sending => "running",
        DeliveryState::Sent => "success",
        DeliveryState::Failed => "failed",
    }
}

/// A delivery as the alerts page lists it (in UTC).
pub(crate) fn delivery_line(d: &DeliveryRow) -> DeliveryLine {
    delivery_line_in(d, &format::Zone::utc())
}

/// A delivery with its times in `zone` (a run page's).
fn delivery_line_in(d: &DeliveryRow, zone: &format::Zone) -> DeliveryLine {
    DeliveryLine {
        id: d.id,
        created: zone.ts(d.created_at),
        channel: d.channel.clone(),
        kind: d.kind.clone(),
        dag_id: d.dag_id.as_ref().map(|x| x.0.clone()).unwrap_or_default(),
        run: d.run_id.map(|r| r.0.to_string()).unwrap_or_default(),
        run_href: d
            .run_id
            .map(|r| format!("/runs/{}", r.0))
            .unwrap_or_default(),
        state: d.state.as_str(),
        state_class: state_class(d.state),
        attempts: d.attempts,
        last_error: d.last_error.clone().unwrap_or_default(),
        sent: zone.ts_opt(d.sent_at),
    }
}

/// A run's deliveries, newest first (at most [`RUN_SHOWN`]), times in the
/// run page's `zone`.
pub(crate) async fn run_lines(
    store: &dyn Store,
    run_id: RunId,
    zone: &format::Zone,
) -> Result<Vec<DeliveryLine>, gale_store::Error> {
    let rows = store
        .list_deliveries(&DeliveryFilter {
            run_id: Some(run_id),
            limit: RUN_SHOWN,
            ..DeliveryFilter::default()
        })
        .await?;
    Ok(rows.iter().map(|d| delivery_line_in(d, zone)).collect())
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    page: Layout,
    channels: Vec<ChannelLine>,
    failed: Vec<DeliveryLine>,
    recent: Vec<DeliveryLine>,
}

pub async fn page(State(s): State<Arc<AppState>>, ctx: Ctx) -> Response {
    let res = async {
        let channels = alerts::channels(&s)
            .await
            .map_err(page_error)?
            .into_iter()
            .map(ChannelLine::from)
            .collect();
        let failed = s
            .store
            .list_deliveries(&DeliveryFilter {
                state: Some(DeliveryState::Failed),
                limit: FAILED_SHOWN,
                ..DeliveryFilter::default()
            })
            .await?;
        let recent = s
            .store
            .list_deliveries(&DeliveryFilter {
                limit: RECENT_SHOWN,
                ..DeliveryFilter::default()
            })
            .await?;
        Ok::<_, UiError>(ctx.page(
            StatusCode::OK,
            &AlertsPage {
                page: ctx.layout("alerts"),
                channels,
                failed: failed.iter().map(delivery_line).collect(),
                recent: recent.iter().map(delivery_line).collect(),
            },
        ))
    }
    .await;
    ctx.respond(res)
}

/// Sends a test message through a channel and says what its server answered.
pub async fn test(State(s): State<Arc<AppState>>, ctx: Ctx, Path(name): Path<String>) -> Response {
    let res = match alerts::test_channel(&s, &ctx.actor(), &name).await {
        Ok(t) if t.ok => Ok(ctx.redirect(
            "/alerts",
            Flash::ok(format!("test through {name} sent: {}", t.answer)),
        )),
        Ok(t) => Ok(ctx.redirect(
            "/alerts",
            Flash::error(format!("test through {name} refused: {}", t.answer)),
        )),
        Err(e) => match ActionError::from(e) {
            ActionError::Page(p) => Err(p),
            ActionError::Refused(msg) => Ok(ctx.redirect("/alerts", Flash::error(msg))),
        },
    };
    ctx.respond(res)
}

pub async fn delete(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Response {
    let res = match alerts::delete_channel(&s, &ctx.actor(), &name).await {
        Ok(()) => Ok(ctx.redirect(
            "/alerts",
            Flash::ok(format!("deleted alert channel {name}")),
        )),
        Err(e) => match ActionError::from(e) {
            ActionError::Page(p) => Err(p),
            ActionError::Refused(msg) => Ok(ctx.redirect("/alerts", Flash::error(msg))),
        },
    };
    ctx.respond(res)
}
