-- 0006: media store (issue 6, XEP-0363 upload slots and their files).
CREATE TABLE media (
    slot_id         TEXT PRIMARY KEY,      -- in the PUT URL
    file_id         TEXT NOT NULL UNIQUE,  -- in the GET URL
    owner           TEXT NOT NULL,         -- bare JID
    filename        TEXT NOT NULL,
    size            BIGINT NOT NULL,
    content_type    TEXT NOT NULL,
    token_hash      BYTEA NOT NULL,        -- SHA-256 of the PUT token
    created_at      DOUBLE PRECISION NOT NULL,
    put_expires_at  DOUBLE PRECISION NOT NULL,
    stored_at       DOUBLE PRECISION,      -- NULL until uploaded
    expires_at      DOUBLE PRECISION       -- end of retention, set with stored_at
);
-- Quota and open slots per owner; expiry scans.
CREATE INDEX media_owner ON media (owner, stored_at);
CREATE INDEX media_put_expiry ON media (put_expires_at) WHERE stored_at IS NULL;
CREATE INDEX media_expiry ON media (expires_at) WHERE stored_at IS NOT NULL;
