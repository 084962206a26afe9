-- One schema for SQLite and PostgreSQL: only types and syntax both accept. Times are Unix
-- seconds (BIGINT), flags are 0/1 (BIGINT).

CREATE TABLE users (
    id                        TEXT PRIMARY KEY,
    apple_sub                 TEXT NOT NULL UNIQUE,
    email                     TEXT,
    email_verified            BIGINT NOT NULL DEFAULT 0,
    is_private_email          BIGINT NOT NULL DEFAULT 0,
    -- Set by Apple's `email-disabled` notification: the relay no longer forwards.
    email_forwarding_disabled BIGINT NOT NULL DEFAULT 0,
    given_name                TEXT,
    family_name               TEXT,
    real_user_status          BIGINT,
    -- The client id (bundle ID or Services ID) of the latest sign-in.
    client_id                 TEXT NOT NULL,
    created_at                BIGINT NOT NULL,
    last_sign_in_at           BIGINT NOT NULL,
    sign_in_count             BIGINT NOT NULL DEFAULT 1
);

-- Apple's refresh token from the code exchange: needed to revoke on account deletion. Never
-- leaves the server.
CREATE TABLE apple_tokens (
    user_id           TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    client_id         TEXT NOT NULL,
    refresh_token     TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    last_validated_at BIGINT NOT NULL
);

-- Nonces already used, kept until a token carrying them would have expired anyway.
CREATE TABLE used_nonces (
    nonce_hash TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

-- A session is a family of refresh tokens: reuse of a rotated one revokes the family.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- Refresh tokens are stored only as SHA-256 hashes.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- Revocations Apple has not confirmed yet, retried with backoff.
CREATE TABLE apple_revocations (
    id              TEXT PRIMARY KEY,
    client_id       TEXT NOT NULL,
    token           TEXT NOT NULL,
    token_type_hint TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX apple_revocations_due ON apple_revocations (next_attempt_at);

-- Server-to-server notifications already handled, by `jti`.
CREATE TABLE notifications_seen (
    jti         TEXT PRIMARY KEY,
    event_type  TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

-- The server's own key for signing access tokens, shared by every instance.
CREATE TABLE server_keys (
    kid             TEXT PRIMARY KEY,
    private_key_pem TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
