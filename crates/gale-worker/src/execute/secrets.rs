//! What an attempt looks up before it renders: the variables and connections
//! its task names (in its command or request, its `env` values and its
//! `env_from`), each secret among them added to the attempt's masker. Its
//! `env` values are templates too (`PGPASSWORD: "{{ conn.wh.password }}"`),
//! rendered as they are (no shell quoting: an environment value is one word
//! already); `env_from` adds a connection's `<prefix>HOST`, `PORT`, `USER`,
//! `PASSWORD`, `DATABASE` or a variable under a name.

use std::sync::Arc;
use std::time::Duration;

use gale_model::Task;
use gale_model::secrets::{EnvFrom, Lookup};
use gale_model::template::{self, Context, Escape};
use gale_secrets::Resolver;
use tokio_util::sync::CancellationToken;

/// The task as it runs (its environment complete) and the secrets it was
/// handed, or why it cannot run.
pub(crate) struct Prepared {
    /// The task with `env` rendered and `env_from` added; `None` when it
    /// names nothing and runs as written.
    pub task: Option<Task>,
    pub secrets: Vec<String>,
}

/// Looks up what `task` names into `ctx.lookup` and completes its environment.
pub(crate) async fn prepare(
    resolver: Option<&Resolver>,
    task: &Task,
    ctx: &mut Context,
    kill: &CancellationToken,
) -> Result<Prepared, String> {
    let refs = task.references();
    let templated_env = task
        .env
        .values()
        .any(|v| v.contains("{{") || v.contains("{%"));
    if refs.is_empty() && !templated_env {
        return Ok(Prepared {
            task: None,
            secrets: Vec::new(),
        });
    }
    let lookup = match resolver {
        Some(r) if !refs.is_empty() => lookup_retrying(r, &refs, kill).await?,
        _ => Lookup::default(),
    };
    let lookup = Arc::new(lookup);
    ctx.lookup = Some(lookup.clone());
    let mut run = task.clone();
    for (name, value) in run.env.iter_mut() {
        if value.contains("{{") || value.contains("{%") {
            let rendered = template::render(value, ctx, Escape::None)
                .map_err(|e| format!("env {name}: {e}"))?;
            if rendered.contains('\0') {
                return Err(format!(
                    "env {name}: the rendered value holds a NUL character"
                ));
            }
            *value = rendered;
        }
    }
    let looked_in = || {
        resolver
            .map(|r| r.order().join(", then "))
            .unwrap_or_else(|| "nowhere: this worker has no secret providers".into())
    };
    for from in &task.env_from {
        match from {
            EnvFrom::Connection { connection, prefix } => {
                let c = lookup.connections.get(connection).ok_or_else(|| {
                    format!(
                        "env_from: connection {connection:?} does not exist (looked in {})",
                        looked_in()
                    )
                })?;
                run.env.extend(c.env(prefix));
            }
            EnvFrom::Variable { variable, name } => {
                let v = lookup.variables.get(variable).ok_or_else(|| {
                    format!(
                        "env_from: variable {variable:?} does not exist (looked in {})",
                        looked_in()
                    )
                })?;
                if v.value.contains('\0') {
                    return Err(format!(
                        "env_from: variable {variable:?} holds a NUL character"
                    ));
                }
                run.env.insert(name.clone(), v.value.clone());
            }
        }
    }
    Ok(Prepared {
        task: Some(run),
        secrets: lookup.secrets(),
    })
}

/// The lookup, asked again while the store is unavailable (backing off up to
/// a second) until the attempt is killed.
async fn lookup_retrying(
    resolver: &Resolver,
    refs: &gale_model::secrets::References,
    kill: &CancellationToken,
) -> Result<Lookup, String> {
    let mut delay = Duration::from_millis(100);
    loop {
        match resolver.lookup(refs).await {
            Ok(l) => return Ok(l),
            Err(e) if e.is_retryable() && !kill.is_cancelled() => {
                tokio::select! {
                    _ = kill.cancelled() => return Err(format!("cannot look up variables and connections: {e}")),
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(format!("cannot look up variables and connections: {e}")),
        }
    }
}
