-- XEP-0357 push registrations of the hub's own (gatekeeper) accounts: one row per account, app
-- server JID and node; the publish-options form is kept serialized, as the client sent it.
CREATE TABLE push_registrations (
    account          TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    service          TEXT NOT NULL,
    node             TEXT NOT NULL,
    publish_options  TEXT NOT NULL DEFAULT '',
    created          DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (account, service, node)
);
