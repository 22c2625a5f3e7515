//! The names an Airflow user reaches for in a shell or HTTP task's
//! templates, beside Gale's own: `ts_nodash`, `dag_run.conf` (and the run's
//! other fields), `ti.try_number`, and `macros.ds_add` / `macros.ds_format`,
//! rendering as Airflow renders them for the same logical date.

use std::sync::Arc;

use minijinja::value::{Object, Value};
use minijinja::{Error, ErrorKind, State};

use super::Context;

/// The extra names (`ts_nodash`, `dag_run`, `ti`, `macros`), each computed
/// from `ctx`.
pub(super) fn names(ctx: &Context) -> [Value; 4] {
    let ts_nodash = ctx
        .ts
        .parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y%m%dT%H%M%S").to_string())
        .unwrap_or_default();
    [
        Value::from(ts_nodash),
        minijinja::context! {
                conf => Value::from(minijinja::value::Serde(&ctx.conf)),
                run_id => ctx.run_id.clone(),
                run_type => ctx.run_type.clone(),
                dag_id => ctx.dag_id.clone(),
                logical_date => ctx.logical_date.clone(),
                data_interval_start => ctx.data_interval_start.clone(),
                data_interval_end => ctx.data_interval_end.clone(),
        },
        minijinja::context! {
                try_number => ctx.try_number,
                task_id => ctx.task_id.clone(),
                dag_id => ctx.dag_id.clone(),
                run_id => ctx.run_id.clone(),
        },
        Value::from_object(Macros),
    ]
}

/// `macros.ds_add(ds, days)` and `macros.ds_format(ds, from, to)`.
#[derive(Debug)]
struct Macros;

fn bad(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

fn date_of(v: &Value, fmt: &str) -> Result<jiff::civil::Date, Error> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("{v} is not a date string")))?;
    jiff::civil::Date::strptime(fmt, s).map_err(|e| bad(format!("{s:?} is not a {fmt} date: {e}")))
}

impl Object for Macros {
    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match (method, args) {
            ("ds_add", [ds, days]) => {
                let days = i64::try_from(days.clone())
                    .map_err(|_| bad(format!("macros.ds_add: {days} is not a number of days")))?;
                let date = date_of(ds, "%Y-%m-%d")?
                    .checked_add(jiff::Span::new().days(days))
                    .map_err(|e| bad(format!("macros.ds_add: {e}")))?;
                Ok(Value::from(date.strftime("%Y-%m-%d").to_string()))
            }
            ("ds_format", [ds, from, to]) => {
                let (Some(from), Some(to)) = (from.as_str(), to.as_str()) else {
                    return Err(bad("macros.ds_format: the formats must be strings".into()));
                };
                Ok(Value::from(date_of(ds, from)?.strftime(to).to_string()))
            }
            ("ds_add", _) => Err(bad("macros.ds_add takes (ds, days)".into())),
            ("ds_format", _) => Err(bad(
                "macros.ds_format takes (ds, input_format, output_format)".into(),
            )),
            (other, _) => Err(bad(format!(
                "macros.{other} is not a macro Gale has (it has ds_add and ds_format)"
            ))),
        }
    }
}
