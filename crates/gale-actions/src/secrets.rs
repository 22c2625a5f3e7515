//! Setting, deleting and revealing variables and connections, importing and
//! exporting them, and rotating the key they are sealed under. Each is one
//! audit entry (an import, one per name); no value ever goes into an entry.
//! Who may do which is the face's to check: setting, revealing, exporting and
//! rotating are for admins.

use gale_model::secrets::{Connection, Variable};
use gale_secrets::{Rotation, Vault};
use gale_store::{Audit, AuditAction};
use serde_json::Value;

use crate::audit::{Actor, audited, detail};
use crate::{Error, Result};

impl From<gale_secrets::Error> for Error {
    fn from(e: gale_secrets::Error) -> Error {
        match e {
            gale_secrets::Error::Store(e) => Error::Store(e),
            gale_secrets::Error::Sealed(m) => Error::Inconsistent(m),
            other => Error::Invalid(other.to_string()),
        }
    }
}

fn var_target(name: &str) -> String {
    format!("variable/{name}")
}

fn conn_target(name: &str) -> String {
    format!("connection/{name}")
}

/// Creates or replaces a variable.
pub async fn set_variable(
    store: &(impl Audit + ?Sized),
    vault: &Vault,
    actor: &Actor,
    name: &str,
    v: &Variable,
) -> Result<()> {
    let result = vault.set_variable(name, v).await.map_err(Error::from);
    let d = detail([
        ("secret", Value::Bool(v.secret)),
        ("json", Value::Bool(v.json)),
    ]);
    audited(
        store,
        actor,
        AuditAction::VariableSet,
        &var_target(name),
        d,
        result,
        |_, _| {},
    )
    .await
}

/// Deletes a variable; one that does not exist is `NotFound`.
pub async fn delete_variable(
    store: &(impl Audit + ?Sized),
    vault: &Vault,
    actor: &Actor,
    name: &str,
) -> Result<()> {
    let result = match vault.delete_variable(name).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotFound(format!("no variable {name}"))),
        Err(e) => Err(e.into()),
    };
    let target = var_target(name);
    audited(
        store,
        actor,
        AuditAction::VariableDelete,
        &target,
        Default::default(),
        result,
        |_, _| {},
    )
    .await
}

/// A variable's value in clear: recorded as a reveal when it is secret.
pub async fn reveal_variable(
    store: &(impl Audit + ?Sized),
    vault: &Vault,
    actor: &Actor,
    name: &str,
) -> Result<Variable> {
    let result = match vault.variable(name).await {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(Error::NotFound(format!("no variable {name}"))),
        Err(e) => Err(e.into()),
    };
    if matches!(&result, Ok(v) if !v.secret) {
        return result;
    }
    let target = var_target(name);
    audited(
        store,
        actor,
        AuditAction::VariableReveal,
        &target,
        Default::default(),
        result,
        |_, _| {},
    )
    .await
}

/// Creates or replaces a connection.
pub async fn set_connection(
    store: &(impl Audit + ?Sized),
    vault: &Vault,
    actor: &Actor,
    name: &str,
    c: &Connection,
) -> Result<()> {
    let result = vault.set_connection(name, c).await.map_err(Error::from);
    let d = detail([("conn_type", Value::String(c.conn_type.clone()))]);
    audited(
        store,
        actor,
        AuditAction::ConnectionSet,
        &conn_target(name),
        d,
        result,
        |_, _| {},
    )
    .await
}

/// Deletes a connection; one that does not exist is `NotFound`.
pub async fn delete_connection(
    store: &(impl Audit + ?Sized),
    vault: &Vault,
    actor: &Actor,
    name: &str,
) -> Result<()> {
    let result = match vault.delete_connection(name).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotFound(format!("no connection {name}"))),
        Err(e) => Err(e.into()),
    };
    let target = conn_target(name);
    audited(
        store,
        actor,
        AuditAction::ConnectionDelete,
        &target,
        Default::default(),
        result,
        |_, _| {},
    )
    .await
}

/// A connection with its password and extra in clear: recorded as a reveal.
pub async fn reveal_connection(
    store: &(impl Audit + ?Sized),
    vault: &Vault,
    actor: &Actor,
    name: &str,
) -> Result<Connection> {
    let result = match vault.connection(name).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(Error::NotFound(format!("no connection {name}"))),
        Err(e) => Err(e.into()),
    };
    let target = conn_target(name);
    audited(
        store,
        actor,
        AuditAction::ConnectionReveal,
        &target,
        Default::default(),
        result,
        |_, _| {},
    )
    .await
}

/// Every variable in clear, for an export: one reveal entry (`variable/*`).
pub async fn export_variables(
    store: &(impl Audit + ?Sized),
    vault: &Vault,
    actor: &Actor,
) -> Result<Vec<(String, Variable)>> {
    let result = vault.variables_opened().await.map_err(Error::from);
    audited(
        store,
        actor,
        AuditAction::VariableReveal,
        "variable/*",
        detail([("export", Value::Bool(true))]),
        result,
        |v, d| {
            d.insert("count".into(), Value::from(v.len()));
        },
    )
    .await
}

/// Every connection in clear, for an export: one reveal entry (`connection/*`).
pub async fn export_connections(
    store: &(impl Audit + ?Sized),
    vault: &Vault,
    actor: &Actor,
) -> Result<Vec<(String, Connection)>> {
    let result = vault.connections_opened().await.map_err(Error::from);
    audited(
        store,
        actor,
        AuditAction::ConnectionReveal,
        "connection/*",
        detail([("export", Value::Bool(true))]),
        result,
        |v, d| {
            d.insert("count".into(), Value::from(v.len()));
        },
    )
    .await
}

/// Re-seals every value under the current key (see [`Vault::rotate`]).
pub async fn rotate_key(
    store: &(impl Audit + ?Sized),
    vault: &Vault,
    actor: &Actor,
) -> Result<Rotation> {
    let result = vault.rotate().await.map_err(Error::from);
    audited(
        store,
        actor,
        AuditAction::SecretsRotate,
        "secrets",
        Default::default(),
        result,
        |r, d| {
            d.insert("key_id".into(), Value::String(r.key_id.clone()));
            d.insert("resealed".into(), Value::from(r.resealed));
            d.insert("not_opened".into(), Value::from(r.not_opened));
        },
    )
    .await
}
