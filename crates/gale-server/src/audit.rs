//! Where a request comes from, and who it is, for the audit log: the peer's
//! socket address (the server hands it to every request as axum's
//! `ConnectInfo`; behind a proxy that is the proxy's address), an [`Actor`]
//! from the caller's identity, and the login entries the login form and the
//! authentication middleware record.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::Extensions;
use axum::http::request::Parts;
use gale_actions::Actor;
use gale_store::{AuditAction, AuditOutcome, Store};
use serde_json::json;

use crate::auth::Identity;

/// The peer's socket address, or `unknown` when the server did not give one
/// (a router driven without a socket, as in tests).
pub fn peer_of(extensions: &Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The peer's address as an extractor (it never rejects a request).
#[derive(Clone, Debug)]
pub struct Peer(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(peer_of(&parts.extensions)))
    }
}

/// The actor of a request: its user (`anonymous` without authentication)
/// from its peer's address.
pub fn actor(identity: &Identity, peer: &str) -> Actor {
    Actor::new(identity.user.clone(), peer)
}

/// How a login was attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginVia {
    /// The login form (a session).
    Form,
    /// An API token (`Authorization: Bearer`).
    Token,
    /// A password for a new API token (`POST /api/v1/tokens`).
    Password,
}

/// Records a login: `user` is the name given (for a token that failed, the
/// empty name: a token names no one until it is found). `reason` says why
/// one failed; never the password or the token.
pub async fn record_login(
    store: &dyn Store,
    user: &str,
    peer: &str,
    via: LoginVia,
    outcome: AuditOutcome,
    reason: Option<&str>,
) {
    let via_name = match via {
        LoginVia::Form => "form",
        LoginVia::Token => "token",
        LoginVia::Password => "password for a token",
    };
    let mut detail = gale_actions::audit::detail([("via", json!(via_name))]);
    if let Some(r) = reason {
        detail.insert("reason".into(), json!(r));
    }
    let (actor, target) = match user {
        "" => ("unknown".to_owned(), String::new()),
        u => (u.to_owned(), format!("user/{u}")),
    };
    gale_actions::audit::record(
        store,
        &Actor::new(actor, peer),
        AuditAction::Login,
        &target,
        detail,
        outcome,
    )
    .await;
}

/// The login form's answer for `user`: a session opened, or a wrong name or
/// password.
pub async fn form_login(store: &dyn Store, user: &str, peer: &str, ok: bool) {
    let (outcome, reason) = match ok {
        true => (AuditOutcome::Success, None),
        false => (AuditOutcome::Failure, Some("wrong user name or password")),
    };
    record_login(store, user, peer, LoginVia::Form, outcome, reason).await;
}

/// A bearer token refused (malformed, unknown, revoked or expired), from the
/// request's peer.
pub async fn token_refused(store: &dyn Store, extensions: &Extensions, reason: &str) {
    let peer = peer_of(extensions);
    let failure = AuditOutcome::Failure;
    record_login(store, "", &peer, LoginVia::Token, failure, Some(reason)).await;
}
