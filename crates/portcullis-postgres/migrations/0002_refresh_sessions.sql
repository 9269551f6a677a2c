-- Hybrid sessions (one per refresh-token family), keyed by the public session id (the `sid` of
-- access tokens). `record` holds only SHA-256 hashes of the current and recently rotated-out
-- refresh secrets (RFC 9700 §4.14.2), so a dump of this table grants nothing.
CREATE TABLE IF NOT EXISTS "__SCHEMA__"."__PREFIX__refresh_sessions" (
    session_id  text    PRIMARY KEY,
    user_id     text    NOT NULL,
    record      text    NOT NULL,
    generation  bigint  NOT NULL,
    created_at  bigint  NOT NULL,
    -- The earlier of the idle and absolute deadlines: the row is dead from then on.
    expires_at  bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS "__PREFIX__refresh_sessions_user"
    ON "__SCHEMA__"."__PREFIX__refresh_sessions" (user_id, created_at);
CREATE INDEX IF NOT EXISTS "__PREFIX__refresh_sessions_expiry"
    ON "__SCHEMA__"."__PREFIX__refresh_sessions" (expires_at);
