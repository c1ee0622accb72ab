-- 0003: third-party providers (DMA Art. 7 interop) and the audit log of every change to them.
CREATE TABLE providers (
    id            TEXT PRIMARY KEY,
    display_name  TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending',
    jwks          TEXT,            -- inline JWKS (JSON), or NULL when jwks_url is used
    jwks_url      TEXT,
    callback_url  TEXT NOT NULL,
    media_hosts   TEXT NOT NULL DEFAULT '[]',
    features      TEXT NOT NULL DEFAULT '[]',
    rate_tier     TEXT NOT NULL DEFAULT 'standard',
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);

CREATE TABLE provider_audit (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    provider_id  TEXT NOT NULL,
    at           REAL NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    details      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX provider_audit_by_provider ON provider_audit (provider_id, seq);
