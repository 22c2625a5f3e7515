//! The admin pages (admins only; the auth middleware refuses everyone
//! else, as for the audit log): users (role, created, last login; change a
//! role, delete a user), API tokens (owner, role, created, last used,
//! expiry; revoke) and pools (slots, running, queued; create, set slots,
//! delete). Every change goes through `gale_actions::admin`, so it is
//! audited and refused there (the last admin, your own user,
//! `default_pool`); a refusal comes back as a flash on the page.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gale_actions::admin::{self, PoolWrite};
use gale_store::Role;
use serde::Deserialize;

use super::{ActionError, Ctx, Flash, Layout, UiError, format};
use crate::AppState;
use crate::auth::url_escape;

pub(crate) struct UserLine {
    pub name: String,
    pub href: String,
    pub role: &'static str,
    pub created: String,
    pub last_login: String,
    /// The user looking at the page (who may not delete themselves).
    pub is_you: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    page: Layout,
    lines: Vec<UserLine>,
    roles: [&'static str; 3],
}

pub(crate) struct TokenLine {
    pub id: i64,
    pub name: String,
    pub user: String,
    pub role: &'static str,
    pub created: String,
    pub last_used: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    page: Layout,
    lines: Vec<TokenLine>,
}

pub(crate) struct PoolLine {
    pub name: String,
    pub href: String,
    pub slots: u32,
    pub running: u32,
    pub queued: u32,
    pub description: String,
    /// `default_pool`, which is not deleted.
    pub kept: bool,
}

#[derive(Template)]
#[template(path = "pools.html")]
struct PoolsPage {
    page: Layout,
    lines: Vec<PoolLine>,
    max_slots: u32,
}

/// What a refused change tells: a flash back on `page`; a store failure or
/// an unknown user, token or pool gets its page.
fn refused(ctx: &Ctx, page: &str, e: gale_actions::Error) -> Result<Response, UiError> {
    match ActionError::from(e) {
        ActionError::Page(p) => Err(p),
        ActionError::Refused(msg) => Ok(ctx.redirect(page, Flash::error(msg))),
    }
}

pub async fn users(State(s): State<Arc<AppState>>, ctx: Ctx) -> Response {
    let res = async {
        let lines = s
            .store
            .list_users()
            .await?
            .into_iter()
            .map(|u| UserLine {
                href: format!("/users/{}", url_escape(&u.name)),
                is_you: u.name == ctx.identity.user,
                role: u.role.as_str(),
                created: format::ts(u.created_at),
                last_login: format::ts_opt(u.last_login_at),
                name: u.name,
            })
            .collect();
        Ok(ctx.page(
            StatusCode::OK,
            &UsersPage {
                page: ctx.layout("users"),
                lines,
                roles: ["viewer", "operator", "admin"],
            },
        ))
    }
    .await;
    ctx.respond(res)
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

pub async fn set_role(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(name): Path<String>,
    Form(form): Form<RoleForm>,
) -> Response {
    let res = match Role::parse(&form.role) {
        None => Ok(ctx.redirect(
            "/users",
            Flash::error(format!(
                "a role is viewer, operator or admin, not {:?}",
                form.role.chars().take(40).collect::<String>()
            )),
        )),
        Some(role) => match admin::set_user_role(&*s.store, &ctx.actor(), &name, role).await {
            Ok(was) => Ok(ctx.redirect(
                "/users",
                Flash::ok(format!(
                    "{name} is now {} (was {})",
                    with_article(role),
                    with_article(was)
                )),
            )),
            Err(e) => refused(&ctx, "/users", e),
        },
    };
    ctx.respond(res)
}

pub async fn delete_user(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Response {
    let own = ctx.identity.user.clone();
    let res = match admin::delete_user(&*s.store, &ctx.actor(), Some(&own), &name).await {
        Ok(()) => Ok(ctx.redirect(
            "/users",
            Flash::ok(format!(
                "deleted user {name}, with their sessions and tokens"
            )),
        )),
        Err(e) => refused(&ctx, "/users", e),
    };
    ctx.respond(res)
}

pub async fn tokens(State(s): State<Arc<AppState>>, ctx: Ctx) -> Response {
    let res = async {
        let lines = s
            .store
            .list_tokens(None)
            .await?
            .into_iter()
            .map(|t| TokenLine {
                id: t.id,
                role: t.role.as_str(),
                created: format::ts(t.created_at),
                last_used: format::ts_opt(t.last_used_at),
                expires: t
                    .expires_at
                    .map(format::ts)
                    .unwrap_or_else(|| "never".into()),
                name: t.name,
                user: t.user,
            })
            .collect();
        Ok(ctx.page(
            StatusCode::OK,
            &TokensPage {
                page: ctx.layout("tokens"),
                lines,
            },
        ))
    }
    .await;
    ctx.respond(res)
}

pub async fn revoke_token(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let res = match id.parse::<i64>() {
        Err(_) => Err(UiError::NotFound(format!("no token {id:?}"))),
        Ok(id) => match admin::revoke_token(&*s.store, &ctx.actor(), id).await {
            Ok(()) => Ok(ctx.redirect("/tokens", Flash::ok(format!("revoked token {id}")))),
            Err(e) => refused(&ctx, "/tokens", e),
        },
    };
    ctx.respond(res)
}

pub async fn pools(State(s): State<Arc<AppState>>, ctx: Ctx) -> Response {
    let res = async {
        let lines = s
            .store
            .list_pools()
            .await?
            .into_iter()
            .map(|p| PoolLine {
                href: format!("/pools/{}", url_escape(&p.name)),
                kept: p.name == admin::DEFAULT_POOL,
                slots: p.slots,
                running: p.running,
                queued: p.queued,
                description: p.description.unwrap_or_default(),
                name: p.name,
            })
            .collect();
        Ok(ctx.page(
            StatusCode::OK,
            &PoolsPage {
                page: ctx.layout("pools"),
                lines,
                max_slots: admin::MAX_POOL_SLOTS,
            },
        ))
    }
    .await;
    ctx.respond(res)
}

#[derive(Deserialize)]
pub struct PoolForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    slots: String,
    #[serde(default)]
    description: String,
}

/// `an admin`, `an operator`, `a viewer`.
fn with_article(role: Role) -> String {
    match role {
        Role::Viewer => "a viewer".into(),
        other => format!("an {}", other.as_str()),
    }
}

fn slots_text(slots: u32) -> String {
    if slots == 1 {
        "1 slot".into()
    } else {
        format!("{slots} slots")
    }
}

/// After a pool was created or resized: the scheduler woken (more slots
/// may let waiting task instances be queued) and the page again, with `ok`
/// or the refusal.
fn pool_written<T>(
    s: &AppState,
    ctx: &Ctx,
    written: Result<T, gale_actions::Error>,
    ok: String,
) -> Result<Response, UiError> {
    match written {
        Ok(_) => {
            if let Some(n) = &s.notifier {
                n.scheduler.notify_one();
            }
            Ok(ctx.redirect("/pools", Flash::ok(ok)))
        }
        Err(e) => refused(ctx, "/pools", e),
    }
}

/// Slots as typed into a form.
fn slots_of(text: &str) -> Result<u32, String> {
    text.trim().parse::<u32>().map_err(|_| {
        format!(
            "slots is a whole number from 0 to {}",
            admin::MAX_POOL_SLOTS
        )
    })
}

pub async fn create_pool(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Form(form): Form<PoolForm>,
) -> Response {
    let name = form.name.trim().to_owned();
    let description = Some(form.description.trim()).filter(|d| !d.is_empty());
    let res = match slots_of(&form.slots) {
        Err(msg) => Ok(ctx.redirect("/pools", Flash::error(msg))),
        Ok(slots) => {
            let written = admin::set_pool(
                &*s.store,
                &ctx.actor(),
                &name,
                slots,
                description,
                PoolWrite::Create,
            )
            .await;
            pool_written(
                &s,
                &ctx,
                written,
                format!("created pool {name} with {}", slots_text(slots)),
            )
        }
    };
    ctx.respond(res)
}

pub async fn set_slots(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(name): Path<String>,
    Form(form): Form<PoolForm>,
) -> Response {
    let res = async {
        let slots = match slots_of(&form.slots) {
            Ok(n) => n,
            Err(msg) => return Ok(ctx.redirect("/pools", Flash::error(msg))),
        };
        // The description is kept: this form changes the slots only.
        let description = s
            .store
            .list_pools()
            .await?
            .into_iter()
            .find(|p| p.name == name)
            .and_then(|p| p.description);
        let written = admin::set_pool(
            &*s.store,
            &ctx.actor(),
            &name,
            slots,
            description.as_deref(),
            PoolWrite::Update,
        )
        .await;
        pool_written(
            &s,
            &ctx,
            written,
            format!("pool {name} now has {}", slots_text(slots)),
        )
    }
    .await;
    ctx.respond(res)
}

pub async fn delete_pool(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Response {
    let res = match admin::delete_pool(&*s.store, &ctx.actor(), &name).await {
        Ok(()) => Ok(ctx.redirect("/pools", Flash::ok(format!("deleted pool {name}")))),
        Err(e) => refused(&ctx, "/pools", e),
    };
    ctx.respond(res)
}
