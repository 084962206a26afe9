//! Logs and metrics. Request logs carry the method, the route pattern, the status and the
//! latency: never a query string, a body, a token, a nonce or an email.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing::Span;

/// The process-wide Prometheus recorder (metrics macros record into one global recorder).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
            .expect("the bucket list is not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// How often the recorder's upkeep runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Runs the recorder's upkeep every few seconds until `stop`. A histogram keeps every sample
/// recorded until it is folded into its buckets, which a scrape of `/metrics` or this upkeep
/// does: without it, a server nobody scrapes grew by about 20 bytes a request (106 MB in three
/// minutes at 30,000 requests a second; metrics-rs/metrics#467).
pub async fn upkeep(stop: tokio_util::sync::CancellationToken) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => prometheus().run_upkeep(),
            () = stop.cancelled() => return,
        }
    }
}

/// Installs the log subscriber: text, or JSON for log shippers.
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .try_init()
    };
}

pub type RequestLog = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request) -> Span,
    (),
    fn(&Response, Duration, &Span),
    (),
    (),
    (),
>;

/// The request log, through tower-http's `trace`: one span per routed request (method and
/// route pattern; never the path with its parameters, a query string or a header) and one line
/// when the answer is sent (status and latency).
pub fn request_log() -> RequestLog {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request) -> Span)
        .on_request(())
        .on_response(log_response as fn(&Response, Duration, &Span))
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

fn request_span(request: &Request) -> Span {
    tracing::info_span!(
        target: "siwa_server::access",
        "request",
        method = %request.method(),
        route = route(request),
    )
}

fn log_response(response: &Response, latency: Duration, _span: &Span) {
    tracing::info!(
        target: "siwa_server::access",
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "answered"
    );
}

/// Counts and times each routed request by route pattern, for `/metrics`.
pub async fn count(request: Request, next: Next) -> Response {
    let route = route(&request).to_owned();
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("siwa_http_request_duration_seconds", "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("siwa_http_requests_total", "route" => route, "method" => method, "status" => status).increment(1);
    response
}

/// The pattern the request was routed by (`/v1/me`), so that labels and logs stay few and
/// carry nothing a client put in the path.
fn route(request: &Request) -> &str {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
}
