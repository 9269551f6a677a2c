-- The revocation feed's catch-up table: every revocation published, until its access tokens
-- could all have expired (`until`, Unix seconds). Live nodes hear of a revocation by
-- NOTIFY; a node that (re)connects reads the rows still in force. Publishing deletes rows past
-- `until` in bounded batches, so the table holds about the revocations in force.
CREATE TABLE IF NOT EXISTS "__SCHEMA__"."__PREFIX__revocations" (
    id      bigserial PRIMARY KEY,
    message text      NOT NULL,
    until   bigint    NOT NULL
);
CREATE INDEX IF NOT EXISTS "__PREFIX__revocations_until"
    ON "__SCHEMA__"."__PREFIX__revocations" (until);
