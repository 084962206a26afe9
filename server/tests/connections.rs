//! The connection limits (`siwa_server::serve`): unfinished headers and silent connections are
//! cut off, connections beyond the cap wait for a free slot, and a shutdown ends within its
//! grace period even with connections open. Connection handling does not touch the database,
//! so these run on SQLite only.

mod common;

use std::time::Duration;

use common::*;
use siwa_server::serve::ConnectionLimits;
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
