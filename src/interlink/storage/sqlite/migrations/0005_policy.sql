-- 0005: consent and abuse controls (issue 5): a gatekeeper user's interop settings, phone numbers
-- for discovery, conversations with third-party users (message requests), XEP-0191 block lists
-- and XEP-0377 reports.
CREATE TABLE interop_settings (
    jid             TEXT PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,
    enabled         INTEGER NOT NULL DEFAULT 0,
    providers       TEXT,                 -- NULL: every approved provider; else a JSON list
    inbox           TEXT NOT NULL DEFAULT 'separate',
    discoverable    INTEGER NOT NULL DEFAULT 0,
    share_activity  INTEGER NOT NULL DEFAULT 1,
    updated_at      REAL NOT NULL
);

CREATE TABLE account_phones (
    phone  TEXT PRIMARY KEY,              -- E.164
    jid    TEXT NOT NULL UNIQUE REFERENCES accounts(jid) ON DELETE CASCADE
);

CREATE TABLE interop_conversations (
    owner       TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    peer        TEXT NOT NULL,
    state       TEXT NOT NULL,            -- 'request' or 'accepted'
    messages    INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (owner, peer)
);

CREATE TABLE blocklist (
    owner       TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    blocked     TEXT NOT NULL,            -- a full JID, bare JID or domain (XEP-0191)
    created_at  REAL NOT NULL,
    PRIMARY KEY (owner, blocked)
);

CREATE TABLE reports (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    reporter       TEXT NOT NULL,
    reported       TEXT NOT NULL,
    provider_id    TEXT,                  -- the reported user's provider, if a third party
    reason         TEXT NOT NULL,
    text           TEXT NOT NULL DEFAULT '',
    messages       TEXT NOT NULL DEFAULT '[]',  -- JSON: what the reporter chose to attach
    created_at     REAL NOT NULL,
    forwarded_at   REAL,
    forward_error  TEXT,
    forward_done   INTEGER NOT NULL DEFAULT 0  -- 1: delivered, or refused for good (no retry)
);
CREATE INDEX reports_by_time ON reports (created_at);
