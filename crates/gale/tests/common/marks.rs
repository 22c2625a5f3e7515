//! Tasks that record their own lifetimes, and the check that no two tries of
//! a task ran at once by those records (not by Gale's own, which a fault may
//! make wrong).

#![allow(dead_code)]

use std::collections::BTreeMap;

/// A task of a DAG file that records `RUN TASK TRY tick TIME` in `marks`
/// every 0.1 s, `ticks` times, then `RUN TASK TRY end TIME`: its tries'
/// lifetimes as the task itself saw them, killed ones included.
pub fn ticking_task(id: &str, needs: &[&str], marks: &str, ticks: u32) -> String {
    let needs = if needs.is_empty() {
        String::new()
    } else {
        format!("    needs: [{}]\n", needs.join(", "))
    };
    format!(
        "  {id}:\n    retries: 3\n    retry_delay: 1s\n{needs}    run: |\n      \
         i=0\n      \
         while [ \"$i\" -lt {ticks} ]; do\n        \
         echo \"$GALE_RUN_ID {id} $GALE_TRY_NUMBER tick $(env -u LD_PRELOAD date +%s.%N)\" >> {marks}\n        \
         i=$((i + 1)); sleep 0.1\n      \
         done\n      \
         echo \"$GALE_RUN_ID {id} $GALE_TRY_NUMBER end $(env -u LD_PRELOAD date +%s.%N)\" >> {marks}\n"
    )
}

/// One try as its task recorded it.
#[derive(Debug)]
pub struct TaskTry {
    pub first: f64,
    pub last: f64,
    pub ended: bool,
}

/// The tries in a marks file of [`ticking_task`]s, by run and task, then try.
pub fn tries_from_marks(path: &str) -> BTreeMap<(String, String), BTreeMap<u32, TaskTry>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut tries: BTreeMap<(String, String), BTreeMap<u32, TaskTry>> = BTreeMap::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        // A line cut short by a kill mid-write is not a mark.
        let [run, task, try_number, what, at] = w[..] else {
            continue;
        };
        let (Ok(n), Ok(at)) = (try_number.parse::<u32>(), at.parse::<f64>()) else {
            continue;
        };
        let t = tries
            .entry((run.to_owned(), task.to_owned()))
            .or_default()
            .entry(n)
            .or_insert(TaskTry {
                first: at,
                last: at,
                ended: false,
            });
        t.first = t.first.min(at);
        t.last = t.last.max(at);
        t.ended |= what == "end";
    }
    tries
}

/// Asserts that no try of a task began before the try before it last showed
/// life, by the tasks' own marks; returns how many retries there were.
pub fn assert_tries_never_overlap(
    tries: &BTreeMap<(String, String), BTreeMap<u32, TaskTry>>,
) -> usize {
    let mut retried = 0;
    for ((run, task), by_try) in tries {
        let mut previous: Option<(u32, f64)> = None;
        for (n, t) in by_try {
            if let Some((p, last)) = previous {
                assert!(
                    t.first > last,
                    "try {n} of {task} in run {run} began at {}, while try {p} still ran (last mark {last})",
                    t.first
                );
            }
            previous = Some((*n, t.last));
        }
        retried += by_try.len() - 1;
    }
    retried
}
