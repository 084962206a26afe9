//! Accepting and serving connections, with the limits a public server needs.
//!
//! `axum::serve` has no header-read or idle timeout and no cap on connections: 20,000 clients
//! that open a connection and never finish their headers exhaust the file limit, and a graceful
//! shutdown then waits on them forever. So, as mini-redis does:
//! - at most `max_connections` at once: past that, the loop stops accepting and the kernel's
//!   backlog holds newcomers, instead of the process running out of file descriptors;
//! - at most `per_client` of them from one client (`client_key`): one address holding
//!   connections open cannot take every slot and leave everyone else in the backlog; its
//!   extra connections are closed at once. An IPv6 client is its /64, and its /48 (a whole
//!   site's allocation, which holds 65,536 /64s) may hold twice that;
//! - a connection must send its first byte within `first_byte_timeout` (a few seconds: a real
//!   client writes its request at once), and its first request within `header_read_timeout`
//!   of that, on HTTP/1 and HTTP/2 alike (hyper's own header limit covers HTTP/1 only);
//! - a connection with no request in flight for `idle_timeout` (between keep-alive requests, or
//!   a client gone silent, or an HTTP/2 client sending only pings) is closed, and for
//!   `first_byte_timeout` only once three quarters of the slots are taken: a few addresses
//!   holding idle keep-alive connections cannot keep the server full;
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

/// The share of the slots past which idle connections get the short limit: 3/4.
fn crowded(free: usize, max: usize) -> bool {
    free.saturating_mul(4) <= max
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
        let Some(held) = per_client.open(&client_limits(peer.ip(), limits.per_client)) else {
            metrics::counter!("siwa_connections_refused_total", "reason" => "per_client")
                .increment(1);
            drop(stream);
            continue;
        };
        let activity = Arc::new(Activity::default());
        let router = app.clone().layer(axum::Extension(ConnectInfo(peer)));
        let tracked = activity.clone();
        let service = tower::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            // Held while the request is served, whether it completes or is dropped (a reset
            // HTTP/2 stream): the connection is busy, not idle.
            let serving = tracked.request_started();
            let answer = router.clone().oneshot(request.map(axum::body::Body::new));
            async move {
                let answer = answer.await;
                drop(serving);
                answer
            }
        });
        let io = TokioIo::new(IdleTimeout::new(
            stream,
            limits,
            activity,
            Occupancy {
                permits: permits.clone(),
                max: limits.max_connections,
            },
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

/// A group of addresses that shares a cap: an address (or IPv6 /64) or a wider IPv6 prefix,
/// with its length so that a /48 and a /64 with the same bits are not one key.
type Group = (IpAddr, u8);

/// The groups a connection from `ip` counts in, each with its cap (0: none).
fn client_limits(ip: IpAddr, per_client: usize) -> Vec<(Group, usize)> {
    let key = client_key(ip);
    match key {
        IpAddr::V4(_) => vec![((key, 32), per_client)],
        IpAddr::V6(v6) => {
            let site = Ipv6Addr::from(u128::from(v6) & !((1u128 << 80) - 1));
            vec![
                ((key, 64), per_client),
                ((IpAddr::V6(site), 48), per_client.saturating_mul(2)),
            ]
        }
    }
}

/// The connections open per client group.
#[derive(Default)]
struct OpenPerClient {
    open: std::sync::Mutex<std::collections::HashMap<Group, usize>>,
}

impl OpenPerClient {
    /// Counts a new connection in each of `groups`, unless one of them already holds its cap.
    fn open(self: &Arc<Self>, groups: &[(Group, usize)]) -> Option<HeldConnection> {
        let mut open = self.open.lock().expect("the count is never poisoned");
        let full = groups
            .iter()
            .any(|(group, limit)| *limit > 0 && open.get(group).copied().unwrap_or(0) >= *limit);
        if full {
            return None;
        }
        for (group, _) in groups {
            *open.entry(*group).or_insert(0) += 1;
        }
        Some(HeldConnection {
            counts: self.clone(),
            groups: groups.iter().map(|(group, _)| *group).collect(),
        })
    }
}

/// One open connection of a client; dropping it (the connection ended) frees its places.
struct HeldConnection {
    counts: Arc<OpenPerClient>,
    groups: Vec<Group>,
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        let mut open = self
            .counts
            .open
            .lock()
            .expect("the count is never poisoned");
        for group in &self.groups {
            if let Some(count) = open.get_mut(group) {
                *count -= 1;
                if *count == 0 {
                    open.remove(group);
                }
            }
        }
    }
}

/// A connection's requests, as its service sees them and its reader needs them.
#[derive(Default)]
struct Activity {
    /// Requests being served now.
    in_flight: std::sync::atomic::AtomicUsize,
    /// When the last request ended; `None` before any has.
    last_ended: std::sync::Mutex<Option<Instant>>,
}

/// Where a connection stands, for its time limit.
enum Stage {
    /// No request has started yet.
    Waiting,
    /// A request is being served.
    Serving,
    /// Nothing to do since this moment.
    IdleSince(Instant),
}

impl Activity {
    fn request_started(self: &Arc<Self>) -> Serving {
        use std::sync::atomic::Ordering;
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Serving(self.clone())
    }

    fn stage(&self) -> Stage {
        if self.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            return Stage::Serving;
        }
        match *self.last_ended.lock().expect("never poisoned") {
            Some(ended) => Stage::IdleSince(ended),
            None => Stage::Waiting,
        }
    }
}

/// A request being served; dropped when it is answered or abandoned.
struct Serving(Arc<Activity>);

impl Drop for Serving {
    fn drop(&mut self) {
        *self.0.last_ended.lock().expect("never poisoned") = Some(Instant::now());
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// How full the server is, for the idle limit.
struct Occupancy {
    permits: Arc<Semaphore>,
    max: usize,
}

/// A connection that fails its reads, so that hyper closes it, once it has been given its
/// time: `first_byte_timeout` for its first byte, `header_read_timeout` after that for its
/// first request to start, then, whenever no request is in flight, the idle limit (short when
/// the server is crowded). Only requests count as activity, not bytes: an HTTP/2 client that
/// sends pings and no request is idle. Writes do not count either, so a slow response to a
/// silent client still ends.
struct IdleTimeout {
    stream: TcpStream,
    limits: ConnectionLimits,
    activity: Arc<Activity>,
    occupancy: Occupancy,
    accepted: Instant,
    first_byte: Option<Instant>,
    /// When the limits are next looked at.
    check: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(
        stream: TcpStream,
        limits: ConnectionLimits,
        activity: Arc<Activity>,
        occupancy: Occupancy,
    ) -> Self {
        Self {
            stream,
            limits,
            activity,
            occupancy,
            accepted: Instant::now(),
            first_byte: None,
            check: Box::pin(tokio::time::sleep(limits.first_byte_timeout)),
        }
    }

    /// When the connection's time is up as things stand, or `None` while it serves a request.
    fn deadline(&self) -> Option<Instant> {
        let Some(first_byte) = self.first_byte else {
            return Some(self.accepted + self.limits.first_byte_timeout);
        };
        let since = match self.activity.stage() {
            Stage::Waiting => return Some(first_byte + self.limits.header_read_timeout),
            Stage::Serving => return None,
            Stage::IdleSince(ended) => ended,
        };
        let free = self.occupancy.permits.available_permits();
        let limit = if crowded(free, self.occupancy.max) {
            self.limits.first_byte_timeout.min(self.limits.idle_timeout)
        } else {
            self.limits.idle_timeout
        };
        Some(since + limit)
    }

    /// Whether the connection's time is up; if not, sets the next look: at its deadline, or
    /// sooner, since a request may start or the server fill meanwhile.
    fn expired(&mut self) -> bool {
        let now = Instant::now();
        let deadline = self.deadline();
        if deadline.is_some_and(|d| d <= now) {
            return true;
        }
        let soon = now + self.limits.first_byte_timeout.min(Duration::from_secs(1));
        let next = deadline.map_or(soon, |d| d.min(soon));
        self.check.as_mut().reset(next);
        false
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        // Looked at on every read, so that a client that always has bytes to send (pings) is
        // held to its limits too.
        if self.check.is_elapsed() && self.expired() {
            return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if self.first_byte.is_none() && buf.filled().len() > before {
                    self.first_byte = Some(Instant::now());
                    self.expired();
                }
                Poll::Ready(result)
            }
            Poll::Pending => loop {
                match self.check.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) if self.expired() => {
                        return Poll::Ready(Err(std::io::ErrorKind::TimedOut.into()));
                    }
                    // Re-armed: poll it again so that its waker is registered.
                    Poll::Ready(()) => {}
                }
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

    /// A subscriber given a /56 has 256 /64s: each is a client, and their /48 together may
    /// hold twice one client's share, no more.
    #[test]
    fn the_64s_of_one_48_share_a_cap_of_twice_a_clients() {
        let open = Arc::new(OpenPerClient::default());
        let mut held = Vec::new();
        for n in 0..256u32 {
            let ip: IpAddr = format!("2001:db8:1:{n:x}::1").parse().unwrap();
            while let Some(connection) = open.open(&client_limits(ip, 3)) {
                held.push(connection);
            }
        }
        assert_eq!(held.len(), 6, "the /48 holds twice the per-client cap");
        let elsewhere: IpAddr = "2001:db8:2::1".parse().unwrap();
        assert!(open.open(&client_limits(elsewhere, 3)).is_some());
        // A /64 and the /48 with the same bits are counted apart.
        held.clear();
        let bare: IpAddr = "2001:db8:1::1".parse().unwrap();
        let counted: Vec<_> = (0..3)
            .map(|_| open.open(&client_limits(bare, 3)).unwrap())
            .collect();
        assert!(open.open(&client_limits(bare, 3)).is_none());
        let sibling: IpAddr = "2001:db8:1:1::1".parse().unwrap();
        assert!(open.open(&client_limits(sibling, 3)).is_some());
        drop(counted);
        // IPv4 addresses have one cap each; 0 is no cap.
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_limits(v4, 3).len(), 1);
        assert!((0..1000).all(|_| open.open(&client_limits(v4, 0)).is_some()));
    }
}
