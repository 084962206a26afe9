-- The name of a user's first authorization whose sign-in failed after its identity token was
-- verified (Apple down, the database, the exchange): Apple sends the name once, so it waits
-- here, sealed, for the same user's next sign-in to make their account with it. A day at most.
CREATE TABLE pending_names (
    apple_sub   TEXT PRIMARY KEY,
    sealed_name TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
