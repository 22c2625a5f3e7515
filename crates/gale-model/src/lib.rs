//! Gale's domain model: what a DAG is, when it runs, which states its tasks move
//! through and how commands are rendered.
//!
//! This crate does no I/O: no files, no clock, no environment, no database. It takes
//! inputs (file text, a `now`, upstream states) and returns values or decisions, so
//! that every node and every store backend agrees on the same rules.

pub mod alerts;
pub mod dag;
pub mod duration;
pub mod ids;
pub mod mask;
pub mod params;
pub mod run;
pub mod schedule;
pub mod secrets;
pub mod state;
pub mod template;
pub mod time;

pub use dag::{Dag, DagError, HttpSpec, Task, TaskKind};
pub use ids::{DagId, RunId, TaskId};
pub use run::{NewRun, NewTask, RunType};
pub use schedule::{Interval, Schedule};
pub use state::{RunState, TaskState, TriggerRule};
