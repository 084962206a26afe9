//! Assembling the server: state, routes, middleware, the background tasks, and serving with
//! graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::clock::{Clock as _, DefaultClock};
use siwa_core::{Clock, SystemClock};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

use std::num::NonZeroU32;

use governor::{Quota, RateLimiter};
use siwa_core::{KeySet, KeySetOptions, Verifier, VerifierConfig};

use crate::accounts::{Accounts, BrowserFlow, SessionRules};
use crate::apple::AppleGateway;
use crate::config::Config;
use crate::error::ApiError;
use crate::revocation::Revocations;
use crate::routes::{account, auth, notifications, ops, web, web_app};
use crate::sealing::Sealer;
use crate::sessions::{SessionKeyError, SessionKeys};
use crate::state::AppState;
use crate::store::Store;
use crate::tasks::Tasks;
use crate::web::WebFlow;
use crate::{db, housekeeping, request_body, response_policy, revocation, serve, telemetry};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The URL itself is not shown: it may hold a password.
    #[error("the database of SIWA_DATABASE_URL could not be opened or migrated: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    SessionKey(#[from] SessionKeyError),
    #[error("invalid configuration: {0}")]
    Config(#[from] siwa_core::ConfigError),
    #[error("could not listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error("secrets at rest: {0}")]
    EncryptionKey(String),
    #[error(transparent)]
    HttpClient(#[from] siwa_core::HttpClientError),
}

impl StartError {
    /// The machine or the configuration is wrong, not a service the server depends on: the
    /// process exits 2, as for bad configuration, and restarting it will not help.
    pub fn is_setup(&self) -> bool {
        matches!(
            self,
            Self::Config(_) | Self::EncryptionKey(_) | Self::HttpClient(_)
        )
    }
}

/// The routes and middleware, over a ready state.
pub fn router(state: Arc<AppState>) -> Router {
    // Rate-limited per client: every route that writes for an anonymous caller (a made-up
    // refresh token still costs a write transaction; a web start, which any page can make a
    // browser fire, writes a row).
    let limited = Router::new()
        .route("/auth/apple", post(auth::compat_sign_in))
        .route("/v1/auth/apple", post(auth::sign_in))
        .route("/v1/web/sign-in", get(web::start))
        .route("/v1/web/callback", post(web::callback))
        .route("/v1/web/complete", get(web::complete))
        .route("/v1/auth/exchange", post(web::exchange))
        .route("/v1/auth/refresh", post(auth::refresh))
        .route("/v1/auth/logout", post(auth::logout))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limit_per_client,
        ));
    // What web apps (`SIWA_WEB_ORIGINS`) call from their pages' scripts, with CORS for them
    // alone: the signed-in user and an access token over the session cookie (rate-limited as
    // the routes above), the sign-out, and the account as an access token sees it.
    let for_web_apps = Router::new()
        .route("/v1/web/token", post(web_app::web_token))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            limit_per_client,
        ))
        .route(
            "/v1/web/session",
            get(web_app::web_session).delete(web_app::end_web_session),
        )
        .route("/v1/me", get(account::me).delete(account::delete_me))
        .layer(cors_for_web_apps(&state));
    let api = Router::new()
        .merge(limited)
        .merge(for_web_apps)
        .route("/v1/web/app-redirect-uri", get(web::check_app_redirect))
        .route("/v1/apple/notifications", post(notifications::receive))
        .route("/", get(web::show_page))
        .route("/v1/web/sign-out", post(web::sign_out))
        .route("/v1/web/delete-account", post(web::delete_account))
        .route("/assets/siwa.css", get(web::stylesheet))
        .route(crate::web::page::POPUP_SCRIPT_PATH, get(web::popup_script))
        .route("/favicon.ico", get(web::favicon))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/.well-known/jwks.json", get(ops::jwks))
        .route("/openapi.json", get(ops::openapi))
        .route_layer(middleware::from_fn(telemetry::count))
        .route_layer(telemetry::request_log());
    // Metrics on an address of their own, or on the public one behind a bearer token; with
    // neither, not at all: anyone could read how many people sign in and delete accounts.
    let api = match (&state.config.metrics_address, &state.config.metrics_token) {
        (None, Some(_)) => api.merge(
            metrics_router()
                .route_layer(middleware::from_fn_with_state(state.clone(), metrics_token)),
        ),
        _ => api,
    };
    let router = api
        .fallback(not_found)
        .layer(middleware::from_fn(request_body::read_whole))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn(response_policy::policy));
    let router = if state.config.web.is_https() {
        // Served over https: browsers are told to come back over https only (two years).
        router.layer(middleware::map_response(strict_transport_security))
    } else {
        router
    };
    // Outermost: it sees every error, the ones the layers above make included.
    router
        .layer(middleware::from_fn(crate::error::record))
        .with_state(state)
}

/// CORS with credentials for `SIWA_WEB_ORIGINS` alone; any other origin gets no CORS header,
/// so its scripts read nothing and send nothing a preflight guards.
fn cors_for_web_apps(state: &AppState) -> CorsLayer {
    let origins = state
        .web
        .iter()
        .flat_map(|web| &web.web_origins)
        .filter_map(|origin| HeaderValue::from_str(origin).ok());
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(crate::web::guard::WEB_APP_HEADER),
        ])
        .max_age(Duration::from_secs(600))
}

/// `/metrics` alone: merged into the API, or served on `SIWA_METRICS_ADDR`.
fn metrics_router() -> Router<Arc<AppState>> {
    Router::new().route("/metrics", get(ops::metrics))
}

/// `/metrics` on the public address: only with `SIWA_METRICS_TOKEN` as bearer token.
async fn metrics_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let expected = state.config.metrics_token.as_deref().unwrap_or_default();
    let presented = crate::sessions::bearer_token(request.headers());
    match presented {
        None => ApiError::MissingAccessToken.into_response(),
        Some(token) if bool::from(token.as_bytes().ct_eq(expected.as_bytes())) => {
            next.run(request).await
        }
        Some(_) => ApiError::InvalidAccessToken.into_response(),
    }
}

async fn strict_transport_security(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static("max-age=63072000; includeSubDomains"),
    );
    response
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Per client, on the routes that write for anonymous callers.
async fn limit_per_client(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(limiter) = &state.client_limiter
        && let Some(client) = crate::forwarded::client_of(
            request.headers(),
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            state.config.trusted_proxy_hops,
        )
        && let Err(not_until) = limiter.check_key(&client)
    {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        return ApiError::RateLimited {
            retry_after_secs: wait.as_secs_f64().ceil() as u64,
        }
        .into_response();
    }
    next.run(request).await
}

/// Opens the database, loads the keys, and builds the state; the store's tasks join `tasks`.
async fn prepare(config: Config, tasks: &Tasks) -> Result<Arc<AppState>, StartError> {
    telemetry::prometheus();
    let store = open_store(&config, tasks).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sessions = SessionKeys::load(
        &store,
        config.access_token_ttl.as_secs() as i64,
        clock.now(),
    )
    .await?;
    let endpoints = siwa_core::Endpoints::new(config.apple_base_url.clone());
    let keys = KeySet::remote(endpoints.keys(), KeySetOptions::default())?;
    let mut app_verifier = VerifierConfig::new(config.client_ids.clone());
    app_verifier.issuers = config.issuers.clone();
    let web = WebFlow::new(&config.web, &config.apple_base_url);
    let browser = match config.web.flow_parts() {
        Some((services_id, public_url)) => {
            let mut verifier = VerifierConfig::new([services_id]);
            verifier.issuers = config.issuers.clone();
            Some(BrowserFlow {
                verifier: Verifier::new(verifier, keys.clone())?,
                callback_url: crate::config::web::callback_url(public_url),
            })
        }
        None => None,
    };
    let apple = Arc::new(AppleGateway::new(
        &config.apple_base_url,
        config.apple_key.clone(),
        clock.clone(),
    )?);
    let revocations = Revocations {
        store: store.clone(),
        apple: apple.clone(),
        retry_base_secs: config.revocation_retry_base.as_secs() as i64,
    };
    let accounts = Accounts {
        store: store.clone(),
        app_verifier: Verifier::new(app_verifier, keys)?,
        browser,
        apple,
        sessions,
        revocations,
        rules: SessionRules {
            refresh_ttl_secs: config.refresh_token_ttl.as_secs() as i64,
            refresh_reuse_grace_secs: config.refresh_reuse_grace.as_secs() as i64,
        },
        clock,
    };
    let client_limiter = config
        .rate_limit_per_minute
        .and_then(NonZeroU32::new)
        .map(|per_minute| Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))));
    Ok(Arc::new(AppState {
        config,
        accounts,
        web,
        client_limiter,
        store,
    }))
}

/// The keys that seal secrets at rest: `SIWA_ENCRYPTION_KEY`'s or, on SQLite, those of a key
/// file beside the database, made (readable by its owner only) on first start.
/// Opens and migrates the database of `config`, with its sealing key; the store's tasks join
/// `tasks`. What `serve` does first, and the operator's commands (`transfer`) too.
pub(crate) async fn open_store(config: &Config, tasks: &Tasks) -> Result<Store, StartError> {
    let sealer = sealer(config)?;
    let pool = db::connect(&config.database_url).await?;
    let file = db::sqlite_file(&config.database_url).map(crate::store::DatabaseFile::opened);
    let store = Store::new(
        pool,
        db::DatabaseKind::of(&config.database_url),
        file,
        sealer,
        config.webhooks.is_some(),
        tasks,
    );
    store.seal_secrets_at_rest().await?;
    Ok(store)
}

fn sealer(config: &Config) -> Result<Sealer, StartError> {
    if let Some(sealer) = &config.encryption_key {
        return Ok(sealer.clone());
    }
    if db::DatabaseKind::of(&config.database_url) == db::DatabaseKind::Postgres {
        return Err(StartError::EncryptionKey(
            "SIWA_ENCRYPTION_KEY is required with PostgreSQL".into(),
        ));
    }
    let Some(file) = db::sqlite_key_file(&config.database_url) else {
        // An in-memory database dies with the process, and so may its key.
        return Ok(Sealer::from_keys(&Sealer::generate_key()).expect("a generated key is valid"));
    };
    let fail = |e: &dyn std::fmt::Display| {
        StartError::EncryptionKey(format!("the key file {}: {e}", file.display()))
    };
    if let Some(mut created) = db::create_private(&file).map_err(|e| fail(&e))? {
        std::io::Write::write_all(&mut created, Sealer::generate_key().as_bytes())
            .and_then(|()| created.sync_all())
            .map_err(|e| fail(&e))?;
        tracing::warn!(file = %file.display(), "made an encryption key for the secrets in the database: back it up with the database, or set SIWA_ENCRYPTION_KEY");
    }
    let key = std::fs::read_to_string(&file).map_err(|e| fail(&e))?;
    Sealer::from_keys(key.trim()).map_err(|e| fail(&e))
}

/// A server running in the background (for `dev`, tests and embedding).
pub struct RunningServer {
    pub address: SocketAddr,
    /// Where `/metrics` is served, when not on `address`.
    pub metrics_address: Option<SocketAddr>,
    pub state: Arc<AppState>,
    /// Stops accepting; the listeners drain.
    stop_serving: CancellationToken,
    /// The listeners: the API's and, if it has its own address, the metrics'.
    serving: JoinHandle<()>,
    /// The revocation worker, housekeeping, and the store's writer and checkpointer.
    tasks: Tasks,
}

impl RunningServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops accepting requests and lets those in flight finish; then stops every background
    /// task (the SQLite writer last writes what is queued) and closes the database.
    pub async fn shutdown(self) {
        self.stop_serving.cancel();
        let _ = self.serving.await;
        self.tasks.stop().await;
        self.state.store.close().await;
    }
}

/// Starts serving on the configured address (port 0 picks a free one).
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let address = SocketAddr::new(config.host, config.port);
    // The port first: a port already taken is reported before any database file is made.
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| StartError::Bind(address, e))?;
    let address = listener
        .local_addr()
        .map_err(|e| StartError::Bind(address, e))?;
    let metrics_listener = match config.metrics_address {
        Some(metrics) => Some(
            TcpListener::bind(metrics)
                .await
                .map_err(|e| StartError::Bind(metrics, e))?,
        ),
        None => None,
    };
    let metrics_address = match &metrics_listener {
        Some(listener) => Some(
            listener
                .local_addr()
                .map_err(|e| StartError::Bind(config.metrics_address.unwrap_or(address), e))?,
        ),
        None => None,
    };
    let tasks = Tasks::new();
    let state = match prepare(config, &tasks).await {
        Ok(state) => state,
        Err(error) => {
            tasks.stop().await;
            return Err(error);
        }
    };
    let revocations = Revocations {
        store: state.store.clone(),
        apple: state.accounts.apple(),
        retry_base_secs: state.config.revocation_retry_base.as_secs() as i64,
    };
    let poll = state.config.revocation_poll_interval;
    let clock = state.accounts.clock();
    tasks.spawn("revocation-worker", move |stop| {
        revocation::work_queue(revocations, poll, clock, stop)
    });
    let tidied = housekeeping::Housekeeping {
        store: state.store.clone(),
        limiter: state.client_limiter.clone(),
        refresh_reuse_grace_secs: state.config.refresh_reuse_grace.as_secs() as i64,
        clock: state.accounts.clock(),
    };
    tasks.spawn("housekeeping", |stop| housekeeping::run(tidied, stop));
    tasks.spawn("metrics-upkeep", telemetry::upkeep);
    if let Some(webhooks) = state.config.webhooks.clone() {
        let store = state.store.clone();
        let clock = state.accounts.clock();
        tasks.spawn("webhook-delivery", |stop| {
            crate::webhooks::delivery::run(store, webhooks, clock, stop)
        });
    }
    let stop_serving = CancellationToken::new();
    let app = router(state.clone());
    let limits = state.config.connections;
    let metrics = metrics_listener.map(|listener| {
        let app = metrics_router().with_state(state.clone());
        tokio::spawn(serve::serve(listener, app, limits, stop_serving.clone()))
    });
    let serving = tokio::spawn(serve::serve(listener, app, limits, stop_serving.clone()));
    let serving = tokio::spawn(async move {
        let _ = serving.await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
    });
    Ok(RunningServer {
        address,
        metrics_address,
        state,
        stop_serving,
        serving,
        tasks,
    })
}
