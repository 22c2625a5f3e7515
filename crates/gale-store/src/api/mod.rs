//! The store's interface, one trait per aggregate (DAGs, runs, the attempt
//! queue, logs, nodes, pools, the slot ledger, operators' actions, backfills,
//! auth, the audit log, variables and connections, alert channels and deliveries, the clock and the database itself), each beside the row types it owns.
//! [`crate::Store`] is their union. Nothing here knows a backend.

mod alerts;
mod audit;
mod auth;
mod backfills;
mod clock;
mod dags;
mod database;
mod logs;
mod nodes;
mod operator;
mod pools;
mod queue;
mod runs;
mod secrets;
mod slots;

pub use alerts::{
    AlertChannelRow, CHANNELS_LISTED, ChannelKind, DELIVERIES_LISTED, DELIVERY_ERROR_MAX,
    DeliveryFilter, DeliveryResult, DeliveryRow, DeliveryState, NewDelivery,
};
pub use audit::{AUDIT_KEEP, AuditAction, AuditEntry, AuditFilter, AuditOutcome, AuditRow};
pub use auth::{Role, SessionRow, TOKEN_USE_RECORDED_EVERY, TokenRow, UserChange, UserRow};
pub use backfills::{BackfillRow, BackfillState, CancelBackfill};
pub use dags::{
    DAG_PAGE_MAX, DagDeleted, DagDeletion, DagPage, DagQuery, DagRow, DagVersion, DeleteDag,
    GitApplied, GitCommit, GitSourceSpec, ImportError, NewVersion, Origin, OwnerKind, PUSH_OWNER,
    SourceRow, Stored, VersionInfo, git_owner,
};
pub use logs::{LogLine, LogRow, Stream};
pub(crate) use nodes::split_list;
pub use nodes::{NodeRow, NodeState};
pub use operator::{ClearTask, RunMark};
pub use pools::PoolRow;
pub use queue::{AttemptRow, AttemptState, Claim, Finish, Outcome, Reap};
pub use runs::{
    DAILY_MAX_DAYS, DayRuns, HISTORY_MAX, RunActivity, RunFilter, RunHistory, RunRow, StoreCounts,
    TaskHistory, TaskRow, Transition,
};
pub use secrets::{ConnectionRow, SECRETS_LISTED, Sealed, SealedRef, SecretKind, VariableRow};
pub use slots::{SlotRow, SlotStatus};

/// Every trait of the store, for code that calls its methods on a concrete
/// backend (`SqliteStore`, `PgStore`): `use gale_store::prelude::*;`.
pub mod prelude {
    pub use super::alerts::Alerts;
    pub use super::audit::Audit;
    pub use super::auth::Auth;
    pub use super::backfills::Backfills;
    pub use super::clock::Clock;
    pub use super::dags::Dags;
    pub use super::database::Database;
    pub use super::logs::Logs;
    pub use super::nodes::Nodes;
    pub use super::operator::Operator;
    pub use super::pools::Pools;
    pub use super::queue::Queue;
    pub use super::runs::Runs;
    pub use super::secrets::Secrets;
    pub use super::slots::Slots;
    pub use crate::Store;
}
