-- 0018: what an operator changes about users and reports: disabled accounts (no login, sessions
-- ended) and the resolution of abuse reports. Tables of their own, so the accounts and reports
-- tables are unchanged.
CREATE TABLE disabled_accounts (
    jid          TEXT PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,
    disabled_at  DOUBLE PRECISION NOT NULL
);

CREATE TABLE report_resolutions (
    report_id    BIGINT PRIMARY KEY REFERENCES reports(id) ON DELETE CASCADE,
    resolution   TEXT NOT NULL,
    actor        TEXT NOT NULL,
    resolved_at  DOUBLE PRECISION NOT NULL
);

CREATE INDEX interop_accounts_by_provider ON interop_accounts (provider_id, enlisted_at);
