-- The web flow bound to its browser (login CSRF): the start sets a binding cookie whose hash
-- the sign-in keeps; Apple's form post leaves its outcome under a one-time handle; only the
-- browser holding the cookie completes it. Rows started before this have no binding and are
-- refused at completion.
ALTER TABLE web_sign_ins ADD COLUMN binding_hash TEXT;

-- A sign-in Apple's form post completed, waiting for its browser (60 s, single use).
CREATE TABLE web_completions (
    handle_hash      TEXT PRIMARY KEY,
    binding_hash     TEXT NOT NULL,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    is_new_user      BIGINT NOT NULL,
    -- For a native app: where it is sent back with a code for this PKCE challenge.
    app_redirect_uri TEXT,
    code_challenge   TEXT,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX web_completions_user ON web_completions (user_id);

-- The page's session is a session of its own kind: the cookie holds a secret that is not a
-- refresh token (the API routes never accept it), found by its hash.
ALTER TABLE sessions ADD COLUMN web_secret_hash TEXT;
CREATE UNIQUE INDEX sessions_by_web_secret ON sessions (web_secret_hash);
