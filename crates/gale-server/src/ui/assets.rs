//! The UI's static files, embedded in the binary (`assets/`): served at
//! `/assets/<file>` and `/favicon.svg`, so the UI needs nothing from the
//! internet. Pages link them with `?v=<hash of every asset>`, so a browser may
//! keep them for a year and still never runs a stale script after an upgrade.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The content type of an asset, by extension; `None` for files that are not
/// served (the folder's README).
fn content_type(file: &str) -> Option<&'static str> {
    let ext = file.rsplit_once('.')?.1;
    Some(match ext {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => return None,
    })
}

/// A short hash of every served asset: changes whenever one does.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut names: Vec<_> = Assets::iter().collect();
        names.sort();
        let mut h = Sha256::new();
        for name in names {
            if let Some(f) = Assets::get(&name) {
                h.update(name.as_bytes());
                h.update(f.metadata.sha256_hash());
            }
        }
        hex::encode(&h.finalize()[..6])
    })
}

fn serve(file: &str, cache: &'static str) -> Response {
    let (Some(kind), Some(f)) = (content_type(file), Assets::get(file)) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    (
        [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, cache)],
        f.data.into_owned(),
    )
        .into_response()
}

pub async fn asset(Path(file): Path<String>) -> Response {
    serve(&file, "public, max-age=31536000, immutable")
}

pub async fn favicon() -> Response {
    serve("favicon.svg", "public, max-age=86400")
}
