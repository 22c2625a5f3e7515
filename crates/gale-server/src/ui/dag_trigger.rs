//! The DAG page's trigger tab: the form built from the DAG's params, and the
//! handler that turns what was submitted into a conf and triggers the run
//! (through `gale_actions`, audited there), or shows the form again with each
//! refusal at its field.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use gale_model::DagId;

use super::dag::{Tab, TriggerView, render};
use super::params_form::{self, Field};
use super::{ActionError, Ctx, Flash, current_dag, dag_id_of};
use crate::AppState;
use crate::auth::url_escape;

// ------------------------------------------------------------------ trigger

/// The trigger form: a field per param (secrets left out: they keep their
/// values, since conf is merged over params), each filled with its default,
/// and an empty advanced JSON box.
pub(super) fn trigger_form(dag_id: &DagId, spec: &gale_model::Dag) -> TriggerView {
    TriggerView {
        action: format!("/dags/{}/trigger", url_escape(&dag_id.0)),
        fields: params_form::fields(spec),
        conf: String::new(),
        logical_date: String::new(),
        error: String::new(),
        hidden_secrets: params_form::has_hidden(spec),
    }
}

/// The trigger form's pairs: `conf` (the advanced JSON box), `logical_date`,
/// and one `param.<key>` per param field (the last of a name counts).
struct TriggerForm {
    conf: String,
    logical_date: String,
    pairs: Vec<(String, String)>,
}

impl TriggerForm {
    fn of(pairs: Vec<(String, String)>) -> TriggerForm {
        let last = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        TriggerForm {
            conf: last("conf"),
            logical_date: last("logical_date"),
            pairs: pairs
                .iter()
                .filter(|(k, _)| k.starts_with(params_form::FIELD_PREFIX))
                .cloned()
                .collect(),
        }
    }
}

/// The conf a person typed: empty is `{}`; anything but a JSON object is
/// refused with a message saying what is wrong.
pub(crate) fn parse_conf(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    if text.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err("conf must be a JSON object, like {\"key\": \"value\"}".to_owned()),
        Err(e) => Err(format!("conf is not valid JSON: {e}")),
    }
}

pub async fn trigger(
    State(s): State<Arc<AppState>>,
    ctx: Ctx,
    Path(dag_id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let form = TriggerForm::of(pairs);
    let res = async {
        let dag_id = dag_id_of(dag_id)?;
        let (_, current) = current_dag(&*s.store, &dag_id).await?;
        let spec = &current.spec;
        let mut fields = params_form::fields(spec);
        let refused = |error: String, fields: Vec<Field>| {
            let view = TriggerView {
                action: format!("/dags/{}/trigger", url_escape(&dag_id.0)),
                fields,
                conf: form.conf.clone(),
                logical_date: form.logical_date.clone(),
                error,
                hidden_secrets: params_form::has_hidden(spec),
            };
            Tab::Trigger(Some(view))
        };
        let attempt = async {
            let advanced = parse_conf(&form.conf).map_err(ActionError::Refused)?;
            let conf = match params_form::conf_of(spec, &form.pairs, advanced) {
                Ok(conf) => conf,
                Err((typed, mut errors)) => {
                    let bad: Vec<&str> = typed
                        .iter()
                        .filter(|f| !f.error.is_empty())
                        .map(|f| f.key.as_str())
                        .collect();
                    if !bad.is_empty() {
                        errors.insert(
                            0,
                            format!(
                                "not triggered: see the param{} {}",
                                if bad.len() == 1 { "" } else { "s" },
                                bad.join(", ")
                            ),
                        );
                    }
                    fields = typed;
                    return Err(ActionError::Refused(errors.join("; ")));
                }
            };
            let date = Some(form.logical_date.trim()).filter(|d| !d.is_empty());
            gale_actions::trigger(&*s.store, &ctx.actor(), &dag_id, conf, date)
                .await
                .map_err(ActionError::from)
        };
        let outcome = attempt.await;
        match outcome {
            Ok(run) => {
                if let Some(n) = &s.notifier {
                    n.scheduler.notify_one();
                }
                Ok(ctx.redirect(
                    &format!("/dags/{}", url_escape(&dag_id.0)),
                    Flash::ok(format!("triggered run {} ({})", run.id, run.run_key)),
                ))
            }
            Err(ActionError::Page(e)) => Err(e),
            Err(ActionError::Refused(msg)) => {
                // Keep what was typed in every field, the failing ones marked.
                if fields.iter().all(|f| f.error.is_empty()) {
                    fields = params_form::typed(spec, &form.pairs);
                }
                let tab = refused(msg, fields);
                render(&s, &ctx, &dag_id, tab, StatusCode::BAD_REQUEST).await
            }
        }
    }
    .await;
    ctx.respond(res)
}
