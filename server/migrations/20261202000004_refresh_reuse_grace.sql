-- A refresh token presented again within SIWA_REFRESH_REUSE_GRACE_SECS of its rotation (a lost
-- answer, two processes sharing one Keychain item) gets the same successor: kept here, sealed,
-- for that window only (housekeeping clears it).
ALTER TABLE refresh_tokens ADD COLUMN successor TEXT;
