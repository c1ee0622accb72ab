-- 0006: media store (issue 6, XEP-0363 upload slots and their files). The provider kit runs this
-- same file on its own database (interlink.storage.sqlite.media_repos.create_media_tables), so it
-- only creates what does not exist yet.
CREATE TABLE IF NOT EXISTS media (
    slot_id         TEXT PRIMARY KEY,      -- in the PUT URL
    file_id         TEXT NOT NULL UNIQUE,  -- in the GET URL
    owner           TEXT NOT NULL,         -- bare JID (hub) or username (provider kit)
    filename        TEXT NOT NULL,
    size            INTEGER NOT NULL,
    content_type    TEXT NOT NULL,
    token_hash      BLOB NOT NULL,         -- SHA-256 of the PUT token
    created_at      REAL NOT NULL,
    put_expires_at  REAL NOT NULL,
    stored_at       REAL,                  -- NULL until uploaded
    expires_at      REAL                   -- end of retention, set with stored_at
);
-- Quota and open slots per owner; expiry scans.
CREATE INDEX IF NOT EXISTS media_owner ON media (owner, stored_at);
CREATE INDEX IF NOT EXISTS media_put_expiry ON media (put_expires_at) WHERE stored_at IS NULL;
CREATE INDEX IF NOT EXISTS media_expiry ON media (expires_at) WHERE stored_at IS NOT NULL;
