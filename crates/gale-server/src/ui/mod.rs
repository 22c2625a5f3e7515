//! The server-rendered web UI.

use std::sync::Arc;

use axum::Router;

use crate::AppState;

pub mod gantt;
pub mod graph;

/// The UI's pages and assets.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
}
