-- Identity tokens that opened a session at `POST /v1/auth/apple`, by SHA-256, kept until the
-- token expires: each opens at most one session, nonce or not (a token leaked through a log
-- cannot be replayed for new sessions).
CREATE TABLE used_identity_tokens (
    token_hash TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
