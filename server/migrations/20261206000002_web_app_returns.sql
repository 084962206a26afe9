-- A web app's sign-in (`GET /v1/web/sign-in?return_to=&mode=`): the page it comes back to, on
-- one of SIWA_WEB_ORIGINS, and whether it ran in a popup, kept from the start to Apple's form
-- post and on to the completion. Both NULL/0 for the server's own page and for native apps.
ALTER TABLE web_sign_ins ADD COLUMN return_to TEXT;
ALTER TABLE web_sign_ins ADD COLUMN popup BIGINT NOT NULL DEFAULT 0;
ALTER TABLE web_completions ADD COLUMN return_to TEXT;
ALTER TABLE web_completions ADD COLUMN popup BIGINT NOT NULL DEFAULT 0;
