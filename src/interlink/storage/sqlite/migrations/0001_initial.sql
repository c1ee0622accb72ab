-- 0001: accounts, credentials, roster, pending subscription requests, offline messages.
CREATE TABLE accounts (
    jid         TEXT PRIMARY KEY,
    created_at  REAL NOT NULL
);

CREATE TABLE credentials (
    jid         TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    mechanism   TEXT NOT NULL,
    salt        BLOB NOT NULL,
    stored_key  BLOB NOT NULL,
    server_key  BLOB NOT NULL,
    iterations  INTEGER NOT NULL,
    PRIMARY KEY (jid, mechanism)
);

CREATE TABLE roster (
    owner         TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    contact       TEXT NOT NULL,
    name          TEXT,
    subscription  TEXT NOT NULL DEFAULT 'none',
    ask           INTEGER NOT NULL DEFAULT 0,
    groups        TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (owner, contact)
);

CREATE TABLE pending_subscriptions (
    owner       TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    requester   TEXT NOT NULL,
    stanza      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (owner, requester)
);

CREATE TABLE offline_messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    owner       TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    stanza      TEXT NOT NULL,
    stored_at   REAL NOT NULL
);
CREATE INDEX offline_messages_by_owner ON offline_messages (owner, id);

CREATE TABLE server_state (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
);
