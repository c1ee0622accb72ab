-- 0004: enlistment of third-party users: challenges, seen token ids, interop accounts and the
-- history of their identity keys.
CREATE TABLE enlistment_challenges (
    nonce       TEXT PRIMARY KEY,
    expires_at  REAL NOT NULL
);

CREATE TABLE seen_token_ids (
    issuer      TEXT NOT NULL,
    jti         TEXT NOT NULL,
    expires_at  REAL NOT NULL,
    PRIMARY KEY (issuer, jti)
);

CREATE TABLE interop_accounts (
    jid           TEXT PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,
    provider_id   TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT,
    identity_key  BLOB NOT NULL,
    enlisted_at   REAL NOT NULL,
    updated_at    REAL NOT NULL,
    UNIQUE (provider_id, subject)
);

CREATE TABLE interop_key_history (
    jid           TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    identity_key  BLOB NOT NULL,
    seen_at       REAL NOT NULL
);
