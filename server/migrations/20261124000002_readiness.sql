-- One row that /readyz writes to: readiness means the database accepts a committed write
-- (a read-only file, a full disk or a stuck connection refuses it), not only that it answers.
CREATE TABLE readiness (
    id         INTEGER PRIMARY KEY,
    checked_at BIGINT NOT NULL
);
INSERT INTO readiness (id, checked_at) VALUES (1, 0);
