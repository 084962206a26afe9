//! The connection limits (`siwa_server::serve`): unfinished headers and silent connections are
//! cut off, connections beyond the cap wait for a free slot, and a shutdown ends within its
//! grace period even with connections open. Connection handling does not touch the database,
//! so these run on SQLite only.

mod common;

use std::time::Duration;

use common::*;
use siwa_server::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(limits: ConnectionLimits) -> Harness {
    Harness::start_with(Db::Sqlite, |config| config.connections = limits)
        .await
        .unwrap()
}

async fn connect(h: &Harness) -> TcpStream {
    TcpStream::connect(h.server.address).await.unwrap()
}

/// Reads until the server closes the connection; `None` if it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_headers_are_cut_off() {
    let h = server(ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut stream = connect(&h).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: siwa\r\n")
        .await
        .unwrap();
    let closed = closed_within(&mut stream, Duration::from_secs(5)).await;
    assert!(
        closed.is_some(),
        "a client that never finishes its headers keeps the connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_keep_alive_connection_is_closed() {
    let h = server(ConnectionLimits {
        idle_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut stream = connect(&h).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: siwa\r\n\r\n")
        .await
        .unwrap();
    let answered = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .expect("the silent connection is closed");
    assert!(
        answered.starts_with(b"HTTP/1.1 200"),
        "the request itself was served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let h = server(ConnectionLimits {
        max_connections: 2,
        ..Default::default()
    })
    .await;
    let first = connect(&h).await;
    let _second = connect(&h).await;
    // Let the server take both before asking for a third.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let refused = quick.get(h.url("/healthz")).send().await;
    assert!(
        refused.is_err(),
        "a third connection was served beyond the cap"
    );
    drop(first);
    let served = h.http.get(h.url("/healthz")).send().await.unwrap();
    assert_eq!(
        served.status(),
        200,
        "a freed slot serves the next connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_ends_within_its_grace_period_with_connections_open() {
    let h = server(ConnectionLimits::default()).await;
    // A server of the test's own (the harness keeps its own until dropped), with a short grace.
    let mut config = h.config();
    config.connections.shutdown_grace = Duration::from_millis(300);
    let server = siwa_server::start(config).await.unwrap();
    let mut hanging = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        hanging.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopped = tokio::time::timeout(Duration::from_secs(5), server.shutdown()).await;
    assert!(
        stopped.is_ok(),
        "the shutdown waited on connections past its grace period"
    );
    drop(hanging);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_writes_its_whole_body_first_gets_the_413() {
    let h = server(ConnectionLimits::default()).await;
    for mib in [1usize, 4, 16, 64] {
        let size = mib * 1024 * 1024;
        let mut stream = connect(&h).await;
        let head = format!(
            "POST /v1/auth/apple HTTP/1.1\r\nHost: siwa\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&vec![b' '; size]).await.unwrap();
        let answer = closed_within(&mut stream, Duration::from_secs(30))
            .await
            .expect("the server closes after the 413");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{mib} MiB: {answer}");
        assert!(answer.contains("\"body_too_large\""), "{mib} MiB: {answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_client_is_told_the_connection_closes() {
    let h = Harness::start_with(Db::Sqlite, |config| config.rate_limit_per_minute = Some(1))
        .await
        .unwrap();
    let body = serde_json::json!({"identityToken": "x"});
    let first = h
        .http
        .post(h.url("/auth/apple"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_ne!(first.status(), 429);
    let limited = h
        .http
        .post(h.url("/auth/apple"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["connection"], "close");
    assert!(limited.headers().contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_served_on_an_address_of_their_own() {
    let h = Harness::start_with(Db::Sqlite, |config| {
        config.metrics_address = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
    .unwrap();
    let public = h.http.get(h.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404, "metrics stay off the public address");
    let private = h.server.metrics_address.expect("a metrics address");
    let metrics = h
        .http
        .get(format!("http://{private}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("siwa_"));
}

/// A connection from another loopback address: the server sees another client.
async fn connect_from(h: &Harness, source: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(h.server.address).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_hold_every_connection() {
    let h = server(ConnectionLimits {
        max_connections: 8,
        per_client: 3,
        ..Default::default()
    })
    .await;
    // The attacker opens far more connections than the server serves and sends nothing.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(connect_from(&h, "127.0.0.2").await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Past its three, each was closed at once.
    let mut closed = 0;
    for stream in &mut held {
        if closed_within(stream, Duration::from_millis(50))
            .await
            .is_some()
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 17, "the client keeps three connections");
    // Everyone else is served at once.
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    for _ in 0..3 {
        let served = quick.get(h.url("/healthz")).send().await.unwrap();
        assert_eq!(served.status(), 200);
    }
    // Its slots come back when its connections end.
    held.clear();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from(&h, "127.0.0.2").await;
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: siwa\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut again, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed_within_seconds() {
    let h = server(ConnectionLimits {
        first_byte_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    let mut silent = connect(&h).await;
    assert!(
        closed_within(&mut silent, Duration::from_secs(3))
            .await
            .is_some(),
        "a connection that never spoke was kept"
    );
    // One that speaks at once is served and kept for the idle timeout, not the first-byte one.
    let mut speaking = connect(&h).await;
    speaking
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: siwa\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = speaking.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    assert!(
        closed_within(&mut speaking, Duration::from_millis(800))
            .await
            .is_none(),
        "a kept-alive connection is closed by the idle timeout only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_logout_and_web_starts_are_rate_limited_per_client() {
    for (method, path) in [
        (reqwest::Method::POST, "/v1/auth/refresh"),
        (reqwest::Method::POST, "/v1/auth/logout"),
        (reqwest::Method::GET, "/v1/web/sign-in"),
    ] {
        // Each route on its own server, so that the buckets start full.
        let h = Harness::start_with(Db::Sqlite, |config| config.rate_limit_per_minute = Some(2))
            .await
            .unwrap();
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let response = h
                .http
                .request(method.clone(), h.url(path))
                .json(&serde_json::json!({"refreshToken": "made-up"}))
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
        assert_ne!(statuses[0], 429, "{path}");
        assert_eq!(statuses[2], 429, "{path}: {statuses:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_not_served_to_anonymous_clients_on_the_public_address() {
    let h = Harness::start_with(Db::Sqlite, |_| {}).await.unwrap();
    let anonymous = h.http.get(h.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = h
        .http
        .get(h.url("/metrics"))
        .bearer_auth("siwa-wrong-metrics-token-of-32-characters")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        h.metrics().await.contains("siwa_"),
        "the scraper's token opens them"
    );
    // With neither a token nor an address of their own, they are not served at all.
    let closed = Harness::start_with(Db::Sqlite, |config| config.metrics_token = None)
        .await
        .unwrap();
    let response = closed
        .http
        .get(closed.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

/// The HTTP/2 connection preface and an empty SETTINGS frame: what a client sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
/// An HTTP/2 PING frame (8 bytes of payload, stream 0).
const H2_PING: &[u8] = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00pingping";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_silent_after_its_preface_is_closed_like_http1() {
    let h = server(ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    let mut silent = connect(&h).await;
    silent.write_all(H2_PREFACE).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(3))
            .await
            .is_some(),
        "an HTTP/2 connection that sends no request is held for the idle timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_sending_only_pings_is_not_kept_alive_by_them() {
    let h = server(ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    let stream = connect(&h).await;
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(H2_PREFACE).await.unwrap();
    let pinging = tokio::spawn(async move {
        for _ in 0..50 {
            if writer.write_all(H2_PING).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        let mut buf = [0u8; 1024];
        while matches!(reader.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
    pinging.abort();
    assert!(
        closed.is_ok(),
        "pings kept a connection with no request open"
    );
}

/// Three quarters full, idle keep-alive connections are closed after the short limit: a few
/// addresses holding idle connections cannot keep everyone else in the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_sooner_as_the_server_fills() {
    let h = server(ConnectionLimits {
        max_connections: 4,
        first_byte_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(60),
        ..Default::default()
    })
    .await;
    async fn kept_alive(h: &Harness, source: &str) -> TcpStream {
        let mut stream = connect_from(h, source).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: siwa\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        stream
    }
    // One idle connection of four slots: kept for the idle timeout.
    let mut alone = kept_alive(&h, "127.0.0.2").await;
    assert!(
        closed_within(&mut alone, Duration::from_millis(1500))
            .await
            .is_none(),
        "an idle connection of a quiet server is closed by the idle timeout only"
    );
    // Every slot taken by idle connections: the newcomer waiting in the backlog is served
    // within the short limit, because idle connections make room, not after the idle timeout.
    let mut idle = vec![alone];
    for source in ["127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        idle.push(kept_alive(&h, source).await);
    }
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let served = quick.get(h.url("/healthz")).send().await;
    assert_eq!(
        served.map(|r| r.status()).ok(),
        Some(reqwest::StatusCode::OK),
        "a newcomer waited behind idle connections"
    );
    let mut closed = 0;
    for stream in &mut idle {
        if closed_within(stream, Duration::from_millis(50))
            .await
            .is_some()
        {
            closed += 1;
        }
    }
    assert!(closed >= 1, "no idle connection made room");
}
