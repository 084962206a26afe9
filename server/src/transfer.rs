//! Moving the app to another Apple team without losing its users (docs/transfer.md;
//! docs/apple-protocol.md, F16): the operator's `siwa-server transfer` commands.
//!
//! - `prepare --to-team TEAMID`, with the sending team's key, before the move: asks Apple for
//!   every user's transfer identifier for the recipient team and keeps it with the user.
//! - `complete`, with the recipient team's key, within 60 days after the move: exchanges every
//!   kept identifier for the user's `sub` (and relay address) under the new team and relinks the
//!   account: same user id, sessions and name, a `user.transferred` webhook.
//! - `status`: how many users are prepared, completed, failed and left.
//!
//! Each user's step is its own transaction, so a run stopped anywhere (kill -9 included) resumes
//! with the next user and repeats none; a second run changes nothing. Calls are paced, and a
//! 429 or 5xx is retried with backoff. Nothing printed or logged names a `sub`, an email or a
//! token: only counts, user ids never (they are the operator's own, but the lines may be shared).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use siwa_core::{AppleApiError, Clock, OAuthErrorCode, SystemClock};

use crate::apple::{AppleGateway, GatewayError};
use crate::config::Config;
use crate::store::{NewIdentity, Relinked, Store, TransferStatus};
use crate::tasks::Tasks;

/// Apple's window after the move, during which both teams may call the migration endpoint.
pub const TRANSFER_WINDOW_DAYS: i64 = 60;
/// Users read from the database at a time.
const PAGE: i64 = 200;
/// Attempts of one call that Apple answers 429 or 5xx, doubling the wait each time.
const ATTEMPTS: u32 = 6;
/// A migration access token lives an hour; a new one is asked for before that.
const TOKEN_RENEWAL: Duration = Duration::from_secs(50 * 60);

/// How a run goes.
#[derive(Clone)]
pub struct TransferOptions {
    /// The transferred app's client id; the first of `SIWA_APPLE_CLIENT_IDS` by default.
    pub client_id: Option<String>,
    /// Count what a run would do, and call and write nothing.
    pub dry_run: bool,
    /// Calls to Apple per second at most.
    pub per_second: f64,
    /// The first wait after Apple answered 429 or 5xx; it doubles with each attempt.
    pub retry_base: Duration,
    /// The clock client secrets are signed with and records are timed by.
    pub clock: Arc<dyn Clock>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            client_id: None,
            dry_run: false,
            per_second: 5.0,
            retry_base: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
        }
    }
}

impl TransferOptions {
    /// Refuses a pace that would never finish (0, negative, not a number).
    fn check(&self) -> Result<(), TransferError> {
        if self.per_second.is_finite() && self.per_second > 0.0 {
            Ok(())
        } else {
            Err(TransferError::Setup(
                "--per-second must be a positive number of calls".into(),
            ))
        }
    }
}

/// What a run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Users done by this run (prepared, or relinked).
    pub done: u64,
    /// Users a sign-in carrying the identifier had relinked already.
    pub already: u64,
    /// Users Apple refused (recorded, and tried again by the next run).
    pub failed: u64,
    /// Users a dry run would have asked Apple for.
    pub would: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Setup(String),
    #[error("the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "Apple refused this team's credentials for the migration ({0}): run prepare with the sending team's key before the move (or within 60 days after), complete with the recipient team's key after it"
    )]
    Credentials(&'static str),
    #[error(
        "Apple's 60-day transfer period is over ({0}): the app must be transferred back to migrate the rest (TN3159)"
    )]
    PeriodOver(&'static str),
    #[error(
        "Apple is unavailable after {ATTEMPTS} attempts ({0}): run the command again to resume"
    )]
    Unavailable(String),
}

/// The store and Apple, as a run uses them.
struct Run {
    store: Store,
    apple: AppleGateway,
    client_id: String,
    options: TransferOptions,
    tasks: Tasks,
    clock: Arc<dyn Clock>,
    progress: Progress,
}

impl Run {
    async fn open(config: &Config, options: &TransferOptions) -> Result<Self, TransferError> {
        options.check()?;
        let client_id = options
            .client_id
            .clone()
            .or_else(|| config.client_ids.first().cloned())
            .ok_or_else(|| {
                TransferError::Setup("no client id: set SIWA_APPLE_CLIENT_IDS".into())
            })?;
        if config.apple_key.is_none() && !options.dry_run {
            return Err(TransferError::Setup(
                "no developer key: set SIWA_APPLE_TEAM_ID, SIWA_APPLE_KEY_ID and SIWA_APPLE_PRIVATE_KEY(_FILE)".into(),
            ));
        }
        let tasks = Tasks::new();
        let store = crate::app::open_store(config, &tasks)
            .await
            .map_err(|e| TransferError::Setup(e.to_string()))?;
        let clock = options.clock.clone();
        let apple = AppleGateway::new(
            &config.apple_base_url,
            config.apple_key.clone(),
            clock.clone(),
        )
        .map_err(|e| TransferError::Setup(e.to_string()))?;
        Ok(Self {
            store,
            apple,
            client_id,
            options: options.clone(),
            tasks,
            clock,
            progress: Progress::new(),
        })
    }

    async fn close(self) {
        self.progress.finish();
        self.tasks.stop().await;
    }

    /// A migration access token, renewed before it expires.
    async fn token(
        &self,
        held: &mut Option<(String, std::time::Instant)>,
    ) -> Result<String, TransferError> {
        if let Some((token, _)) = held.as_ref().filter(|(_, at)| at.elapsed() < TOKEN_RENEWAL) {
            return Ok(token.clone());
        }
        let token = self
            .paced(|| self.apple.migration_token(&self.client_id))
            .await?
            .map_err(TransferError::Credentials)?;
        *held = Some((token.clone(), std::time::Instant::now()));
        Ok(token)
    }

    /// One call to Apple, after the pace's pause, retried with backoff while Apple is
    /// unavailable (429, 5xx, unreachable). A refusal of the team's credentials or of the
    /// period ends the run; a refusal of one user is the caller's.
    async fn paced<T, F, Fut>(&self, call: F) -> Result<Result<T, &'static str>, TransferError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, GatewayError>>,
    {
        let pause = Duration::from_secs_f64(1.0 / self.options.per_second);
        let mut wait = self.options.retry_base;
        for attempt in 1..=ATTEMPTS {
            tokio::time::sleep(pause).await;
            match call().await {
                Ok(answer) => return Ok(Ok(answer)),
                Err(GatewayError::Apple(AppleApiError::Rejected(refusal))) => {
                    let code = refusal.error.as_str();
                    return match refusal.error {
                        OAuthErrorCode::InvalidClient | OAuthErrorCode::UnauthorizedClient => {
                            Err(TransferError::Credentials(code))
                        }
                        OAuthErrorCode::InvalidGrant => Err(TransferError::PeriodOver(code)),
                        _ => Ok(Err(code)),
                    };
                }
                Err(GatewayError::Apple(error)) if error.is_retryable() && attempt < ATTEMPTS => {
                    tracing::info!(%error, "Apple is unavailable; waiting {wait:?}");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(GatewayError::Apple(error)) => {
                    return Err(TransferError::Unavailable(error.to_string()));
                }
                Err(error) => return Err(TransferError::Setup(error.to_string())),
            }
        }
        unreachable!("the last attempt returns")
    }
}

/// `transfer prepare --to-team TEAMID`: every user's transfer identifier for `to_team`, asked
/// for with the sending team's key and kept with the user. Users already prepared for that team
/// are skipped; users Apple refused are recorded and asked for again by the next run.
pub async fn prepare(
    config: &Config,
    to_team: &str,
    options: &TransferOptions,
) -> Result<RunSummary, TransferError> {
    if !siwa_core::apple_side::is_apple_id(to_team) {
        return Err(TransferError::Setup(
            "--to-team is the recipient's Team ID: 10 upper-case letters and digits".into(),
        ));
    }
    let mut run = Run::open(config, options).await?;
    if run.apple.team_id() == Some(to_team) {
        run.close().await;
        return Err(TransferError::Setup(
            "--to-team is this key's own team: prepare runs with the sending team's key".into(),
        ));
    }
    let result = prepare_all(&mut run, to_team).await;
    run.close().await;
    result
}

async fn prepare_all(run: &mut Run, to_team: &str) -> Result<RunSummary, TransferError> {
    let mut summary = RunSummary::default();
    let status = run.store.transfer_status().await?;
    let mut token = None;
    let mut after = String::new();
    run.progress.total = (status.users - status.prepared).max(0) as u64;
    loop {
        let page = run.store.users_to_prepare(to_team, &after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.user_id.clone();
        for user in page {
            if run.options.dry_run {
                summary.would += 1;
                continue;
            }
            let access = run.token(&mut token).await?;
            let asked = run
                .paced(|| {
                    run.apple
                        .transfer_identifier(&run.client_id, &access, &user.apple_sub, to_team)
                })
                .await?;
            match asked {
                Ok(transfer_sub) => {
                    let now = run.clock.now();
                    run.store
                        .record_prepared(&user.user_id, to_team, &transfer_sub, now)
                        .await?;
                    summary.done += 1;
                }
                Err(code) => {
                    run.store
                        .record_transfer_failure(&user.user_id, to_team, code)
                        .await?;
                    summary.failed += 1;
                }
            }
            run.progress.step("prepared", summary.done + summary.failed);
        }
    }
    Ok(summary)
}

/// `transfer complete`: every kept identifier exchanged, with the recipient team's key, for the
/// user under the new team, and the account relinked. Users already relinked (by a sign-in
/// carrying the identifier, or an earlier run) are skipped.
pub async fn complete(
    config: &Config,
    options: &TransferOptions,
) -> Result<RunSummary, TransferError> {
    let mut run = Run::open(config, options).await?;
    let result = complete_all(&mut run).await;
    run.close().await;
    result
}

async fn complete_all(run: &mut Run) -> Result<RunSummary, TransferError> {
    let mut summary = RunSummary::default();
    let status = run.store.transfer_status().await?;
    run.progress.total = (status.prepared - status.completed).max(0) as u64;
    let mut token = None;
    let mut after = String::new();
    loop {
        let page = run.store.transfers_to_complete(&after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.user_id.clone();
        for user in page {
            if run.options.dry_run {
                summary.would += 1;
                continue;
            }
            let access = run.token(&mut token).await?;
            let asked = run
                .paced(|| {
                    run.apple
                        .migrated_user(&run.client_id, &access, &user.transfer_sub)
                })
                .await?;
            let migrated = match asked {
                Ok(migrated) => migrated,
                Err(code) => {
                    let target = status.target_teams.last().map_or("", String::as_str);
                    run.store
                        .record_transfer_failure(&user.user_id, target, code)
                        .await?;
                    summary.failed += 1;
                    continue;
                }
            };
            let email = migrated.email.as_deref().filter(|e| !e.is_empty());
            let new = NewIdentity {
                apple_sub: &migrated.sub,
                email,
                is_private_email: migrated
                    .is_private_email
                    .unwrap_or_else(|| email.is_some_and(siwa_core::relay::is_relay_address)),
            };
            let now = run.clock.now();
            match run
                .store
                .complete_transfer(&user.user_id, &new, now)
                .await?
            {
                Relinked::Moved => summary.done += 1,
                Relinked::Already => summary.already += 1,
                Relinked::SubTaken => summary.failed += 1,
                Relinked::Gone => {}
            }
            run.progress
                .step("completed", summary.done + summary.already + summary.failed);
        }
    }
    Ok(summary)
}

/// `transfer status`: the counts, read from the database alone.
pub async fn status(config: &Config) -> Result<TransferStatus, TransferError> {
    let tasks = Tasks::new();
    let store = crate::app::open_store(config, &tasks)
        .await
        .map_err(|e| TransferError::Setup(e.to_string()))?;
    let status = store.transfer_status().await;
    tasks.stop().await;
    Ok(status?)
}

/// The status as `transfer status` prints it, at `now`.
pub fn describe(status: &TransferStatus, now: i64) -> String {
    let left = (status.users - status.completed).max(0);
    let teams = match status.target_teams.as_slice() {
        [] => "no transfer prepared yet".to_owned(),
        teams => format!("to team {}", teams.join(", ")),
    };
    let window = match status.first_completed_at {
        None => {
            "Apple's 60 days: not started as far as this database knows (no account relinked yet)"
                .to_owned()
        }
        Some(first) => {
            let days = TRANSFER_WINDOW_DAYS - (now - first).max(0) / 86_400;
            format!(
                "Apple's 60 days: at most {} left (the first account was relinked {} days ago)",
                days.max(0),
                (now - first).max(0) / 86_400
            )
        }
    };
    format!(
        "{teams}\nusers: {}  prepared: {}  completed: {}  failed: {}  left: {left}\n{window}",
        status.users, status.prepared, status.completed, status.failed
    )
}

/// Progress on a terminal (a line rewritten in place); nothing when the output is a file or a
/// pipe, whose reader gets the summary at the end.
struct Progress {
    terminal: bool,
    total: u64,
}

impl Progress {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            total: 0,
        }
    }

    fn step(&self, what: &str, done: u64) {
        if self.terminal {
            let mut err = std::io::stderr();
            let _ = write!(err, "\r{what} {done}/{}   ", self.total);
            let _ = err.flush();
        }
    }

    fn finish(&self) {
        if self.terminal {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pace_that_would_never_finish_is_refused() {
        for per_second in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let options = TransferOptions {
                per_second,
                ..TransferOptions::default()
            };
            assert!(
                matches!(options.check(), Err(TransferError::Setup(_))),
                "{per_second}"
            );
        }
        assert!(TransferOptions::default().check().is_ok());
    }

    #[test]
    fn the_status_names_no_user_and_counts_the_days_from_the_first_relinked_account() {
        let status = TransferStatus {
            users: 10,
            target_teams: vec!["TEAMBBBBBB".into()],
            prepared: 10,
            completed: 4,
            failed: 1,
            first_completed_at: Some(0),
        };
        let text = describe(&status, 3 * 86_400);
        assert!(text.contains("to team TEAMBBBBBB"), "{text}");
        assert!(text.contains("left: 6"), "{text}");
        assert!(text.contains("at most 57 left"), "{text}");
        let late = describe(&status, 70 * 86_400);
        assert!(late.contains("at most 0 left"), "{late}");
    }
}
