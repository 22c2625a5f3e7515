//! A task's templates checked when its DAG file loads, not when it runs: a
//! syntax error, a name no task sees, a param the DAG does not declare, and
//! the outputs of a task that is not upstream of this one.

use std::collections::{BTreeSet, HashSet};

use super::{Escape, describe, environment};

/// The names every task's templates see.
pub const NAMES: [&str; 28] = [
    "ds",
    "ds_nodash",
    "ts",
    "ts_nodash",
    "ts_nodash_with_tz",
    "task_instance_key_str",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "run_id",
    "run_type",
    "dag_id",
    "task_id",
    "try_number",
    "params",
    "conf",
    "tasks",
    "var",
    "conn",
    "dag_run",
    "ti",
    "task_instance",
    "macros",
    "prev_ds",
    "prev_ds_nodash",
    "prev_data_interval_start_success",
    "prev_data_interval_end_success",
    "prev_start_date_success",
];

/// The engine's own functions, which a template may call.
const BUILTINS: [&str; 4] = ["range", "dict", "namespace", "debug"];

/// What one task's templates may name beyond [`NAMES`].
pub struct Known<'a> {
    /// The DAG's params; `None` when a conf may carry others
    /// (`allow_undeclared_conf`).
    pub params: Option<BTreeSet<&'a str>>,
    /// The tasks upstream of this one (`tasks.<id>.outputs`).
    pub upstream: HashSet<&'a str>,
}

/// Every problem with `template`, each a sentence naming the name.
pub fn check(template: &str, known: &Known) -> Vec<String> {
    if !template.contains("{{") && !template.contains("{%") && !template.contains("{#") {
        return Vec::new();
    }
    let env = environment(Escape::None);
    let tmpl = match env.template_from_str(template) {
        Ok(t) => t,
        Err(e) => return vec![describe(&e)],
    };
    let names: BTreeSet<String> = tmpl.undeclared_variables(true).into_iter().collect();
    let mut out = Vec::new();
    for name in &names {
        let mut parts = name.split('.');
        let top = parts.next().unwrap_or("");
        if BUILTINS.contains(&top) {
            continue;
        }
        if !NAMES.contains(&top) {
            out.push(format!(
                "template: `{name}` is not defined (a task's templates see {})",
                NAMES.join(", ")
            ));
            continue;
        }
        let Some(second) = parts.next() else { continue };
        match top {
            "params" => {
                if let Some(params) = &known.params
                    && !params.contains(second)
                {
                    out.push(format!(
                        "template: `params.{second}` is not a param of this DAG: declare it under `params:`"
                    ));
                }
            }
            "tasks" if !known.upstream.contains(second) => {
                out.push(format!(
                    "template: `tasks.{second}` is not upstream of this task: only the outputs of tasks it needs (directly or through others) are there"
                ));
            }
            _ => {}
        }
    }
    out
}
