//! Apple's server-to-server notifications, as rows: each `jti` seen once, and the changes a
//! notification can make to its user's account, each written in the transaction `accounts`
//! keeps them in, with the webhook event it causes. Which change a notification makes is
//! `accounts`' rule.

use sqlx::{Any, Transaction};

use super::sessions::{RevocationReason, Sessions, revoke_sessions};
use super::users::delete_user_rows;

/// Records notification `jti` as seen, in `tx`; `false` when it was seen before (Apple retries).
pub async fn mark_notification_seen(
    tx: &mut Transaction<'_, Any>,
    jti: &str,
    kind: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let first = sqlx::query("INSERT INTO notifications_seen (jti, event_type, received_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING")
        .bind(jti)
        .bind(kind)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(first.rows_affected() > 0)
}

/// The id and email of the user of Apple's `sub`, in `tx`.
pub async fn user_of_sub(
    tx: &mut Transaction<'_, Any>,
    apple_sub: &str,
) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as("SELECT id, email FROM users WHERE apple_sub = $1")
        .bind(apple_sub)
        .fetch_optional(&mut **tx)
        .await
}

/// Turns the relay's forwarding to the user off or on, in `tx`.
pub async fn set_email_forwarding(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
    disabled: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET email_forwarding_disabled = $1 WHERE id = $2")
        .bind(i64::from(disabled))
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map(drop)
}

/// Ends what an authorization made up to `at` (seconds), in `tx`: the user's sessions and
/// Apple grants created until then.
pub async fn end_authorization(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
    at: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    revoke_sessions(
        tx,
        Sessions::OfUserMadeBy(user_id, at),
        RevocationReason::ConsentRevoked,
        now,
    )
    .await?;
    sqlx::query("DELETE FROM apple_tokens WHERE user_id = $1 AND created_at <= $2")
        .bind(user_id)
        .bind(at)
        .execute(&mut **tx)
        .await
        .map(drop)
}

/// Deletes the user and every row of theirs, in `tx`.
pub async fn delete_user(tx: &mut Transaction<'_, Any>, user_id: &str) -> Result<(), sqlx::Error> {
    delete_user_rows(tx, user_id).await
}
