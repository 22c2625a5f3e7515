//! End-to-end tests: the real `gale` binary, as separate processes, on a
//! temporary GALE_HOME per test. See `harness` for how processes are started,
//! awaited and cleaned up, `pg` for the processes and commands of a
//! cluster on PostgreSQL, `web` for HTTP against a running webserver, and
//! `webdriver` for driving headless Chromium in browser tests.

#[path = "../common/faketime.rs"]
mod faketime;
mod harness;
#[path = "../common/link.rs"]
mod link;
#[path = "../common/marks.rs"]
mod marks;
mod pg;
mod receivers;
mod web;

mod admin;
mod alerts;
mod alerts_cluster;
mod alerts_web;
mod api;
mod audit;
mod cluster;
mod cluster_cli;
mod crash;
mod dag_files;
mod failover;
mod faults;
mod first_day;
mod inject;
mod many_workers;
mod pg_auth;
mod runs;
mod scheduling;
mod secrets;
mod secrets_api;
mod secrets_cli;
mod secrets_ui;
mod sources;
mod startup;
mod tidy;
mod tls;
mod trust;
mod ui;
mod ui_history;
mod ui_versions;
mod web_attack;
mod webdriver;
