//! Secret masking: values under secret-looking keys of a run's conf or a DAG's
//! params (password, token, key, ...) are never shown, in the API, the pages
//! or a log line. The API and the UI both mask through here.

/// Keys of `conf` whose values are never shown (API, pages, logs).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "credential",
        "auth",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// The values under secret-looking keys of a run's conf (at any depth), to be
/// masked wherever they appear: a rendered command, a log line.
#[derive(Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    pub fn of(conf: &serde_json::Map<String, serde_json::Value>) -> Secrets {
        fn walk(map: &serde_json::Map<String, serde_json::Value>, out: &mut Vec<String>) {
            for (k, v) in map {
                match v {
                    serde_json::Value::Object(inner) => walk(inner, out),
                    serde_json::Value::String(text) if is_secret_key(k) => out.push(text.clone()),
                    serde_json::Value::Number(n) if is_secret_key(k) => out.push(n.to_string()),
                    _ => {}
                }
            }
        }
        let mut found = Vec::new();
        walk(conf, &mut found);
        // Short values would mask ordinary text; longest first, so a secret
        // that contains another is masked whole.
        found.retain(|v| v.chars().count() >= 4);
        found.sort_by_key(|v| std::cmp::Reverse(v.len()));
        found.dedup();
        Secrets(found)
    }

    /// `text` with every secret value replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

/// `conf` with secret-looking values replaced by `***`.
pub fn mask_conf(
    conf: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Map<String, serde_json::Value> {
    conf.iter()
        .map(|(k, v)| {
            let v = match v {
                _ if is_secret_key(k) => serde_json::Value::String("***".into()),
                serde_json::Value::Object(inner) => serde_json::Value::Object(mask_conf(inner)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_text() {
        let conf = serde_json::json!({
            "db_password": "hunter22",
            "name": "hunter22-is-not-secret-here",
            "nested": {"api_token": 123456, "region": "eu"},
            "short_secret": "abc",
        });
        let secrets = Secrets::of(conf.as_object().expect("an object"));
        assert_eq!(
            secrets.mask("psql --password hunter22 --token 123456 --region eu"),
            "psql --password *** --token *** --region eu"
        );
        assert_eq!(
            secrets.mask("abc stays: too short to mask"),
            "abc stays: too short to mask"
        );
        let masked = mask_conf(conf.as_object().expect("an object"));
        assert_eq!(masked["db_password"], "***");
        assert_eq!(masked["name"], "hunter22-is-not-secret-here");
        assert_eq!(masked["nested"]["api_token"], "***");
        assert_eq!(masked["nested"]["region"], "eu");
    }
}
