//! What changed between two versions of a DAG: field by field on the
//! validated [`Dag`] ([`diff`]), and line by line on the file texts
//! ([`lines`], [`hunks`]), each with a way to hide the secrets it may show
//! ([`DagDiff::masked`], [`mask_lines`]).
//!
//! The structural diff compares the JSON each version serializes to, so a
//! field added to [`Dag`] or [`Task`] shows up here without a change to this
//! module. It knows one thing about the schema: a task's `kind` is shown the
//! way a DAG file writes it (`run`, `http.url`), not as `kind.shell.run`.
//!
//! The line diff is Myers' O((n+m)·d) algorithm in linear space, with a bound
//! on the work it does: two files that share almost nothing come out as every
//! old line removed and every new line added rather than taking seconds.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Dag, Task};
use crate::mask::{Masker, is_secret_key};

/// What the value of `field` was and became; `None` where it is absent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// Dotted path of the field: `schedule`, `params.region`, `env.FOO`,
    /// `http.url`.
    pub field: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The changes to one task present in both versions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskChange {
    pub task_id: String,
    /// By field path, sorted.
    pub changes: Vec<Change>,
}

/// What changed between two versions of a DAG.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DagDiff {
    /// The DAG's own fields (all but `id` and `tasks`), by path, sorted.
    pub fields: Vec<Change>,
    /// Ids of the tasks only the new version has, in its file order.
    pub tasks_added: Vec<String>,
    /// Ids of the tasks only the old version has, in its file order.
    pub tasks_removed: Vec<String>,
    /// Tasks in both that differ, in the new version's file order.
    pub tasks_changed: Vec<TaskChange>,
}

impl DagDiff {
    /// Whether the two versions are the same DAG (up to task order).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
            && self.tasks_added.is_empty()
            && self.tasks_removed.is_empty()
            && self.tasks_changed.is_empty()
    }

    /// This diff as shown to someone who may not see secrets: every string in
    /// a value masked by `masker`, and the whole value `***` where its path
    /// names a secret-looking key (`params.db_password`, `env.API_TOKEN`,
    /// `http.headers.Authorization`).
    ///
    /// A change can show a secret of either version: mask with a masker of
    /// each (`diff.masked(&Masker::of_source(old)).masked(&Masker::of_source(new))`).
    pub fn masked(self, masker: &Masker) -> DagDiff {
        let mask_all = |changes: Vec<Change>| -> Vec<Change> {
            changes
                .into_iter()
                .map(|c| mask_change(c, masker))
                .collect()
        };
        DagDiff {
            fields: mask_all(self.fields),
            tasks_added: self.tasks_added,
            tasks_removed: self.tasks_removed,
            tasks_changed: self
                .tasks_changed
                .into_iter()
                .map(|t| TaskChange {
                    task_id: t.task_id,
                    changes: mask_all(t.changes),
                })
                .collect(),
        }
    }
}

/// The structural difference from `old` to `new`. Tasks are matched by id;
/// a change of id is a task removed and another added.
pub fn diff(old: &Dag, new: &Dag) -> DagDiff {
    let mut fields = Vec::new();
    let (old_fields, new_fields) = (dag_fields(old), dag_fields(new));
    compare_maps("", &old_fields, &new_fields, false, &mut fields);

    let old_ids: HashMap<&str, &Task> = old.tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let new_ids: HashMap<&str, &Task> = new.tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let tasks_added = new
        .tasks
        .iter()
        .filter(|t| !old_ids.contains_key(t.id.as_str()))
        .map(|t| t.id.to_string())
        .collect();
    let tasks_removed = old
        .tasks
        .iter()
        .filter(|t| !new_ids.contains_key(t.id.as_str()))
        .map(|t| t.id.to_string())
        .collect();
    let mut tasks_changed = Vec::new();
    for task in &new.tasks {
        let Some(before) = old_ids.get(task.id.as_str()) else {
            continue;
        };
        if *before == task {
            continue;
        }
        let mut changes = Vec::new();
        compare_maps(
            "",
            &task_fields(before),
            &task_fields(task),
            false,
            &mut changes,
        );
        if !changes.is_empty() {
            tasks_changed.push(TaskChange {
                task_id: task.id.to_string(),
                changes,
            });
        }
    }
    DagDiff {
        fields,
        tasks_added,
        tasks_removed,
        tasks_changed,
    }
}

/// A DAG's fields as JSON, without `id` (what is compared) and `tasks`
/// (compared one by one).
fn dag_fields(dag: &Dag) -> Map<String, Value> {
    let mut map = as_object(dag);
    map.remove("id");
    map.remove("tasks");
    map
}

/// A task's fields as JSON, without `id`, and with its `kind` written the
/// way a DAG file writes it. `TaskKind` is externally tagged
/// (`{"shell": {"run": ..}}`, `{"http": {..}}`): a shell task's fields are
/// lifted to the task (`run`), any other kind stays under its name (`http`).
fn task_fields(task: &Task) -> Map<String, Value> {
    let mut map = as_object(task);
    map.remove("id");
    if let Some(Value::Object(kind)) = map.remove("kind") {
        for (name, spec) in kind {
            match spec {
                Value::Object(inner) if name == "shell" => map.extend(inner),
                other => {
                    map.insert(name, other);
                }
            }
        }
    }
    map
}

fn as_object(value: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        // A struct always serializes to an object; nothing to compare otherwise.
        _ => Map::new(),
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Pushes the changes between two objects at `prefix`, by key, sorted (so the
/// order does not depend on how `serde_json` orders a map). `whole` is set
/// inside an object present on one side only: there a `null` field (an unset
/// option of a spec just added) is no news and is left out.
fn compare_maps(
    prefix: &str,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    whole: bool,
    out: &mut Vec<Change>,
) {
    let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (b, a) = (before.get(key), after.get(key));
        if whole && b.or(a) == Some(&Value::Null) {
            continue;
        }
        compare(&join(prefix, key), b, a, out);
    }
}

/// Pushes the changes between two values at `path`: objects key by key (also
/// when one side is absent, so that a task turned from shell to HTTP shows
/// each `http.*` field added), anything else whole.
fn compare(path: &str, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<Change>) {
    if before == after {
        return;
    }
    let empty = Map::new();
    let pushed = out.len();
    if let (Some(b), Some(a)) = (object(before, &empty), object(after, &empty)) {
        compare_maps(path, b, a, before.is_none() || after.is_none(), out);
    }
    // Not objects, or objects whose difference has no key of its own (an
    // object of nulls added).
    if out.len() == pushed {
        out.push(Change {
            field: path.to_owned(),
            before: before.cloned(),
            after: after.cloned(),
        });
    }
}

/// The keys to compare under a value: its own if it is an object, none
/// (`empty`) if it is absent; `None` if it is compared whole.
fn object<'a>(
    value: Option<&'a Value>,
    empty: &'a Map<String, Value>,
) -> Option<&'a Map<String, Value>> {
    match value {
        Some(Value::Object(map)) => Some(map),
        None => Some(empty),
        _ => None,
    }
}

fn mask_change(change: Change, masker: &Masker) -> Change {
    let hidden = names_secret(&change.field);
    let mask = |v: Option<Value>| {
        v.map(|v| {
            if hidden {
                Value::String("***".into())
            } else {
                mask_value(v, masker)
            }
        })
    };
    Change {
        before: mask(change.before),
        after: mask(change.after),
        field: change.field,
    }
}

/// Whether a path names a secret-looking key at any depth
/// (`params.db.password` as well as `params.db_password`). The `secret` flag
/// of a param's spec (`param_specs.token.secret`) is a field of the schema,
/// not a key, and its value is no secret.
fn names_secret(path: &str) -> bool {
    let segments: Vec<&str> = path.split('.').collect();
    let flag = segments.len() == 3 && segments[0] == "param_specs" && segments[2] == "secret";
    let keys = if flag { &segments[..2] } else { &segments[..] };
    keys.iter().any(|s| is_secret_key(s))
}

/// `value` with every string in it masked, and every value under a
/// secret-looking key `***`.
fn mask_value(value: Value, masker: &Masker) -> Value {
    match value {
        Value::String(s) => Value::String(masker.mask(&s)),
        Value::Array(list) => {
            Value::Array(list.into_iter().map(|v| mask_value(v, masker)).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(&k) {
                        Value::String("***".into())
                    } else {
                        mask_value(v, masker)
                    };
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// Whether a line of a line diff is in both files or in one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    Same,
    Added,
    Removed,
}

/// One line of a line diff, with its 1-based number in each file it is in.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Line {
    pub kind: LineKind,
    pub old_line: Option<usize>,
    pub new_line: Option<usize>,
    /// The line without its line ending.
    pub text: String,
}

/// The most steps [`lines`] takes to find a shortest edit script before it
/// settles for a longer one (all the remaining old lines removed, all the new
/// ones added). A step costs a few nanoseconds: this bounds a diff to well
/// under a second, and is far more than two versions of a file edited by
/// hand ever need.
const MAX_DIFF_STEPS: usize = 20_000_000;

/// The line diff from `old` to `new`: every line of both, in order, each
/// marked the same, removed or added, with the fewest changes Myers'
/// algorithm finds within its bound ([`MAX_DIFF_STEPS`]).
pub fn lines(old: &str, new: &str) -> Vec<Line> {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    // Lines as numbers, so that comparing two is one instruction.
    let mut ids = HashMap::new();
    let a = intern(&mut ids, &old_lines);
    let b = intern(&mut ids, &new_lines);
    let mut ops = Vec::with_capacity(a.len().max(b.len()));
    let mut budget = MAX_DIFF_STEPS;
    edit_script(&a, &b, &mut ops, &mut budget);

    let (mut i, mut j) = (0, 0);
    ops.into_iter()
        .map(|kind| {
            let line = match kind {
                LineKind::Same => Line {
                    kind,
                    old_line: Some(i + 1),
                    new_line: Some(j + 1),
                    text: new_lines[j].to_owned(),
                },
                LineKind::Removed => Line {
                    kind,
                    old_line: Some(i + 1),
                    new_line: None,
                    text: old_lines[i].to_owned(),
                },
                LineKind::Added => Line {
                    kind,
                    old_line: None,
                    new_line: Some(j + 1),
                    text: new_lines[j].to_owned(),
                },
            };
            if kind != LineKind::Added {
                i += 1;
            }
            if kind != LineKind::Removed {
                j += 1;
            }
            line
        })
        .collect()
}

/// Each line's number in `ids`, the same for the same text.
fn intern<'a>(ids: &mut HashMap<&'a str, u32>, lines: &[&'a str]) -> Vec<u32> {
    lines
        .iter()
        .map(|line| {
            let next = ids.len() as u32;
            *ids.entry(line).or_insert(next)
        })
        .collect()
}

/// Pushes the edit script from `a` to `b`: one op per line of either, in
/// order. Recursion splits at a point on a shortest path, which halves the
/// number of changes left each time, so it goes O(log d) deep.
fn edit_script(a: &[u32], b: &[u32], out: &mut Vec<LineKind>, budget: &mut usize) {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[..a.len() - suffix], &b[..b.len() - suffix]);
    out.extend(std::iter::repeat_n(LineKind::Same, prefix));
    let split = if a.is_empty() || b.is_empty() {
        None
    } else {
        bisect(a, b, budget)
    };
    match split {
        // A split at a corner would recurse on the same problem; `bisect`
        // never returns one, but the fallback keeps that from looping.
        Some((x, y)) if (x, y) != (0, 0) && (x, y) != (a.len(), b.len()) => {
            edit_script(&a[..x], &b[..y], out, budget);
            edit_script(&a[x..], &b[y..], out, budget);
        }
        _ => {
            out.extend(std::iter::repeat_n(LineKind::Removed, a.len()));
            out.extend(std::iter::repeat_n(LineKind::Added, b.len()));
        }
    }
    out.extend(std::iter::repeat_n(LineKind::Same, suffix));
}

/// A point `(x, y)` on a shortest edit path from `a` to `b`, found by running
/// Myers' search from both ends until they meet ("An O(ND) Difference
/// Algorithm and Its Variations", 1986, section 4b); `None` when the budget
/// runs out first. `a` and `b` are non-empty and differ in their first and
/// last elements.
///
/// `forward[k]` is the furthest `x` reached on diagonal `k = x - y` from the
/// start, `backward[k]` the furthest reached from the end (in coordinates
/// counted from the end). Diagonals that leave the grid are dropped from the
/// search (`*_start`, `*_end`).
fn bisect(a: &[u32], b: &[u32], budget: &mut usize) -> Option<(usize, usize)> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max_d = (n + m + 1) / 2;
    let offset = max_d;
    let len = 2 * max_d + 2;
    let mut forward = vec![-1isize; len as usize];
    let mut backward = vec![-1isize; len as usize];
    forward[(offset + 1) as usize] = 0;
    backward[(offset + 1) as usize] = 0;
    let delta = n - m;
    // With an odd delta the two searches meet on a forward step.
    let front = delta % 2 != 0;
    let (mut f_start, mut f_end, mut b_start, mut b_end) = (0, 0, 0, 0);
    for d in 0..max_d {
        let mut k = -d + f_start;
        while k <= d - f_end {
            let i = (offset + k) as usize;
            let mut x = if k == -d || (k != d && forward[i - 1] < forward[i + 1]) {
                forward[i + 1]
            } else {
                forward[i - 1] + 1
            };
            let mut y = x - k;
            let start = x;
            while x >= 0 && y >= 0 && x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            *budget = budget.checked_sub(1 + (x - start).unsigned_abs())?;
            forward[i] = x;
            if x > n {
                f_end += 2;
            } else if y > m {
                f_start += 2;
            } else if front {
                let j = offset + delta - k;
                if (0..len).contains(&j)
                    && backward[j as usize] != -1
                    && x >= n - backward[j as usize]
                {
                    return Some((x as usize, y as usize));
                }
            }
            k += 2;
        }
        let mut k = -d + b_start;
        while k <= d - b_end {
            let i = (offset + k) as usize;
            let mut x = if k == -d || (k != d && backward[i - 1] < backward[i + 1]) {
                backward[i + 1]
            } else {
                backward[i - 1] + 1
            };
            let mut y = x - k;
            let start = x;
            while x >= 0
                && y >= 0
                && x < n
                && y < m
                && a[(n - 1 - x) as usize] == b[(m - 1 - y) as usize]
            {
                x += 1;
                y += 1;
            }
            *budget = budget.checked_sub(1 + (x - start).unsigned_abs())?;
            backward[i] = x;
            if x > n {
                b_end += 2;
            } else if y > m {
                b_start += 2;
            } else if !front {
                let j = offset + delta - k;
                if (0..len).contains(&j) && forward[j as usize] != -1 {
                    let fx = forward[j as usize];
                    let fy = offset + fx - j;
                    if fx >= n - x {
                        return Some((fx as usize, fy as usize));
                    }
                }
            }
            k += 2;
        }
    }
    None
}

/// `lines` cut into unified-diff hunks: each run of changes with up to
/// `context` unchanged lines before and after it, and runs at most
/// `2 * context` unchanged lines apart in one hunk. No changes, no hunks.
pub fn hunks(lines: &[Line], context: usize) -> Vec<Vec<Line>> {
    let changed: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind != LineKind::Same)
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::new();
    let mut iter = changed.into_iter().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while let Some(&next) = iter.peek() {
            if next - last - 1 > 2 * context {
                break;
            }
            last = next;
            iter.next();
        }
        let start = first.saturating_sub(context);
        let end = (last + context + 1).min(lines.len());
        out.push(lines[start..end].to_vec());
    }
    out
}

/// `lines` with every secret `masker` knows replaced by `***` in their text.
/// As with [`DagDiff::masked`], mask with a masker of each version.
pub fn mask_lines(lines: Vec<Line>, masker: &Masker) -> Vec<Line> {
    if masker.is_empty() {
        return lines;
    }
    lines
        .into_iter()
        .map(|l| Line {
            text: masker.mask(&l.text),
            ..l
        })
        .collect()
}

#[cfg(test)]
mod tests;
