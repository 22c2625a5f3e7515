//! The audit log: who changed what, when, from where, and whether it worked.
//! Every state-changing action people take (through the API, the UI or the
//! command line) and every login is one entry. The log is bounded: it keeps the
//! newest [`AUDIT_KEEP`] entries, and each new entry drops the ones that fall
//! out of that window.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;

use crate::*;

/// The most entries the audit log keeps: recording an entry removes those more
/// than this many ids older (ids are given out in order, so never more than
/// this many remain).
pub const AUDIT_KEEP: u64 = 100_000;

/// What an audit entry records someone doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditAction {
    DagPause,
    DagUnpause,
    DagDelete,
    DagPush,
    RunTrigger,
    RunCancel,
    RunMark,
    RunClear,
    TaskMark,
    BackfillCreate,
    BackfillCancel,
    PoolCreate,
    PoolUpdate,
    PoolDelete,
    UserCreate,
    UserDelete,
    UserRole,
    UserPassword,
    TokenCreate,
    TokenRevoke,
    Login,
    Logout,
    VariableSet,
    VariableDelete,
    VariableReveal,
    ConnectionSet,
    ConnectionDelete,
    ConnectionReveal,
    SecretsRotate,
    AlertChannelSet,
    AlertChannelDelete,
    AlertChannelTest,
}

impl AuditAction {
    /// Every action, in the order the reference lists them.
    pub const ALL: [AuditAction; 32] = [
        AuditAction::DagPause,
        AuditAction::DagUnpause,
        AuditAction::DagDelete,
        AuditAction::DagPush,
        AuditAction::RunTrigger,
        AuditAction::RunCancel,
        AuditAction::RunMark,
        AuditAction::RunClear,
        AuditAction::TaskMark,
        AuditAction::BackfillCreate,
        AuditAction::BackfillCancel,
        AuditAction::PoolCreate,
        AuditAction::PoolUpdate,
        AuditAction::PoolDelete,
        AuditAction::UserCreate,
        AuditAction::UserDelete,
        AuditAction::UserRole,
        AuditAction::UserPassword,
        AuditAction::TokenCreate,
        AuditAction::TokenRevoke,
        AuditAction::Login,
        AuditAction::Logout,
        AuditAction::VariableSet,
        AuditAction::VariableDelete,
        AuditAction::VariableReveal,
        AuditAction::ConnectionSet,
        AuditAction::ConnectionDelete,
        AuditAction::ConnectionReveal,
        AuditAction::SecretsRotate,
        AuditAction::AlertChannelSet,
        AuditAction::AlertChannelDelete,
        AuditAction::AlertChannelTest,
    ];

    /// The stored and shown name, e.g. `run.trigger`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::DagPause => "dag.pause",
            AuditAction::DagUnpause => "dag.unpause",
            AuditAction::DagDelete => "dag.delete",
            AuditAction::DagPush => "dag.push",
            AuditAction::RunTrigger => "run.trigger",
            AuditAction::RunCancel => "run.cancel",
            AuditAction::RunMark => "run.mark",
            AuditAction::RunClear => "run.clear",
            AuditAction::TaskMark => "task.mark",
            AuditAction::BackfillCreate => "backfill.create",
            AuditAction::BackfillCancel => "backfill.cancel",
            AuditAction::PoolCreate => "pool.create",
            AuditAction::PoolUpdate => "pool.update",
            AuditAction::PoolDelete => "pool.delete",
            AuditAction::UserCreate => "user.create",
            AuditAction::UserDelete => "user.delete",
            AuditAction::UserRole => "user.role",
            AuditAction::UserPassword => "user.password",
            AuditAction::TokenCreate => "token.create",
            AuditAction::TokenRevoke => "token.revoke",
            AuditAction::Login => "login",
            AuditAction::Logout => "logout",
            AuditAction::VariableSet => "variable.set",
            AuditAction::VariableDelete => "variable.delete",
            AuditAction::VariableReveal => "variable.reveal",
            AuditAction::ConnectionSet => "connection.set",
            AuditAction::ConnectionDelete => "connection.delete",
            AuditAction::ConnectionReveal => "connection.reveal",
            AuditAction::SecretsRotate => "secrets.rotate",
            AuditAction::AlertChannelSet => "alert_channel.set",
            AuditAction::AlertChannelDelete => "alert_channel.delete",
            AuditAction::AlertChannelTest => "alert_channel.test",
        }
    }

    pub fn parse(s: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Every name, comma-separated (for messages that list what is accepted).
    pub fn names() -> String {
        AuditAction::ALL.map(AuditAction::as_str).join(", ")
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Whether the action happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    Success,
    /// Refused or failed (the entry's detail says why); nothing changed.
    Failure,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<AuditOutcome> {
        match s {
            "success" => Some(AuditOutcome::Success),
            "failure" => Some(AuditOutcome::Failure),
            _ => None,
        }
    }
}

/// A new audit entry; the store gives it its id and time.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    /// Who: a user name, `anonymous` (no authentication), `cli:<OS user>`,
    /// or for a failed login the name that was tried.
    pub actor: String,
    /// From where: the client's address, or `cli`.
    pub origin: String,
    pub action: AuditAction,
    /// What it acted on, as a path: `dag/<id>`, `run/<id>`,
    /// `run/<id>/task/<task>`, `pool/<name>`, `user/<name>`, `token/<id>`.
    pub target: String,
    /// What else the action needs to be understood (never a password, a
    /// token's secret or a conf value).
    pub detail: serde_json::Map<String, serde_json::Value>,
    pub outcome: AuditOutcome,
}

/// A recorded audit entry.
#[derive(Clone, Debug, Serialize)]
pub struct AuditRow {
    pub id: i64,
    /// When the store recorded it (the store's clock).
    pub at: Timestamp,
    pub actor: String,
    pub origin: String,
    pub action: AuditAction,
    pub target: String,
    pub detail: serde_json::Map<String, serde_json::Value>,
    pub outcome: AuditOutcome,
}

/// Which entries `list_audit` returns: newest first, those matching every
/// field given.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    /// Recorded at or after.
    pub since: Option<Timestamp>,
    /// Only entries with a smaller id (the page after one that ended there).
    pub before: Option<i64>,
    /// 0 means 100; never more than 1,000.
    pub limit: u32,
}

/// The audit log.
#[async_trait]
pub trait Audit: Send + Sync + 'static {
    /// Records an entry, and in the same transaction removes the entries more
    /// than [`AUDIT_KEEP`] ids older. Returns its id. Text fields are bounded
    /// (longer ones cut, NUL characters replaced) and so is the detail.
    async fn record_audit(&self, entry: &AuditEntry) -> Result<i64>;

    /// Entries matching the filter, newest (highest id) first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>>;

    /// Removes every entry more than `keep` ids older than the newest; returns
    /// how many went. `record_audit` does this with [`AUDIT_KEEP`] itself.
    async fn prune_audit(&self, keep: u64) -> Result<u64>;
}
