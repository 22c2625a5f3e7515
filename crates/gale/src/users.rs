//! `gale users` and `gale tokens`: who may use the web UI and API. Each change
//! is recorded in the audit log (never a password or a token's secret).

use std::io::Read as _;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use gale_server::auth::{self, Role};

use gale_actions::audit::detail;
use gale_store::AuditAction;
use serde_json::{Map, json};

use crate::cli::{open_store, parse_span, print_json, record, table, when};
use crate::{Output, Paths, exit};

#[derive(Subcommand, Debug)]
pub enum UsersCmd {
    /// Create a user; prints a random password once unless --password-stdin.
    Create {
        name: String,
        /// admin (everything), operator (trigger, clear, pause, mark) or viewer (read only).
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users and their roles.
    List,
    /// Delete a user, with their sessions and API tokens.
    Delete { name: String },
    /// Set a new password (random and printed once, unless --password-stdin);
    /// ends the user's sessions and revokes their API tokens.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokensCmd {
    /// Create an API token for a user; the token is printed once.
    Create {
        /// The user the token acts as (with their role).
        #[arg(long)]
        user: String,
        /// A label, e.g. the script that uses it.
        #[arg(long)]
        name: String,
        /// Expire after this long, e.g. 30d or 12h.
        #[arg(long, value_parser = parse_span, default_value = "90d")]
        expires_in: std::time::Duration,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token by id.
    Revoke { id: i64 },
}

fn password(stdin: bool) -> anyhow::Result<(String, bool)> {
    if !stdin {
        return Ok((auth::new_password(), true));
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the password from standard input")?;
    let text = text.trim_end_matches(['\n', '\r']).to_owned();
    if text.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    Ok((text, false))
}

pub async fn users(paths: &Paths, output: Output, cmd: UsersCmd) -> anyhow::Result<u8> {
    let store = open_store(paths).await?;
    match cmd {
        UsersCmd::Create {
            name,
            role,
            password_stdin,
        } => {
            let Some(role) = Role::parse(&role) else {
                bail!("--role must be admin, operator or viewer, not {role:?}");
            };
            if !auth::valid_user_name(&name) {
                bail!("a user name has 1–64 letters, digits or . _ @ -, not {name:?}");
            }
            let (pw, generated) = password(password_stdin)?;
            let created = store
                .create_user(&name, role, &auth::hash_password(&pw)?)
                .await?;
            let exists = format!("a user {name:?} exists already");
            let about = detail([("role", json!(role.as_str()))]);
            let result = if created {
                Ok(())
            } else {
                Err(exists.as_str())
            };
            record(
                &*store,
                AuditAction::UserCreate,
                &format!("user/{name}"),
                about,
                result,
            )
            .await;
            if !created {
                bail!("{exists}");
            }
            if output == Output::Json {
                let mut doc = json!({"name": name, "role": role.as_str()});
                if generated {
                    doc["password"] = json!(pw);
                }
                print_json(&doc)?;
            } else {
                eprintln!("created {} user {name}", role.as_str());
                if generated {
                    eprintln!("password (shown only now):");
                    println!("{pw}");
                }
            }
        }
        UsersCmd::List => {
            let users = store.list_users().await?;
            if output == Output::Json {
                print_json(&users)?;
            } else {
                let rows = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.name.clone(),
                            u.role.as_str().to_owned(),
                            when(Some(u.created_at)),
                        ]
                    })
                    .collect();
                println!("{}", table(&["USER", "ROLE", "CREATED"], rows));
            }
        }
        UsersCmd::Delete { name } => {
            // Never the last admin (the store checks in the same transaction).
            gale_actions::admin::delete_user(&*store, &crate::cli::cli_actor(), None, &name)
                .await
                .map_err(crate::cli::not_found_hint)?;
            eprintln!("deleted user {name}, with their sessions and tokens");
        }
        UsersCmd::Passwd {
            name,
            password_stdin,
        } => {
            let (pw, generated) = password(password_stdin)?;
            let set = store
                .set_password(&name, &auth::hash_password(&pw)?)
                .await?;
            let missing = format!("no user {name}");
            let result = if set { Ok(()) } else { Err(missing.as_str()) };
            let target = format!("user/{name}");
            record(
                &*store,
                AuditAction::UserPassword,
                &target,
                Map::new(),
                result,
            )
            .await;
            if !set {
                return Err(crate::cli::NotFound(missing).into());
            }
            eprintln!("new password set for {name}; their sessions ended and API tokens revoked");
            if generated {
                eprintln!("password (shown only now):");
                println!("{pw}");
            }
        }
    }
    Ok(exit::OK)
}

pub async fn tokens(paths: &Paths, output: Output, cmd: TokensCmd) -> anyhow::Result<u8> {
    let store = open_store(paths).await?;
    match cmd {
        TokensCmd::Create {
            user,
            name,
            expires_in,
        } => {
            if expires_in.is_zero() {
                bail!("--expires-in must be more than 0");
            }
            // On the store's clock, which the token is checked against.
            let expires = Some(
                store
                    .now()
                    .await?
                    .checked_add(
                        jiff::SignedDuration::try_from(expires_in)
                            .context("--expires-in is too long")?,
                    )
                    .context("--expires-in is too far in the future")?,
            );
            if store.get_user(&user).await?.is_none() {
                return Err(crate::cli::NotFound(format!(
                    "no user {user}: create one with `gale users create`"
                ))
                .into());
            }
            let (id, secret) = auth::create_token(&*store, &user, &name, expires).await?;
            let mut about = detail([("user", json!(user)), ("name", json!(name))]);
            if let Some(t) = expires {
                about.insert("expires_at".into(), json!(t.to_string()));
            }
            record(
                &*store,
                AuditAction::TokenCreate,
                &format!("token/{id}"),
                about,
                Ok(()),
            )
            .await;
            if output == Output::Json {
                print_json(
                    &json!({"id": id, "name": name, "user": user, "expires_at": expires.map(|t| t.to_string()), "token": secret}),
                )?;
            } else {
                eprintln!(
                    "token {id} ({name}) for {user}; use it as `Authorization: Bearer <token>`."
                );
                eprintln!("It is shown only now:");
                println!("{secret}");
            }
        }
        TokensCmd::List { user } => {
            let tokens = store.list_tokens(user.as_deref()).await?;
            if output == Output::Json {
                print_json(&tokens)?;
            } else {
                let rows = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.to_string(),
                            t.name.clone(),
                            t.user.clone(),
                            t.role.as_str().to_owned(),
                            when(Some(t.created_at)),
                            when(t.expires_at),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(&["ID", "NAME", "USER", "ROLE", "CREATED", "EXPIRES"], rows)
                );
            }
        }
        TokensCmd::Revoke { id } => {
            gale_actions::admin::revoke_token(&*store, &crate::cli::cli_actor(), id)
                .await
                .map_err(crate::cli::not_found_hint)?;
            eprintln!("revoked token {id}");
        }
    }
    Ok(exit::OK)
}
