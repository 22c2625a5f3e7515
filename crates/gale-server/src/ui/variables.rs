//! The variables pages: the list (everyone; a secret value as `***`) with the
//! add form, and a variable's page with its edit and delete forms (admins;
//! the auth middleware refuses everyone else's posts). A secret value is a
//! password field, never filled in: left empty on edit, it keeps the value.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gale_model::mask::is_secret_key;
use serde::Deserialize;

use super::{ActionError, Ctx, Flash, Layout, UiError, format};
use crate::AppState;
use crate::auth::url_escape;
use crate::vault::{self, VariableEdit, VariableView};

pub(crate) struct VariableLine {
    pub name: String,
    pub href: String,
    pub value: String,
    pub secret: bool,
    pub json: bool,
    pub description: String,
    pub updated: String,
}

impl From<VariableView> for VariableLine {
    fn from(v: VariableView) -> VariableLine {
        VariableLine {
            href: format!("/variables/{}", url_escape(&v.name)),
            name: v.name,
            value: v.value,
            secret: v.secret,
            json: v.json,
            description: v.description.unwrap_or_default(),
            updated: format::ts_opt(v.updated_at),
        }
    }
}

/// What the add or edit form shows: never a secret value.
#[derive(Default)]
pub(crate) struct VariableFormView {
    pub name: String,
    /// The current value of a non-secret variable, else empty.
    pub value: String,
    pub secret: bool,
    pub json: bool,
    pub description: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "variables.html")]
struct ListPage {
    page: Layout,
    lines: Vec<VariableLine>,
    form: VariableFormView,
    has_key: bool,
}

#[derive(Template)]
#[template(path = "variable.html")]
struct VariablePage {
    page: Layout,
    v: VariableLine,
    form: VariableFormView,
    action: String,
    delete: String,
}

#[derive(Deserialize)]
pub struct VariableForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
    secret: Option<String>,
    json: Option<String>,
    #[serde(default)]
    description: String,
}

impl VariableForm {
    /// What to show again after a refusal of `name`: the value only if it
    /// is not to be secret (by the box or by the name).
    fn shown(&self, name: &str, error: String) -> VariableFormView {
        let secret = self.secret.is_some() || is_secret_key(name);
        VariableFormView {
            name: name.to_owned(),
            value: if secret {
                String::new()
            } else {
                self.value.clone()
            },
            secret,
            json: self.json.is_some(),
            description: self.description.clone(),
            error,
        }
    }
}

async fn render_list(
    s: &AppState,
    ctx: &Ctx,
    form: VariableFormView,
    status: StatusCode,
) -> Result<Response, UiError> {
    let lines = vault::variables(s)
        .await
        .map_err(page_error)?
        .into_iter()
        .map(VariableLine::from)
        .collect();
    Ok(ctx.page(
        status,
        &ListPage {
            page: ctx.layout("variables"),
            lines,
            form,
            has_key: s.vault.has_key(),
        },
    ))
}

/// A failure reading: the page for it.
pub(crate) fn page_error(e: gale_actions::Error) -> UiError {
    match ActionError::from(e) {
        ActionError::Page(p) => p,
        ActionError::Refused(msg) => UiError::BadRequest(msg),
    }
}

pub async fn list(State(s): State<Arc<AppState>>, ctx: Ctx) -> Response {
    let form = VariableFormView {
        secret: true,
        ..VariableFormView::default()
    };
    let res = render_list(&s, &ctx, form, StatusCode::OK).await;
    ctx.respond(res)
}

pub async fn add(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Form(form): Form<VariableForm>,
) -> Response {
    let name = form.name.trim().to_owned();
    let edit = VariableEdit {
        value: Some(form.value.clone()),
        json: Some(form.json.is_some()),
        secret: Some(form.secret.is_some()),
        description: Some(form.description.clone()),
    };
    let res = match vault::save_variable(&s, &ctx.actor(), &name, edit, true).await {
        Ok(_) => Ok(ctx.redirect("/variables", Flash::ok(format!("added variable {name}")))),
        Err(e) => match ActionError::from(e) {
            ActionError::Page(p) => Err(p),
            ActionError::Refused(msg) => {
                render_list(&s, &ctx, form.shown(&name, msg), StatusCode::BAD_REQUEST).await
            }
        },
    };
    ctx.respond(res)
}

async fn render_page(
    s: &AppState,
    ctx: &Ctx,
    name: &str,
    error: Option<(VariableFormView, StatusCode)>,
) -> Result<Response, UiError> {
    let v = vault::variable(s, name).await.map_err(page_error)?;
    let (form, status) = error.unwrap_or_else(|| {
        let form = VariableFormView {
            name: v.name.clone(),
            value: if v.secret {
                String::new()
            } else {
                v.value.clone()
            },
            secret: v.secret,
            json: v.json,
            description: v.description.clone().unwrap_or_default(),
            error: String::new(),
        };
        (form, StatusCode::OK)
    });
    let href = format!("/variables/{}", url_escape(name));
    Ok(ctx.page(
        status,
        &VariablePage {
            page: ctx.layout("variables"),
            v: v.into(),
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
    Form(form): Form<VariableForm>,
) -> Response {
    let res = async {
        let current = vault::variable(&s, &name).await.map_err(page_error)?;
        // An empty password field keeps a secret value.
        let value = Some(form.value.clone()).filter(|v| !(current.secret && v.is_empty()));
        let edit = VariableEdit {
            value,
            json: Some(form.json.is_some()),
            secret: Some(form.secret.is_some()),
            description: Some(form.description.clone()),
        };
        match vault::save_variable(&s, &ctx.actor(), &name, edit, false).await {
            Ok(_) => Ok(ctx.redirect("/variables", Flash::ok(format!("saved variable {name}")))),
            Err(e) => match ActionError::from(e) {
                ActionError::Page(p) => Err(p),
                ActionError::Refused(msg) => {
                    let refused = Some((form.shown(&name, msg), StatusCode::BAD_REQUEST));
                    render_page(&s, &ctx, &name, refused).await
                }
            },
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
    let res = match vault::delete_variable(&s, &ctx.actor(), &name).await {
        Ok(()) => Ok(ctx.redirect("/variables", Flash::ok(format!("deleted variable {name}")))),
        Err(e) => match ActionError::from(e) {
            ActionError::Page(p) => Err(p),
            ActionError::Refused(msg) => Ok(ctx.redirect("/variables", Flash::error(msg))),
        },
    };
    ctx.respond(res)
}
