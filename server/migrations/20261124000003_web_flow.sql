-- The web flow (docs/apple-protocol.md, F13, P5).

-- A browser sent to Apple: found again by the `state` Apple posts back (hashed here), not by a
-- cookie, which the cross-site form post does not carry. Single use, ten minutes.
CREATE TABLE web_sign_ins (
    state_hash       TEXT PRIMARY KEY,
    -- The raw nonce whose hash went to Apple; checked against the identity token.
    nonce            TEXT NOT NULL,
    -- For a native app that opened a browser: where it is sent back, and its PKCE challenge.
    app_redirect_uri TEXT,
    code_challenge   TEXT,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);

-- The one-time code a native app trades for a session (`POST /v1/auth/exchange`), hashed.
-- Single use, sixty seconds, bound to the app's PKCE challenge.
CREATE TABLE web_exchange_codes (
    code_hash      TEXT PRIMARY KEY,
    code_challenge TEXT NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    is_new_user    BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);
CREATE INDEX web_exchange_codes_user ON web_exchange_codes (user_id);
