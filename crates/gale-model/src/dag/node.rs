//! A DAG file read as a tree of YAML nodes, each with its position, and the
//! reading of a mapping's fields by type. A wrong field is reported and the
//! others are still read, so one pass finds every error of a file (a YAML
//! syntax error excepted: the parser cannot go on after one).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use super::Errors;

/// One YAML node: a scalar, a list or a mapping, where it starts.
pub(super) struct Node {
    pub loc: Location,
    pub value: Value,
}

pub(super) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// In file order, repeated keys included.
    Map(Vec<(Node, Node)>),
}

/// Parses a whole document. Only YAML itself can fail here (syntax, aliases,
/// size budget); a repeated key comes through and is reported by [`Fields`].
pub(super) fn read(source: &str) -> Result<Node, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::PassThrough,
    };
    serde_saphyr::from_str_with_options(source, options)
}

impl Node {
    /// The node's text in the file, when it has one of its own (not an alias).
    fn raw<'s>(&self, source: &'s str) -> Option<&'s str> {
        let span = self.loc.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        let raw = source.get(start..start.checked_add(len)?)?;
        (!raw.starts_with('*')).then_some(raw)
    }

    /// A scalar as text, as written: `1.10` stays `1.10`, `yes` stays `yes`.
    /// `None` for nothing, a list or a mapping.
    pub fn text(&self, source: &str) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => Some(
                self.raw(source)
                    .map(str::to_owned)
                    .unwrap_or_else(|| self.value.to_string()),
            ),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// The node as JSON, for the fields whose types read themselves.
    pub fn to_json(&self, source: &str) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => i64::try_from(*i)
                .map(J::from)
                .or_else(|_| u64::try_from(*i).map(J::from))
                .unwrap_or_else(|_| J::from(*i as f64)),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or_else(
                || J::String(self.text(source).unwrap_or_default()),
                J::Number,
            ),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(|n| n.to_json(source)).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.text(source).unwrap_or_default(), v.to_json(source)))
                    .collect(),
            ),
        }
    }

    /// What the node is, for a message: "the number 1.5", "a list".
    pub fn describe(&self, source: &str) -> String {
        match &self.value {
            Value::Null => "nothing".into(),
            Value::Bool(_) => format!("`{}`", self.text(source).unwrap_or_default()),
            Value::Int(_) | Value::Float(_) => {
                format!("the number {}", self.text(source).unwrap_or_default())
            }
            Value::Str(s) if s.chars().count() > 40 => "a long text".into(),
            Value::Str(s) => format!("the text {s:?}"),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }

    fn spanned<T>(&self, value: T) -> Spanned<T> {
        Spanned::new(value, self.loc, self.loc)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::Seq(_) => f.write_str("[...]"),
            Value::Map(_) => f.write_str("{...}"),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(d)?;
        Ok(Node {
            loc: spanned.referenced,
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                Ok(Value::Int(v.into()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
                Ok(i128::try_from(v).map_or(Value::Float(v as f64), Value::Int))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
                Ok(Value::Str(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
                Value::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Node>()? {
                    items.push(item);
                }
                Ok(Value::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Node>()? {
                    let value = map.next_value::<Node>()?;
                    entries.push((key, value));
                }
                Ok(Value::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// The entries of one mapping, taken by name; [`Fields::finish`] reports
/// the names nothing took. `what` starts each message: `task "a": `.
pub(super) struct Fields<'n> {
    pub loc: Location,
    pub what: String,
    entries: Vec<(String, Location, &'n Node, bool)>,
}

impl<'n> Fields<'n> {
    /// The mapping `node` is, or an error saying what it should be.
    pub fn of(node: &'n Node, what: &str, expected: &str, errors: &mut Errors) -> Option<Self> {
        let Value::Map(map) = &node.value else {
            errors.at(
                node.loc,
                format!(
                    "{what}must be {expected}, not {}",
                    node.describe(errors.source)
                ),
            );
            return None;
        };
        let mut entries: Vec<(String, Location, &'n Node, bool)> = Vec::with_capacity(map.len());
        for (k, v) in map {
            let Some(key) = k.text(errors.source) else {
                errors.at(
                    k.loc,
                    format!(
                        "{what}a key must be a name, not {}",
                        k.describe(errors.source)
                    ),
                );
                continue;
            };
            if entries.iter().any(|(seen, ..)| *seen == key) {
                errors.at(
                    k.loc,
                    format!("{what}`{key}` is given twice in one mapping: keep one"),
                );
                continue;
            }
            entries.push((key, k.loc, v, false));
        }
        Some(Fields {
            loc: node.loc,
            what: what.to_owned(),
            entries,
        })
    }

    /// Every entry, in file order, as taken.
    pub fn all(&mut self) -> Vec<(String, Location, &'n Node)> {
        self.entries
            .iter_mut()
            .map(|(k, loc, v, taken)| {
                *taken = true;
                (k.clone(), *loc, *v)
            })
            .collect()
    }

    /// Where the value of `key` starts, if it is given.
    pub fn place(&self, key: &str) -> Option<Location> {
        self.entries
            .iter()
            .find(|(k, ..)| k == key)
            .map(|(_, _, v, _)| v.loc)
    }

    /// The value of `key`, unless it is absent or `null`.
    pub fn take(&mut self, key: &str) -> Option<&'n Node> {
        let entry = self.entries.iter_mut().find(|(k, ..)| k == key)?;
        entry.3 = true;
        (!matches!(entry.2.value, Value::Null)).then_some(entry.2)
    }

    /// Reports each key nothing took; `known` lists the ones there are.
    pub fn finish(self, known: &[&str], errors: &mut Errors) {
        for (key, loc, _, taken) in &self.entries {
            if !taken {
                errors.at(
                    *loc,
                    format!(
                        "{}unknown field `{key}`, expected one of {} (check the spelling; see \
                         the DAG file reference in the README)",
                        self.what,
                        known.join(", ")
                    ),
                );
            }
        }
    }

    /// Text: a string, or a scalar as written.
    pub fn text(&mut self, key: &str, errors: &mut Errors) -> Option<Spanned<String>> {
        let node = self.take(key)?;
        match node.text(errors.source) {
            Some(t) => Some(node.spanned(t)),
            None => {
                errors.at(
                    node.loc,
                    format!(
                        "{}`{key}` must be text (a string), not {}",
                        self.what,
                        node.describe(errors.source)
                    ),
                );
                None
            }
        }
    }

    /// Text that is not a number: `run: 42` is refused (quote it), as a
    /// number turned into a command is a slip; `run: true` is the command.
    pub fn command(&mut self, key: &str, example: &str, errors: &mut Errors) -> Option<String> {
        let node = self.take(key)?;
        match &node.value {
            Value::Str(_) | Value::Bool(_) => node.text(errors.source),
            _ => {
                let quoted = match node.text(errors.source) {
                    Some(t) => format!(": quote it (`{key}: \"{t}\"`) if that is what you mean"),
                    None => format!(", e.g. `{key}: {example}`"),
                };
                errors.at(
                    node.loc,
                    format!(
                        "{}`{key}` must be text, not {}{quoted}",
                        self.what,
                        node.describe(errors.source)
                    ),
                );
                None
            }
        }
    }

    pub fn flag(&mut self, key: &str, errors: &mut Errors) -> Option<bool> {
        let node = self.take(key)?;
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                errors.at(
                    node.loc,
                    format!(
                        "{}`{key}` must be true or false, not {}",
                        self.what,
                        node.describe(errors.source)
                    ),
                );
                None
            }
        }
    }

    /// A whole number that fits `T`, e.g. `retries: 3`.
    pub fn whole<T>(&mut self, key: &str, errors: &mut Errors) -> Option<Spanned<T>>
    where
        T: TryFrom<i128> + Bounded,
    {
        let node = self.take(key)?;
        if let Value::Int(i) = node.value
            && let Ok(v) = T::try_from(i)
        {
            return Some(node.spanned(v));
        }
        errors.at(
            node.loc,
            format!(
                "{}`{key}` must be a whole number {}, not {} (e.g. `{key}: {}`)",
                self.what,
                T::RANGE,
                node.describe(errors.source),
                T::EXAMPLE
            ),
        );
        None
    }

    /// A list of text (one text alone is a list of one), each with its place.
    pub fn texts(&mut self, key: &str, errors: &mut Errors) -> Option<Vec<Spanned<String>>> {
        let node = self.take(key)?;
        let items: Vec<&Node> = match &node.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item.text(errors.source) {
                Some(t) => out.push(item.spanned(t)),
                None => errors.at(
                    item.loc,
                    format!(
                        "{}`{key}` must be a list of names, e.g. `{key}: [a, b]`; this item is {}",
                        self.what,
                        item.describe(errors.source)
                    ),
                ),
            }
        }
        Some(out)
    }

    /// A mapping of names to text (`env:`, `headers:`).
    pub fn text_map(&mut self, key: &str, errors: &mut Errors) -> Option<BTreeMap<String, String>> {
        let node = self.take(key)?;
        let what = format!("{}`{key}`: ", self.what);
        let mut fields = Fields::of(
            node,
            &what,
            &format!("a mapping of names to values, e.g. `{key}: {{NAME: value}}`"),
            errors,
        )?;
        let mut out = BTreeMap::new();
        for (name, _, value) in fields.all() {
            match value.text(errors.source) {
                Some(t) => {
                    out.insert(name, t);
                }
                None if matches!(value.value, Value::Null) => {
                    out.insert(name, String::new());
                }
                None => errors.at(
                    value.loc,
                    format!(
                        "{what}the value of {name} must be text, not {}",
                        value.describe(errors.source)
                    ),
                ),
            }
        }
        Some(out)
    }

    /// A value whose type reads itself (a duration, a trigger rule, alerts),
    /// with the type's own message after the field's name.
    pub fn typed<T: DeserializeOwned>(
        &mut self,
        key: &str,
        errors: &mut Errors,
    ) -> Option<Spanned<T>> {
        let node = self.take(key)?;
        match serde_json::from_value::<T>(node.to_json(errors.source)) {
            Ok(v) => Some(node.spanned(v)),
            Err(e) => {
                errors.at(
                    node.loc,
                    format!("{}`{key}`: {}", self.what, plain(&e.to_string())),
                );
                None
            }
        }
    }
}

/// A serde message in plain words: "invalid type: floating point `1.5`,
/// expected a duration" becomes "expected a duration, not 1.5".
fn plain(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message).trim();
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((got, expected)) = rest.split_once(", expected ")
        {
            let got = got
                .trim_start_matches("floating point ")
                .trim_start_matches("integer ")
                .trim_start_matches("string ");
            return format!("expected {expected}, not {got}");
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        return format!("unknown value {rest}");
    }
    message.to_owned()
}

/// The range of a whole-number field, for its message.
pub(super) trait Bounded {
    const RANGE: &'static str;
    const EXAMPLE: &'static str;
}

impl Bounded for u32 {
    const RANGE: &'static str = "from 0 to 4294967295";
    const EXAMPLE: &'static str = "3";
}

impl Bounded for i32 {
    const RANGE: &'static str = "from -2147483648 to 2147483647";
    const EXAMPLE: &'static str = "10";
}

impl Bounded for u16 {
    const RANGE: &'static str = "from 0 to 65535";
    const EXAMPLE: &'static str = "200";
}
