//! Secret masking in the views: the model's one masker (`gale_model::mask`),
//! as the API and the UI use it. The worker has masked what it stored (log
//! lines, outputs, messages, rendered commands) with the whole run's secrets;
//! the views mask again with what they know of any run (its conf), so rows
//! stored before a secret was declared still show `***` for conf values, and
//! mask conf, params and DAG sources as shown.

pub use gale_model::mask::{Masker as Secrets, is_secret_key, mask_conf, mask_params};

/// A DAG file's text as `role` may see it: whole for admins, with the literal
/// values of secret params and secret-looking `env` entries masked for
/// everyone else. A source that no longer parses is shown as stored, since
/// the version row was parsed when it was stored.
pub fn source_for(source: &str, spec: &gale_model::Dag, role: gale_store::Role) -> String {
    if role >= gale_store::Role::Admin {
        return source.to_owned();
    }
    Secrets::of_source(spec).mask(source)
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
        let secrets = Secrets::of_conf(conf.as_object().expect("an object"));
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

    #[test]
    fn sources_are_masked_for_all_but_admins() {
        let text = "id: s\nparams:\n  key: {secret: true, default: s3cr3t-default}\ntasks:\n  t:\n    run: echo\n    env:\n      DB_PASSWORD: env-pw-123\n";
        let spec = gale_model::dag::parse("s.yaml", "s", text).expect("parses");
        let shown = source_for(text, &spec, gale_store::Role::Viewer);
        assert!(
            !shown.contains("s3cr3t-default") && !shown.contains("env-pw-123"),
            "{shown}"
        );
        assert!(shown.contains("DB_PASSWORD: ***"), "{shown}");
        assert_eq!(source_for(text, &spec, gale_store::Role::Admin), text);
    }
}
