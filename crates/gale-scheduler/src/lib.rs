//! The scheduler role: turns DAG files into stored DAG versions, creates runs when
//! they are due, moves task instances along their state machine, and reaps
//! attempts whose worker went silent.
//!
//! It keeps no state that the store does not have: its caches (parsed DAG
//! versions) are rebuilt on demand, and every write it makes is conditional, so
//! any number of schedulers may run at once and any may die at any instant.

pub mod core;
pub mod git;
pub mod processor;
pub mod recovery;
pub mod scheduler;

pub use git::{GitFollower, GitOptions};
pub use processor::DagProcessor;
pub use scheduler::{Scheduler, SchedulerOptions, SchedulerStore};
