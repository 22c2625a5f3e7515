//! The names an Airflow user reaches for in a shell or HTTP task's
//! templates, beside Gale's own, rendering as Airflow renders them for the
//! same logical date: the dates as dates (`logical_date.strftime(…)`),
//! `ts_nodash`, `ts_nodash_with_tz`, `task_instance_key_str`, `dag_run`
//! (`.conf`, `.run_id`, `.id` …), `ti` / `task_instance` (`.try_number` …),
//! and `macros.ds_add`, `macros.ds_format`, `macros.datetime`.

use std::sync::Arc;

use minijinja::value::{Object, Value};
use minijinja::{Error, ErrorKind, State};

use super::Context;
use super::date::{Constructor, DateTime};

/// The names computed from a context, overriding its plain fields.
pub(super) struct Names {
    pub values: Value,
}

impl Names {
    pub fn of(ctx: &Context) -> Self {
        let logical = ctx.logical_date.parse::<jiff::Timestamp>().ok();
        let stamp = |fmt: &str| {
            logical
                .map(|t| t.strftime(fmt).to_string())
                .unwrap_or_default()
        };
        let date = |text: &str| DateTime::value_of(&serde_json::Value::from(text));
        let prev =
            |name: &str| DateTime::value_of(ctx.prev.get(name).unwrap_or(&serde_json::Value::Null));
        let ti = minijinja::context! {
            try_number => ctx.try_number,
            task_id => ctx.task_id.clone(),
            dag_id => ctx.dag_id.clone(),
            run_id => ctx.run_id.clone(),
            map_index => -1,
        };
        let values = minijinja::context! {
            logical_date => date(&ctx.logical_date),
            data_interval_start => date(&ctx.data_interval_start),
            data_interval_end => date(&ctx.data_interval_end),
            prev_data_interval_start_success => prev("prev_data_interval_start_success"),
            prev_data_interval_end_success => prev("prev_data_interval_end_success"),
            prev_start_date_success => prev("prev_start_date_success"),
            ts_nodash => stamp("%Y%m%dT%H%M%S"),
            // Airflow's: `ts` without its dashes and colons (microseconds kept).
            ts_nodash_with_tz => ctx.ts.replace(['-', ':'], ""),
            task_instance_key_str => format!("{}__{}__{}", ctx.dag_id, ctx.task_id, ctx.ds_nodash),
            dag_run => minijinja::context! {
                conf => Value::from(minijinja::value::Serde(&ctx.conf)),
                id => ctx.run_number,
                run_id => ctx.run_id.clone(),
                run_type => ctx.run_type.clone(),
                dag_id => ctx.dag_id.clone(),
                external_trigger => ctx.run_type == "manual",
                logical_date => date(&ctx.logical_date),
                data_interval_start => date(&ctx.data_interval_start),
                data_interval_end => date(&ctx.data_interval_end),
            },
            ti => ti.clone(),
            task_instance => ti,
            macros => Value::from_object(Macros),
        };
        Names { values }
    }
}

/// `macros.ds_add(ds, days)`, `macros.ds_format(ds, from, to)` and
/// `macros.datetime`.
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
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        (key.as_str()? == "datetime").then(|| Value::from_object(Constructor))
    }

    fn call_method(
        self: &Arc<Self>,
        state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match (method, args) {
            ("datetime", _) => Arc::new(Constructor).call(state, args),
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
                "macros.{other} is not a macro Gale has (it has ds_add, ds_format and datetime)"
            ))),
        }
    }
}
