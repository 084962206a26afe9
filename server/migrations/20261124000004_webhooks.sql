-- The webhook outbox: an event is written in the transaction of the change it reports, and
-- stays until delivered (or, after three days of failures, marked failed).
CREATE TABLE webhook_events (
    -- The `webhook-id` header: the same on every retry, so receivers can deduplicate.
    id              TEXT PRIMARY KEY,
    event_type      TEXT NOT NULL,
    -- The JSON body, as signed and sent.
    payload         TEXT NOT NULL,
    -- pending, delivered or failed.
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    -- When it is due; pushed forward while an instance holds it (the lease) or after a failure.
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    -- Microseconds: events are sent in the order they were made.
    created_at_us   BIGINT NOT NULL,
    delivered_at    BIGINT
);
CREATE INDEX webhook_events_due ON webhook_events (status, created_at_us);
