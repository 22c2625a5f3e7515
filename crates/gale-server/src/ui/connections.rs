//! The connections pages: the list (everyone; the password and secret-looking
//! extra values as `***`) with the add form (a URI or the fields), and a
//! connection's page with its edit and delete forms (admins; the auth
//! middleware refuses everyone else's posts). The password is a password
//! field, never filled in: left empty on edit, it keeps the password; extra
//! values shown as `***` keep theirs.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::variables::page_error;
use super::{ActionError, Ctx, Flash, Layout, UiError, format};
use crate::AppState;
use crate::auth::url_escape;
use crate::vault::{self, ConnectionEdit, ConnectionView};

pub(crate) struct ConnectionLine {
    pub name: String,
    pub href: String,
    pub conn_type: String,
    pub host: String,
    pub port: String,
    pub login: String,
    /// `***`, or empty when it has none.
    pub password: String,
    pub schema: String,
    /// The extra as JSON, secret-looking values as `***`.
    pub extra: String,
    pub description: String,
    pub updated: String,
}

impl From<ConnectionView> for ConnectionLine {
    fn from(c: ConnectionView) -> ConnectionLine {
        ConnectionLine {
            href: format!("/connections/{}", url_escape(&c.name)),
            name: c.name,
            conn_type: c.conn_type,
            host: c.host.unwrap_or_default(),
            port: c.port.map(|p| p.to_string()).unwrap_or_default(),
            login: c.login.unwrap_or_default(),
            password: c.password.unwrap_or_default(),
            schema: c.schema.unwrap_or_default(),
            extra: if c.extra.is_empty() {
                String::new()
            } else {
                serde_json::to_string_pretty(&c.extra).unwrap_or_default()
            },
            description: c.description.unwrap_or_default(),
            updated: format::ts_opt(c.updated_at),
        }
    }
}

/// What the add or edit form shows again: never the password or the URI.
#[derive(Default)]
pub(crate) struct ConnectionFormView {
    pub name: String,
    pub conn_type: String,
    pub host: String,
    pub port: String,
    pub login: String,
    pub schema: String,
    /// The extra as JSON (masked), on the edit form only.
    pub extra: String,
    pub description: String,
    pub error: String,
    /// The edit form (not the add form).
    pub editing: bool,
    /// The connection being edited has a password (kept when left empty).
    pub has_password: bool,
}

#[derive(Template)]
#[template(path = "connections.html")]
struct ListPage {
    page: Layout,
    lines: Vec<ConnectionLine>,
    form: ConnectionFormView,
    has_key: bool,
}

#[derive(Template)]
#[template(path = "connection.html")]
struct ConnectionPage {
    page: Layout,
    c: ConnectionLine,
    form: ConnectionFormView,
    action: String,
    delete: String,
}

#[derive(Deserialize)]
pub struct ConnectionForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    uri: String,
    #[serde(default)]
    conn_type: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    clear_password: Option<String>,
    #[serde(default)]
    schema: String,
    #[serde(default)]
    extra: String,
    #[serde(default)]
    description: String,
}

impl ConnectionForm {
    fn shown(&self, extra: String, error: String) -> ConnectionFormView {
        ConnectionFormView {
            name: self.name.trim().to_owned(),
            conn_type: self.conn_type.clone(),
            host: self.host.clone(),
            port: self.port.clone(),
            login: self.login.clone(),
            schema: self.schema.clone(),
            extra,
            description: self.description.clone(),
            error,
            editing: false,
            has_password: false,
        }
    }

    /// The edit the fields make (not the URI). `keep_password`: an empty
    /// password field keeps the current one (editing), unless
    /// `clear_password` is ticked.
    fn fields(&self, keep_password: bool) -> Result<ConnectionEdit, String> {
        let port = match self.port.trim() {
            "" => None,
            p => Some(vault::port_of(p)?),
        };
        let password = if self.clear_password.is_some() {
            Some(String::new())
        } else if keep_password && self.password.is_empty() {
            None
        } else {
            Some(self.password.clone())
        };
        Ok(ConnectionEdit {
            uri: None,
            conn_type: Some(self.conn_type.clone()),
            host: Some(self.host.clone()),
            port,
            login: Some(self.login.clone()),
            password,
            schema: Some(self.schema.clone()),
            extra: Some(vault::extra_of(&self.extra)?),
            description: Some(self.description.clone()),
        })
    }

    /// The add form's edit: the URI, or the fields.
    fn new_connection(&self) -> Result<ConnectionEdit, String> {
        if self.uri.trim().is_empty() {
            return self.fields(false);
        }
        let fields = [
            &self.conn_type,
            &self.host,
            &self.port,
            &self.login,
            &self.password,
            &self.schema,
            &self.extra,
        ];
        if fields.iter().any(|f| !f.trim().is_empty()) {
            return Err("give either the URI or the fields, not both".into());
        }
        Ok(ConnectionEdit {
            uri: Some(self.uri.trim().to_owned()),
            description: Some(self.description.clone()),
            ..ConnectionEdit::default()
        })
    }
}

async fn render_list(
    s: &AppState,
    ctx: &Ctx,
    form: ConnectionFormView,
    status: StatusCode,
) -> Result<Response, UiError> {
    let lines = vault::connections(s)
        .await
        .map_err(page_error)?
        .into_iter()
        .map(ConnectionLine::from)
        .collect();
    Ok(ctx.page(
        status,
        &ListPage {
            page: ctx.layout("connections"),
            lines,
            form,
            has_key: s.vault.has_key(),
        },
    ))
}

pub async fn list(State(s): State<Arc<AppState>>, ctx: Ctx) -> Response {
    let res = render_list(&s, &ctx, ConnectionFormView::default(), StatusCode::OK).await;
    ctx.respond(res)
}

pub async fn add(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Form(form): Form<ConnectionForm>,
) -> Response {
    let name = form.name.trim().to_owned();
    let res = async {
        let saved = match form.new_connection() {
            Ok(edit) => vault::save_connection(&s, &ctx.actor(), &name, edit, true)
                .await
                .map_err(ActionError::from),
            Err(msg) => Err(ActionError::Refused(msg)),
        };
        match saved {
            Ok(_) => Ok(ctx.redirect(
                "/connections",
                Flash::ok(format!("added connection {name}")),
            )),
            Err(ActionError::Page(p)) => Err(p),
            Err(ActionError::Refused(msg)) => {
                // The extra may hold secrets: it is typed again.
                let shown = form.shown(String::new(), msg);
                render_list(&s, &ctx, shown, StatusCode::BAD_REQUEST).await
            }
        }
    }
    .await;
    ctx.respond(res)
}

async fn render_page(
    s: &AppState,
    ctx: &Ctx,
    name: &str,
    refused: Option<(&ConnectionForm, String)>,
) -> Result<Response, UiError> {
    let c: ConnectionLine = vault::connection(s, name).await.map_err(page_error)?.into();
    let (mut form, status) = match refused {
        // The stored extra (masked), not what was typed: it may hold secrets.
        Some((form, error)) => (form.shown(c.extra.clone(), error), StatusCode::BAD_REQUEST),
        None => (
            ConnectionFormView {
                name: c.name.clone(),
                conn_type: c.conn_type.clone(),
                host: c.host.clone(),
                port: c.port.clone(),
                login: c.login.clone(),
                schema: c.schema.clone(),
                extra: c.extra.clone(),
                description: c.description.clone(),
                ..ConnectionFormView::default()
            },
            StatusCode::OK,
        ),
    };
    form.editing = true;
    form.has_password = !c.password.is_empty();
    let href = format!("/connections/{}", url_escape(name));
    Ok(ctx.page(
        status,
        &ConnectionPage {
            page: ctx.layout("connections"),
            c,
            form,
            delete: format!("{href}/delete"),
            action: href,
        },
    ))
}

pub async fn page(State(s): State<Arc<AppState>>, ctx: Ctx, Path(name): Path<String>) -> Response {
    let res = render_page(&s, &ctx, &name, None).await;
    ctx.respond(res)
}

pub async fn save(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(name): Path<String>,
    Form(form): Form<ConnectionForm>,
) -> Response {
    let res = async {
        // A page for a connection that is not there, before anything else.
        vault::connection(&s, &name).await.map_err(page_error)?;
        let saved = match form.fields(true) {
            Ok(edit) => vault::save_connection(&s, &ctx.actor(), &name, edit, false)
                .await
                .map_err(ActionError::from),
            Err(msg) => Err(ActionError::Refused(msg)),
        };
        match saved {
            Ok(_) => Ok(ctx.redirect(
                "/connections",
                Flash::ok(format!("saved connection {name}")),
            )),
            Err(ActionError::Page(p)) => Err(p),
            Err(ActionError::Refused(msg)) => {
                render_page(&s, &ctx, &name, Some((&form, msg))).await
            }
        }
    }
    .await;
    ctx.respond(res)
}

pub async fn delete(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(name): Path<String>,
) -> Response {
    let res = match vault::delete_connection(&s, &ctx.actor(), &name).await {
        Ok(()) => Ok(ctx.redirect(
            "/connections",
            Flash::ok(format!("deleted connection {name}")),
        )),
        Err(e) => match ActionError::from(e) {
            ActionError::Page(p) => Err(p),
            ActionError::Refused(msg) => Ok(ctx.redirect("/connections", Flash::error(msg))),
        },
    };
    ctx.respond(res)
}
