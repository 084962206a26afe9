//! The database goes away under a running server and comes back: while it is away every request
//! that needs it is answered at once, 503 `database_unavailable` with `Retry-After` (none waits
//! for a connection that will not come, nor for the request's own time limit), `/readyz` says
//! so, and service comes back by itself. Nothing answered 200 is lost.
//!
//! PostgreSQL goes away behind a TCP proxy the test cuts (its connections closed, new ones
//! refused, as a stopped server or a lost network looks to the server); the shared test server
//! itself stays up for the other tests. SQLite's file is moved away, then back.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Longest wait for an answer while the database is away, before the watch has noticed: the
/// pool's one-second wait for a connection, and some slack for a loaded machine.
const FIRST_ANSWERS_WITHIN: Duration = Duration::from_millis(2500);
/// Longest wait for an answer once the outage is known: no database is asked.
const KNOWN_ANSWERS_WITHIN: Duration = Duration::from_millis(500);

/// A TCP proxy to PostgreSQL that can be cut and restored on the same port.
struct Proxy {
    address: SocketAddr,
    target: SocketAddr,
    serving: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let mut proxy = Self {
            address: "127.0.0.1:0".parse().unwrap(),
            target,
            serving: None,
        };
        proxy.restore().await;
        proxy
    }

    /// Closes every connection and refuses new ones.
    async fn cut(&mut self) {
        if let Some(serving) = self.serving.take() {
            serving.abort();
            let _ = serving.await;
        }
    }

    async fn restore(&mut self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.address).unwrap();
        let listener = socket.listen(64).unwrap();
        self.address = listener.local_addr().unwrap();
        let target = self.target;
        self.serving = Some(tokio::spawn(async move {
            // Dropped with this task: every connection ends with it.
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        }));
    }
}

/// The database, and how to take it away and bring it back.
enum Database {
    /// The file, in a directory of its own that the test removes.
    Sqlite {
        file: std::path::PathBuf,
    },
    Postgres {
        proxy: Proxy,
    },
}

impl Database {
    /// A fresh database and the URL the server is given; `None` without PostgreSQL.
    async fn fresh(db: Db) -> Option<(Self, String)> {
        let (url, _) = database(db).await?;
        match siwa_server::testing::sqlite_file(&url) {
            Some(file) => Some((Self::Sqlite { file }, url)),
            None => {
                // postgres://USER@HOST:PORT/NAME: the server is given the proxy's address.
                let (scheme_user, rest) = url.split_once('@').unwrap();
                let (host_port, name) = rest.split_once('/').unwrap();
                let target = tokio::net::lookup_host(host_port)
                    .await
                    .unwrap()
                    .next()
                    .unwrap();
                let proxy = Proxy::start(target).await;
                let proxied = format!("{scheme_user}@{}/{name}", proxy.address);
                Some((Self::Postgres { proxy }, proxied))
            }
        }
    }

    async fn take_away(&mut self) {
        match self {
            Self::Sqlite { file } => std::fs::rename(&*file, moved(file)).unwrap(),
            Self::Postgres { proxy } => proxy.cut().await,
        }
    }

    async fn bring_back(&mut self) {
        match self {
            Self::Sqlite { file } => std::fs::rename(moved(file), &*file).unwrap(),
            Self::Postgres { proxy } => proxy.restore().await,
        }
    }
}

fn moved(file: &std::path::Path) -> std::path::PathBuf {
    file.with_extension("moved")
}

struct Outage {
    h: Harness,
    database: Database,
    /// Users whose sign-in was answered 200.
    answered: Vec<String>,
    signed_in: usize,
}

/// What a request got, and how long it took.
struct Answer {
    status: u16,
    body: Value,
    retry_after: bool,
    took: Duration,
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Self::Sqlite { file } = self {
            let _ = std::fs::remove_dir_all(file.parent().unwrap());
        }
    }
}

impl Outage {
    async fn start(db: Db) -> Option<Self> {
        let (database, database_url) = Database::fresh(db).await?;
        Some(Self {
            h: Harness::start_on(database_url, None, |_| {}).await,
            database,
            answered: Vec::new(),
            signed_in: 0,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let retry_after = response.headers().contains_key("retry-after");
        let (status, body) = read(response).await;
        Answer {
            status,
            body,
            retry_after,
            took: started.elapsed(),
        }
    }

    /// A request for a new user's sign-in, on the apps' route or the seed's by turns.
    fn sign_in(&mut self) -> (String, reqwest::RequestBuilder) {
        let n = self.signed_in;
        self.signed_in += 1;
        let sub = format!("001000.outage{n:05}.0001");
        let (route, body) = new_user_sign_in(&self.h.apple, &sub, n);
        let request = self
            .h
            .http
            .post(format!("{}{route}", self.h.server.base_url()))
            .json(&body);
        (sub, request)
    }

    /// `count` sign-ins at once; each answer, kept when it is a 200.
    async fn sign_in_together(&mut self, count: usize) -> Vec<Answer> {
        let requests: Vec<_> = (0..count).map(|_| self.sign_in()).collect();
        let answers = futures::future::join_all(
            requests
                .into_iter()
                .map(|(sub, request)| async { (sub, self.send(request).await) }),
        )
        .await;
        let mut kept = Vec::new();
        for (sub, answer) in answers {
            if answer.status == 200 {
                self.answered.push(sub);
            }
            kept.push(answer);
        }
        kept
    }

    async fn readiness(&self) -> Answer {
        self.send(
            self.h
                .http
                .get(format!("{}/readyz", self.h.server.base_url())),
        )
        .await
    }

    async fn refresh(&self, token: &str) -> Answer {
        self.send(
            self.h
                .http
                .post(format!("{}/v1/auth/refresh", self.h.server.base_url()))
                .json(&json!({"refreshToken": token})),
        )
        .await
    }

    /// Every user answered 200, read straight from the database.
    async fn assert_nothing_answered_was_lost(&self) {
        sqlx::any::install_default_drivers();
        let mut db = sqlx::AnyConnection::connect(&self.h.database_url)
            .await
            .unwrap();
        let saved: Vec<(String,)> = sqlx::query_as("SELECT apple_sub FROM users")
            .fetch_all(&mut db)
            .await
            .unwrap();
        let saved: std::collections::HashSet<String> = saved.into_iter().map(|(s,)| s).collect();
        let lost: Vec<&String> = self
            .answered
            .iter()
            .filter(|s| !saved.contains(*s))
            .collect();
        assert!(lost.is_empty(), "answered sign-ins were lost: {lost:?}");
    }
}

fn assert_refused_fast(answer: &Answer, within: Duration, what: &str) {
    assert_eq!(answer.status, 503, "{what}: {}", answer.body);
    assert_eq!(answer.body["error"], "database_unavailable", "{what}");
    assert!(answer.retry_after, "{what}: no Retry-After");
    assert!(
        answer.took < within,
        "{what}: answered in {:?}, not within {within:?}",
        answer.took
    );
}

async fn the_database_goes_away_and_comes_back(db: Db) {
    let Some(mut outage) = Outage::start(db).await else {
        return;
    };
    let sqlite = matches!(outage.database, Database::Sqlite { .. });
    for answer in outage.sign_in_together(8).await {
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let (_, request) = outage.sign_in();
    let signed_in = outage.send(request).await.body;
    let refresh_token = signed_in["session"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();

    outage.database.take_away().await;
    // Sign-ins under way as it goes: each is answered within the pool's short wait, a batch
    // of the group-commit writer as a whole (not one by one, a wait each). SQLite's connections
    // still write to the moved file until the watch sees it gone: a 200 then is kept.
    for answer in outage.sign_in_together(64).await {
        assert!(
            answer.took < FIRST_ANSWERS_WITHIN,
            "answered in {:?}",
            answer.took
        );
        if !(sqlite && answer.status == 200) {
            assert_refused_fast(&answer, FIRST_ANSWERS_WITHIN, "while it went away");
        }
    }
    // Once the watch has seen it: every request that needs the database is refused at once.
    tokio::time::sleep(siwa_server::testing::READINESS_INTERVAL).await;
    let readiness = outage.readiness().await;
    assert_eq!(readiness.status, 503, "{}", readiness.body);
    assert!(readiness.took < KNOWN_ANSWERS_WITHIN);
    let cause = readiness.body["checks"]["database"].as_str().unwrap();
    if sqlite {
        assert_eq!(cause, "the database file is gone");
    } else {
        assert_ne!(cause, "ok");
    }
    for _ in 0..10 {
        for answer in outage.sign_in_together(4).await {
            assert_refused_fast(&answer, KNOWN_ANSWERS_WITHIN, "a sign-in while it is away");
        }
        let answer = outage.refresh(&refresh_token).await;
        assert_refused_fast(&answer, KNOWN_ANSWERS_WITHIN, "a refresh while it is away");
    }
    let healthz = outage
        .send(
            outage
                .h
                .http
                .get(format!("{}/healthz", outage.h.server.base_url())),
        )
        .await;
    assert_eq!(healthz.status, 200, "the process itself is alive");

    outage.database.bring_back().await;
    let back = Instant::now();
    loop {
        let readiness = outage.readiness().await;
        if readiness.status == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "not ready 10 s after the database came back: {}",
            readiness.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for answer in outage.sign_in_together(8).await {
        assert_eq!(answer.status, 200, "after it came back: {}", answer.body);
    }
    let refreshed = outage.refresh(&refresh_token).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);

    outage.assert_nothing_answered_was_lost().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_moved_away_and_back() {
    the_database_goes_away_and_comes_back(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_and_back() {
    the_database_goes_away_and_comes_back(Db::Postgres).await;
}

/// SQLite's file replaced by another at the same path (a restore copied over it): the server's
/// connections write to the old one, so it refuses rather than answer from a file nobody sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_replaced_is_refused() {
    let mut outage = Outage::start(Db::Sqlite).await.unwrap();
    let Database::Sqlite { file } = &outage.database else {
        unreachable!()
    };
    let file = file.clone();
    std::fs::copy(&file, moved(&file)).unwrap();
    std::fs::rename(moved(&file), &file).unwrap();
    tokio::time::sleep(siwa_server::testing::READINESS_INTERVAL).await;
    let readiness = outage.readiness().await;
    assert_eq!(readiness.status, 503);
    assert_eq!(
        readiness.body["checks"]["database"],
        "the database file was replaced"
    );
    for answer in outage.sign_in_together(4).await {
        assert_refused_fast(&answer, KNOWN_ANSWERS_WITHIN, "a sign-in");
    }
}
