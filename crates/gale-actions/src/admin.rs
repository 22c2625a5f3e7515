//! What admins change about the installation rather than its workflows:
//! users' roles, users, API tokens and pools. Each change is audited like
//! every other action. A user is never deleted or demoted if that would
//! leave no admin (checked by the store in the change's own transaction),
//! and an admin does not delete their own user here: someone else must.

use gale_store::{Audit, AuditAction, Auth, Pools, Role, UserChange};
use serde_json::json;

use crate::audit::{Actor, audited, detail};
use crate::{Error, Result};

/// The pool every Airflow installation has; Gale keeps the name out of
/// reach of deletion so DAGs written for Airflow keep finding it once made.
pub const DEFAULT_POOL: &str = "default_pool";

/// The most slots a pool may have.
pub const MAX_POOL_SLOTS: u32 = 1_000_000;

/// Gives a user another role. Returns the role they had.
pub async fn set_user_role(
    store: &(impl Auth + Audit + ?Sized),
    actor: &Actor,
    name: &str,
    role: Role,
) -> Result<Role> {
    let result = async {
        let user = store
            .get_user(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no user {name}")))?;
        if user.role == role {
            return Err(Error::Conflict(format!(
                "{name} is already a {}",
                role.as_str()
            )));
        }
        user_changed(store.set_user_role(name, role).await?, name)?;
        Ok(user.role)
    }
    .await;
    audited(
        store,
        actor,
        AuditAction::UserRole,
        &format!("user/{name}"),
        detail([("role", json!(role.as_str()))]),
        result,
        |was, d| {
            d.insert("was".into(), json!(was.as_str()));
        },
    )
    .await
}

/// What the store's answer to a change of user `name` means for the caller.
fn user_changed(change: UserChange, name: &str) -> Result<()> {
    match change {
        UserChange::Done => Ok(()),
        UserChange::NotFound => Err(Error::NotFound(format!("no user {name}"))),
        UserChange::LastAdmin => Err(Error::Conflict(format!(
            "{name} is the last admin: make another user an admin first"
        ))),
    }
}

/// Deletes a user with their sessions and tokens; never the last admin, and
/// never the user `actor` is logged in as (`own_user`).
pub async fn delete_user(
    store: &(impl Auth + Audit + ?Sized),
    actor: &Actor,
    own_user: Option<&str>,
    name: &str,
) -> Result<()> {
    let result = async {
        if own_user == Some(name) {
            return Err(Error::Conflict(format!(
                "you are logged in as {name}: another admin must delete this user"
            )));
        }
        user_changed(store.delete_user_keeping_an_admin(name).await?, name)
    }
    .await;
    audited(
        store,
        actor,
        AuditAction::UserDelete,
        &format!("user/{name}"),
        serde_json::Map::new(),
        result,
        |_, _| {},
    )
    .await
}

/// Revokes an API token.
pub async fn revoke_token(
    store: &(impl Auth + Audit + ?Sized),
    actor: &Actor,
    id: i64,
) -> Result<()> {
    // Only for the audit entry's detail: a failure to read it is no reason
    // not to revoke.
    let token = store
        .list_tokens(None)
        .await
        .ok()
        .and_then(|tokens| tokens.into_iter().find(|t| t.id == id));
    let result = match store.revoke_token(id).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::NotFound(format!("no token {id}"))),
        Err(e) => Err(e.into()),
    };
    let about = match &token {
        Some(t) => detail([("user", json!(t.user)), ("name", json!(t.name))]),
        None => serde_json::Map::new(),
    };
    audited(
        store,
        actor,
        AuditAction::TokenRevoke,
        &format!("token/{id}"),
        about,
        result,
        |_, _| {},
    )
    .await
}

/// Which pools [`set_pool`] may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolWrite {
    /// A new pool only: one of that name is a `Conflict`.
    Create,
    /// An existing pool only: none of that name is `NotFound`.
    Update,
    /// Either.
    Either,
}

/// Creates a pool or changes its slots and description (audited as
/// `pool.create` or `pool.update`). Returns whether it was created.
pub async fn set_pool(
    store: &(impl Pools + Audit + ?Sized),
    actor: &Actor,
    name: &str,
    slots: u32,
    description: Option<&str>,
    mode: PoolWrite,
) -> Result<bool> {
    let mut was: Option<gale_store::PoolRow> = None;
    let result = async {
        if !gale_model::ids::is_valid_id(name) {
            return Err(Error::Invalid(format!(
                "invalid pool name {name:?}: use letters, digits, '_', '.' and '-' only"
            )));
        }
        if slots > MAX_POOL_SLOTS {
            return Err(Error::Invalid(format!(
                "a pool has at most {MAX_POOL_SLOTS} slots, not {slots}"
            )));
        }
        if description.is_some_and(|d| d.chars().count() > 1000) {
            return Err(Error::Invalid(
                "a pool's description is at most 1000 characters".into(),
            ));
        }
        was = store
            .list_pools()
            .await?
            .into_iter()
            .find(|p| p.name == name);
        match (mode, &was) {
            (PoolWrite::Create, Some(_)) => {
                return Err(Error::Conflict(format!(
                    "pool {name} exists: change its slots instead"
                )));
            }
            (PoolWrite::Update, None) => {
                return Err(Error::NotFound(format!("no pool {name}")));
            }
            _ => {}
        }
        store.set_pool(name, slots, description).await?;
        Ok(was.is_none())
    }
    .await;
    let action = if was.is_some() {
        AuditAction::PoolUpdate
    } else {
        AuditAction::PoolCreate
    };
    let mut about = detail([("slots", json!(slots))]);
    if let Some(d) = description {
        about.insert("description".into(), json!(d));
    }
    if let Some(old) = &was {
        about.insert("was_slots".into(), json!(old.slots));
    }
    audited(
        store,
        actor,
        action,
        &format!("pool/{name}"),
        about,
        result,
        |_, _| {},
    )
    .await
}

/// Deletes a pool (its tasks then wait until it exists again); never
/// [`DEFAULT_POOL`].
pub async fn delete_pool(
    store: &(impl Pools + Audit + ?Sized),
    actor: &Actor,
    name: &str,
) -> Result<()> {
    let result = if name == DEFAULT_POOL {
        Err(Error::Conflict(format!("{DEFAULT_POOL} cannot be deleted")))
    } else {
        match store.delete_pool(name).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::NotFound(format!("no pool {name}"))),
            Err(e) => Err(e.into()),
        }
    };
    audited(
        store,
        actor,
        AuditAction::PoolDelete,
        &format!("pool/{name}"),
        serde_json::Map::new(),
        result,
        |_, _| {},
    )
    .await
}
