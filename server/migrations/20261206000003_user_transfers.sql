-- Moving the app to another Apple team (docs/transfer.md; docs/apple-protocol.md, F16). One row
-- per user: `transfer prepare` (the sending team) keeps the user's transfer identifier for
-- the recipient team; `transfer complete` (the recipient) exchanges it for the user's new `sub`
-- and relinks the account, as does a sign-in whose token carries it as `transfer_sub`. Each
-- user's step commits on its own, so a run resumes where it stopped.
CREATE TABLE user_transfers (
    user_id      TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    target_team  TEXT NOT NULL,
    transfer_sub TEXT,
    prepared_at  BIGINT,
    completed_at BIGINT,
    -- Apple's error code (or ours) of the last refusal for this user; never a sub or an email.
    failure      TEXT,
    attempts     BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX user_transfers_by_transfer_sub ON user_transfers (transfer_sub);
