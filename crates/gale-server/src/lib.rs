//! Gale's webserver: the REST API under `/api/v1` (with its OpenAPI document),
//! the web UI, authentication, `/health` for load balancers and `/metrics` for
//! Prometheus. Stateless but for login throttling (see `throttle`): every
//! fact it shows or changes is in the store, and sessions are rows there too,
//! so any number of webservers may run behind a load balancer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use gale_store::{Notifier, Store};
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;

pub mod alerts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod error;
pub mod health;
pub mod http;
pub mod metrics;
pub mod next_run;
pub mod secrets;
pub mod throttle;
pub mod ui;
pub mod vault;
pub mod versions;

pub use error::{ApiError, ApiResult};
pub use http::HttpLimits;

/// What every request handler shares.
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Wakes this process's scheduler after a trigger or clear (when it has one).
    pub notifier: Option<Arc<Notifier>>,
    /// False only with `--no-auth` on a loopback address.
    pub auth: bool,
    /// Browsers reach this server over HTTPS (its own TLS, or a proxy's):
    /// the session cookie is `Secure` and `__Host-` named, and answers carry
    /// `Strict-Transport-Security`.
    pub secure_cookies: bool,
    /// How long an unused session lasts (on the store's clock).
    pub session_idle: jiff::SignedDuration,
    /// Login throttling and the bound on password checks (this webserver's
    /// memory).
    pub logins: throttle::LoginGuard,
    /// Variables and connections, sealed under this process's keys (none by
    /// default: secret values are then refused, with how to make a key).
    pub vault: gale_secrets::Vault,
    /// What a test message through an alert channel is sent with (links,
    /// the default SMTP server and sender).
    pub alert_settings: gale_alerts::Settings,
    /// This process's deliverer's counts, when it runs one (for `/metrics`).
    pub alert_counters: Option<Arc<gale_alerts::Counters>>,
}

impl AppState {
    /// Authentication on, plain-HTTP cookies, the default session idle time
    /// and login policy.
    pub fn new(store: Arc<dyn Store>) -> AppState {
        AppState {
            vault: gale_secrets::Vault::new(store.clone(), None),
            store,
            notifier: None,
            auth: true,
            secure_cookies: false,
            session_idle: auth::SESSION_IDLE,
            logins: throttle::LoginGuard::default(),
            alert_settings: gale_alerts::Settings::default(),
            alert_counters: None,
        }
    }

    /// The same state with `vault` (one over the same store, with keys).
    pub fn with_vault(self, vault: gale_secrets::Vault) -> AppState {
        AppState { vault, ..self }
    }

    /// Tells this process's scheduler that a run changed.
    pub fn run_changed(&self, run: gale_model::RunId) {
        if let Some(n) = &self.notifier {
            n.run_changed(run);
        }
    }
}

/// Largest request body the server reads.
pub const BODY_LIMIT: usize = 1 << 20;

/// The whole application: UI, API, OpenAPI document and reference page,
/// health, metrics; behind authentication and security headers.
pub fn app(state: Arc<AppState>) -> Router {
    let (api_router, openapi) = api::router().split_for_parts();
    Router::new()
        .merge(ui::router())
        .merge(api_router)
        // One document: the one the reference page at /api/docs reads.
        .merge(utoipa_swagger_ui::SwaggerUi::new("/api/docs").url("/api/v1/openapi.json", openapi))
        .route("/health", axum::routing::get(health::health))
        .route("/health/live", axum::routing::get(health::live))
        .route("/health/ready", axum::routing::get(health::ready))
        .route("/metrics", axum::routing::get(metrics::metrics))
        // After every route: it applies to the routes registered before it.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            transport_headers,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                 script-src 'self'; frame-ancestors 'none'; form-action 'self'",
            ),
        ))
        .with_state(state)
}

/// `Cache-Control: no-store` on every answer but static assets (pages and
/// API answers carry logs, conf and who is logged in), and
/// `Strict-Transport-Security` when browsers come over HTTPS.
async fn transport_headers(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let asset = req.uri().path().starts_with("/assets/") || req.uri().path() == "/favicon.svg";
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    if !asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.secure_cookies {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    res
}

/// A path nothing serves: problem+json under `/api/` and for assets, else a page.
async fn not_found(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let path = req.uri().path().to_owned();
    let detail = format!("nothing at {path}");
    if path.starts_with("/api/") || path.starts_with("/assets/") {
        return ApiError::not_found(detail).into_response();
    }
    ui::not_found_page(&state, req, detail).await
}

/// A path that exists, asked with a method it does not take (axum adds the
/// `Allow` header).
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} does not take {method}: the Allow header lists what it takes",
            uri.path()
        ),
    )
}

/// Binds the address; the error names it.
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("cannot listen on {addr} (is --port in use?)"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// A PEM certificate chain and private key: serve HTTPS.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Loads the TLS files (an error names them), before anything starts.
pub async fn load_tls(tls: &TlsFiles) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    let _ = rustls_provider();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .with_context(|| {
            format!(
                "cannot load the TLS certificate {} and key {}",
                tls.cert.display(),
                tls.key.display()
            )
        })
}

/// Serves on `listener` until `cancel` (within `limits`), then lets requests
/// in flight finish for up to 5 s.
pub async fn serve(
    state: Arc<AppState>,
    listener: std::net::TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    limits: HttpLimits,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    http::serve(
        app(state),
        listener,
        tls.map(|t| t.get_inner()),
        limits,
        cancel,
    )
    .await
}

/// Installs the process-wide TLS crypto provider once.
fn rustls_provider() -> bool {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ONCE.get_or_init(|| {
        rustls::crypto::aws_lc_rs::default_provider()
            .install_default()
            .is_ok()
    })
}

/// On first start (no users yet): creates the user `admin` with a random
/// password and returns the password, to be shown once (the audit log
/// records it as done by `gale` at `startup`).
pub async fn ensure_admin(store: &dyn Store) -> anyhow::Result<Option<String>> {
    if !store.list_users().await?.is_empty() {
        return Ok(None);
    }
    let password = auth::new_password();
    let hash = auth::hash_password(&password)?;
    if !store
        .create_user("admin", gale_store::Role::Admin, &hash)
        .await?
    {
        return Ok(None);
    }
    let detail = gale_actions::audit::detail([("role", serde_json::json!("admin"))]);
    gale_actions::audit::record(
        store,
        &gale_actions::Actor::new("gale", "startup"),
        gale_store::AuditAction::UserCreate,
        "user/admin",
        detail,
        gale_store::AuditOutcome::Success,
    )
    .await;
    Ok(Some(password))
}
