//! Who asks for an action and from where ([`Actor`]), and the audit entry
//! that records it. Every action of this crate records one entry, whether it
//! happened or was refused; the faces record their own changes (users, tokens,
//! pools, logins) with [`record`]. An entry is written after the change, as a
//! write of its own: one that cannot be written is logged and does not undo
//! the change.

use gale_store::{Audit, AuditAction, AuditEntry, AuditOutcome};
use serde_json::{Map, Value};

use crate::Error;

/// Who asked for an action, and from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// A user name, `anonymous` (authentication turned off) or
    /// `cli:<OS user>`.
    pub name: String,
    /// The client's address, or `cli`.
    pub origin: String,
}

impl Actor {
    pub fn new(name: impl Into<String>, origin: impl Into<String>) -> Actor {
        Actor {
            name: name.into(),
            origin: origin.into(),
        }
    }

    /// The command line, run by the OS user `user` (`cli:<user>`, from `cli`).
    pub fn cli(user: Option<&str>) -> Actor {
        let user = user.filter(|u| !u.is_empty()).unwrap_or("unknown");
        Actor::new(format!("cli:{user}"), "cli")
    }
}

/// Records an audit entry. A store that fails to record it is logged, not
/// returned: the change it describes has already been made.
pub async fn record(
    store: &(impl Audit + ?Sized),
    actor: &Actor,
    action: AuditAction,
    target: &str,
    detail: Map<String, Value>,
    outcome: AuditOutcome,
) {
    let entry = AuditEntry {
        actor: actor.name.clone(),
        origin: actor.origin.clone(),
        action,
        target: target.to_owned(),
        detail,
        outcome,
    };
    if let Err(e) = store.record_audit(&entry).await {
        tracing::error!(
            error = %e,
            actor = %entry.actor,
            origin = %entry.origin,
            action = %action,
            target = %entry.target,
            outcome = outcome.as_str(),
            "cannot record an audit entry"
        );
    }
}

/// What an action's error says in its audit entry: the refusal as told, a
/// store failure only as such (its text goes to the log, as it never reaches
/// clients).
pub fn error_text(e: &Error) -> String {
    match e {
        Error::Store(gale_store::Error::Invalid(msg)) => msg.clone(),
        Error::Store(_) => "the database failed".to_owned(),
        other => other.to_string(),
    }
}

/// Records an action's entry from its result (success, with what `on_ok`
/// adds to the detail, or failure, with the error) and hands the result back.
pub(crate) async fn audited<T>(
    store: &(impl Audit + ?Sized),
    actor: &Actor,
    action: AuditAction,
    target: &str,
    mut detail: Map<String, Value>,
    result: Result<T, Error>,
    on_ok: impl FnOnce(&T, &mut Map<String, Value>),
) -> Result<T, Error> {
    let outcome = match &result {
        Ok(v) => {
            on_ok(v, &mut detail);
            AuditOutcome::Success
        }
        Err(e) => {
            detail.insert("error".into(), Value::String(error_text(e)));
            AuditOutcome::Failure
        }
    };
    record(store, actor, action, target, detail, outcome).await;
    result
}

/// A detail object from `(key, value)` pairs.
pub fn detail<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The keys of a conf object (its values may be secrets, so they are never
/// recorded), at most 100 of them.
pub fn conf_keys(conf: &Map<String, Value>) -> Value {
    Value::Array(
        conf.keys()
            .take(100)
            .map(|k| Value::String(k.clone()))
            .collect(),
    )
}
