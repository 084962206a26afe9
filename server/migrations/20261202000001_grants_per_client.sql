-- Apple's grants, one per user and client id (an app's bundle ID, the web flow's Services ID).
-- A newer sign-in replaces the grant of its client id without revoking the old one: revoking
-- any token ends the user's whole authorization of the app, every device's included
-- (docs/apple-protocol.md, F11). Only account deletion revokes.
CREATE TABLE apple_grants (
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id         TEXT NOT NULL,
    refresh_token     TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    last_validated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
INSERT INTO apple_grants (user_id, client_id, refresh_token, created_at, last_validated_at)
    SELECT user_id, client_id, refresh_token, created_at, last_validated_at FROM apple_tokens;
DROP TABLE apple_tokens;
ALTER TABLE apple_grants RENAME TO apple_tokens;
