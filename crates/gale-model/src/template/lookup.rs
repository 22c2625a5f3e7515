//! `var` and `conn` in templates: objects over the values an attempt looked up
//! ([`Lookup`]), and the scan that finds which names a template uses so they
//! can be looked up before it renders.
//!
//! `{{ var.NAME }}` and `{{ var.value.NAME }}` give a variable's text,
//! `{{ var.json.NAME.field }}` its JSON, `{{ var.value.get('NAME', 'fallback') }}`
//! a default when it does not exist; `{{ conn.NAME.host }}` (`.port`,
//! `.login`, `.password`, `.schema`, `.extra.KEY`, `.uri`) a connection's
//! fields. A name that was not found is recorded, so the render error names it.

use std::sync::Arc;

use minijinja::value::{Object, Value};
use minijinja::{Error, ErrorKind, State};

use crate::secrets::{Lookup, References};

/// `var`: `.value`, `.json`, or a variable's text directly.
#[derive(Debug)]
pub(super) struct Vars(pub Arc<Lookup>);

#[derive(Debug)]
struct VarValues(Arc<Lookup>);

#[derive(Debug)]
struct VarJson(Arc<Lookup>);

/// `conn`: a connection's fields.
#[derive(Debug)]
pub(super) struct Conns(pub Arc<Lookup>);

fn text_of(lookup: &Lookup, name: &str) -> Option<Value> {
    match lookup.variables.get(name) {
        Some(v) => Some(Value::from(v.value.clone())),
        None => {
            lookup.miss(format!("variable {name:?} does not exist"));
            None
        }
    }
}

impl Object for Vars {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "value" => Some(Value::from_object(VarValues(self.0.clone()))),
            "json" => Some(Value::from_object(VarJson(self.0.clone()))),
            name => text_of(&self.0, name),
        }
    }
}

impl Object for VarValues {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        text_of(&self.0, key.as_str()?)
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        if method != "get" {
            return Err(Error::from(ErrorKind::UnknownMethod));
        }
        let name = args.first().and_then(Value::as_str).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "var.value.get takes a variable name",
            )
        })?;
        match (self.0.variables.get(name), args.get(1)) {
            (Some(v), _) => Ok(Value::from(v.value.clone())),
            (None, Some(default)) => Ok(default.clone()),
            (None, None) => Ok(Value::from(())),
        }
    }
}

impl Object for VarJson {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        let Some(v) = self.0.variables.get(name) else {
            self.0.miss(format!("variable {name:?} does not exist"));
            return None;
        };
        match serde_json::from_str::<serde_json::Value>(&v.value) {
            Ok(json) => Some(Value::from(minijinja::value::Serde(json))),
            Err(e) => {
                self.0.miss(format!(
                    "variable {name:?} is not JSON ({e}), so var.json cannot read it"
                ));
                None
            }
        }
    }
}

impl Object for Conns {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        match self.0.connections.get(name) {
            Some(c) => Some(Value::from(minijinja::value::Serde(c.template_value()))),
            None => {
                self.0.miss(format!("connection {name:?} does not exist"));
                None
            }
        }
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The variables and connections `template` names inside its `{{ }}` and
/// `{% %}` tags: `var.NAME`, `var.value.NAME`, `var.json.NAME`,
/// `var.value.get('NAME')`, `var['NAME']`, `conn.NAME`, `conn['NAME']`.
pub fn references(template: &str) -> References {
    let mut refs = References::default();
    let mut rest = template;
    while let Some(open) = rest.find(['{']) {
        let after = &rest[open + 1..];
        let close = match after.as_bytes().first() {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            _ => {
                rest = after;
                continue;
            }
        };
        let body = &after[1..];
        let end = body.find(close).unwrap_or(body.len());
        scan_tag(&body[..end], &mut refs);
        rest = &body[end..];
    }
    refs
}

fn scan_tag(tag: &str, refs: &mut References) {
    let b = tag.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b'.');
        let word = if tag[i..].starts_with("var") {
            Some(("var", 3))
        } else if tag[i..].starts_with("conn") {
            Some(("conn", 4))
        } else {
            None
        };
        if let (true, Some((kind, len))) = (starts_word, word)
            && !b.get(i + len).is_some_and(|&c| is_ident(c))
        {
            let mut j = i + len;
            let mut name = member(tag, &mut j);
            if kind == "var" && matches!(name.as_deref(), Some("value" | "json")) {
                let save = j;
                match member(tag, &mut j) {
                    Some(m) if m == "get" => {
                        // var.value.get('NAME', ...)
                        let args = tag[j..].trim_start();
                        name = args.strip_prefix('(').and_then(|a| literal(a.trim_start()));
                    }
                    Some(m) => name = Some(m),
                    None => j = save,
                }
            }
            if let Some(n) = name {
                match kind {
                    "var" => refs.variables.insert(n),
                    _ => refs.connections.insert(n),
                };
            }
            i = j.max(i + 1);
            continue;
        }
        i += 1;
    }
}

/// `.ident` or `['literal']` at `*j` (after spaces), moving `*j` past it.
fn member(tag: &str, j: &mut usize) -> Option<String> {
    let b = tag.as_bytes();
    let mut k = *j;
    while k < b.len() && b[k] == b' ' {
        k += 1;
    }
    match b.get(k) {
        Some(b'.') => {
            let start = k + 1;
            let mut end = start;
            while end < b.len() && is_ident(b[end]) {
                end += 1;
            }
            (end > start).then(|| {
                *j = end;
                tag[start..end].to_owned()
            })
        }
        Some(b'[') => {
            let inner = tag[k + 1..].trim_start();
            let lit = literal(inner)?;
            let consumed = tag.len() - inner.len() + lit.len() + 2;
            *j = consumed.min(tag.len());
            Some(lit)
        }
        _ => None,
    }
}

/// A quoted string literal at the start of `s`.
fn literal(s: &str) -> Option<String> {
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = &s[1..];
    let end = inner.find(quote)?;
    Some(inner[..end].to_owned())
}
