-- Sessions of the session-cookie layer. A row is keyed by the SHA-256 of the session secret,
-- never the secret itself (OWASP Session Management Cheat Sheet): a dump of this table grants
-- no session. `record` holds the rest of the session (JSON, kept byte for byte); the columns beside it are what queries
-- filter and order on, and take precedence over the same fields inside `record`.
CREATE TABLE IF NOT EXISTS "__SCHEMA__"."__PREFIX__sessions" (
    store_key           bytea   PRIMARY KEY,
    handle              text    NOT NULL,
    user_id             text,
    record              text    NOT NULL,
    version             bigint  NOT NULL,
    created_at          bigint  NOT NULL,
    last_seen_at        bigint  NOT NULL,
    idle_expires_at     bigint  NOT NULL,
    absolute_expires_at bigint  NOT NULL,
    -- The earlier of the two deadlines: the row is dead from then on.
    expires_at          bigint  NOT NULL
);
-- Per-user listing, revocation and limits.
CREATE INDEX IF NOT EXISTS "__PREFIX__sessions_user"
    ON "__SCHEMA__"."__PREFIX__sessions" (user_id, created_at) WHERE user_id IS NOT NULL;
-- The background sweep of expired rows.
CREATE INDEX IF NOT EXISTS "__PREFIX__sessions_expiry"
    ON "__SCHEMA__"."__PREFIX__sessions" (expires_at);
