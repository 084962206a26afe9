-- Only the web page's sessions have a secret: the index holds those alone, so that the apps'
-- sessions (every sign-in makes one) add no entry to it.
DROP INDEX sessions_by_web_secret;
CREATE UNIQUE INDEX sessions_by_web_secret ON sessions (web_secret_hash) WHERE web_secret_hash IS NOT NULL;
