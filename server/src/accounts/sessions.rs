//! A signed-in user's session: the answer that starts one, refresh (the refresh token rotates;
//! one presented again after its grace ends the session), sign-out, and the account as the
//! session sees it.

use siwa_core::api::{
    AppleRevocation, SessionView, SignInResponse, TokenType, UserView, WebTokenResponse,
};

use super::Accounts;
use crate::error::ApiError;
use crate::store::{NewSession, Rotation, User};
use crate::tokens::{RefreshToken, SessionId, UserId};

impl Accounts {
    /// The answer of a sign-in that started a session: `/v1/auth/apple`'s, and
    /// `/v1/auth/exchange`'s, which is the same.
    pub(super) fn signed_in_answer(
        &self,
        user: &User,
        is_new_user: bool,
        session: NewSession,
    ) -> SignInResponse {
        SignInResponse {
            user: UserView::from(user),
            session: self.session_view(&user.id, &session.id, session.refresh_token, self.now()),
            is_new_user,
        }
    }

    /// A session's tokens as the client gets them: a fresh access token beside `refresh_token`.
    fn session_view(
        &self,
        user_id: &str,
        session_id: &str,
        refresh_token: String,
        now: i64,
    ) -> SessionView {
        SessionView {
            access_token: self.sessions.issue(user_id, session_id, now),
            refresh_token,
            expires_in: self.sessions.ttl_secs(),
            token_type: TokenType::Bearer,
        }
    }

    /// An access token for a web app's live session (its cookie was checked): the session's
    /// refresh is the cookie, which never reaches the page.
    pub fn web_token(&self, user_id: &UserId, session_id: &SessionId) -> WebTokenResponse {
        let now = self.now();
        WebTokenResponse {
            access_token: self
                .sessions
                .issue(user_id.as_str(), session_id.as_str(), now),
            expires_in: self.sessions.ttl_secs(),
            token_type: TokenType::Bearer,
        }
    }

    /// Trades a refresh token for a new access token and a new refresh token.
    pub async fn refresh(&self, refresh_token: &RefreshToken) -> Result<SessionView, ApiError> {
        let now = self.now();
        let grace = self.rules.refresh_reuse_grace_secs;
        match self
            .store
            .rotate_refresh_token(refresh_token.as_str(), now, grace)
            .await?
        {
            Rotation::Rotated {
                user_id,
                session_id,
                refresh_token,
            } => Ok(self.session_view(&user_id, &session_id, refresh_token, now)),
            Rotation::Invalid => Err(ApiError::InvalidRefreshToken),
            Rotation::Reused => Err(ApiError::RefreshTokenReused),
        }
    }

    /// Ends the session of a refresh token; an unknown one ends nothing.
    pub async fn sign_out(&self, refresh_token: &RefreshToken) -> Result<(), ApiError> {
        self.store
            .logout(refresh_token.as_str(), self.now())
            .await?;
        Ok(())
    }

    /// Ends a session by its id (an access token's, or the page's).
    pub async fn end_session(&self, session_id: &SessionId) -> Result<(), ApiError> {
        self.store
            .end_session(session_id.as_str(), self.now())
            .await?;
        Ok(())
    }

    /// The user of a live session; `session_ended` once it ended or the account is gone.
    pub async fn user_in_session(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
    ) -> Result<UserView, ApiError> {
        let user = self
            .store
            .user_in_session(user_id.as_str(), session_id.as_str(), self.now())
            .await?
            .ok_or(ApiError::SessionEnded)?;
        Ok(UserView::from(&user))
    }

    /// Deletes the account of a live session (`DELETE /v1/me`).
    pub async fn delete_in_session(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
    ) -> Result<AppleRevocation, ApiError> {
        self.user_in_session(user_id, session_id).await?;
        self.delete(user_id).await
    }
}
