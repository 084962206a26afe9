-- Housekeeping forgets sessions a week after they expire, with their refresh tokens (a session
-- keeps every token it rotated, to recognise a reuse: about 3,000 over its 30 days at one
-- refresh every 15 minutes). Found by their expiry.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
