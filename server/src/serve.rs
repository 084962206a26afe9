//! Accepting and serving connections, with the limits a public server needs.
//!
//! `axum::serve` has no header-read or idle timeout and no cap on connections: 20,000 clients
//! that open a connection and never finish their headers exhaust the file limit, and a graceful
//! shutdown then waits on them forever. So, as mini-redis does:
//! - at most `max_connections` at once: past that, the loop stops accepting and the kernel's
//!   backlog holds newcomers, instead of the process running out of file descriptors;
//! - at most `per_client` of them from one client (`client_key`): one address holding
//!   connections open cannot take every slot and leave everyone else in the backlog; its
//!   extra connections are closed at once;
//! - a connection must send its first byte within `first_byte_timeout` (a few seconds: a real
//!   client writes its request at once);
//! - a request's headers must arrive within `header_read_timeout`;
//! - a connection that sends nothing for `idle_timeout` (between keep-alive requests, or a
//!   client gone silent) is closed;
//! - a shutdown stops accepting, lets requests in flight finish, and closes whatever is still
//!   open after `shutdown_grace`.

use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Who a client is, for the limits: its IPv4 address, or its IPv6 /64 (one subscriber's
/// network: a host is given a whole /64 and can use any address in it).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// How connections are accepted, timed out and drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once (`SIWA_MAX_CONNECTIONS`). Keep it below the process's file
    /// limit (`ulimit -n`), which also covers database connections and files.
    pub max_connections: usize,
    /// Connections one client may hold at once (`SIWA_MAX_CONNECTIONS_PER_CLIENT`); 0 is no
    /// limit (behind a load balancer, whose address every connection has).
    pub per_client: usize,
    /// Time for a new connection's first byte.
    pub first_byte_timeout: Duration,
    /// Time for a request's headers to arrive, once it has started.
    pub header_read_timeout: Duration,
    /// Time a connection may stay silent before it is closed.
    pub idle_timeout: Duration,
    /// Time requests in flight get to finish when the server stops.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            // Below the usual soft file limit of 1024, leaving room for the rest.
            max_connections: 768,
            // An eighth of the slots: a crowd behind one carrier NAT still fits, one client
            // holding connections open leaves seven eighths to everyone else.
            per_client: 96,
            first_byte_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `stop`, then drains within the grace period.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_client = Arc::new(OpenPerClient::default());
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        // Waiting for a free slot before accepting is the backpressure.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = stop.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let Some(held) = per_client.open(client_key(peer.ip()), limits.per_client) else {
            metrics::counter!("siwa_connections_refused_total", "reason" => "per_client")
                .increment(1);
            drop(stream);
            continue;
        };
        let service = app
            .clone()
            .layer(axum::Extension(ConnectInfo(peer)))
            .map_request(|r: hyper::Request<hyper::body::Incoming>| r.map(axum::body::Body::new));
        let io = TokioIo::new(IdleTimeout::new(
            stream,
            limits.first_byte_timeout,
            limits.idle_timeout,
        ));
        let connection = builder
            .serve_connection_with_upgrades(io, TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(held);
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_secs = limits.shutdown_grace.as_secs(),
            "connections still open after the shutdown grace period were closed"
        );
    }
}

/// The connections open per client.
#[derive(Default)]
struct OpenPerClient {
    open: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

impl OpenPerClient {
    /// Counts a new connection of `client`, unless it already holds `limit` (0: no limit).
    fn open(self: &Arc<Self>, client: IpAddr, limit: usize) -> Option<HeldConnection> {
        let mut open = self.open.lock().expect("the count is never poisoned");
        let count = open.entry(client).or_insert(0);
        if limit > 0 && *count >= limit {
            return None;
        }
        *count += 1;
        Some(HeldConnection {
            counts: self.clone(),
            client,
        })
    }
}

/// One open connection of a client; dropping it (the connection ended) frees its place.
struct HeldConnection {
    counts: Arc<OpenPerClient>,
    client: IpAddr,
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        let mut open = self
            .counts
            .open
            .lock()
            .expect("the count is never poisoned");
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// A connection that fails its reads once nothing has been read for `limit` (`first` before
/// its first byte): hyper then closes it. Writes do not count, so a slow response to a silent
/// client still ends.
struct IdleTimeout {
    stream: TcpStream,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(stream: TcpStream, first: Duration, limit: Duration) -> Self {
        Self {
            stream,
            limit,
            deadline: Box::pin(tokio::time::sleep(first)),
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + self.limit;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::ErrorKind::TimedOut.into())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_its_64_and_an_ipv4_one_its_address() {
        let key = |s: &str| client_key(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2::"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("192.0.2.7"), key("::ffff:192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }
}
