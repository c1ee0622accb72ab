-- 0008: several gatekeeper services on one hub, and the operator change feed.
-- The services a provider is onboarded to (JSON list of domains); '[]' for providers onboarded
-- before a hub could serve several: they belong to the hub's default service.
ALTER TABLE providers ADD COLUMN services TEXT NOT NULL DEFAULT '[]';

-- Every change an operator makes (provider records, accounts, a user's settings changed from
-- the command line), written in the transaction of the change itself, so that a running hub
-- (or every node of a cluster) follows changes made by another process.
CREATE TABLE operator_changes (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    at       REAL NOT NULL
);
