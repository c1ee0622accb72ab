-- 0002: personal eventing (XEP-0163): nodes, items and explicit subscriptions per account.
CREATE TABLE pep_nodes (
    owner         TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    node          TEXT NOT NULL,
    access_model  TEXT NOT NULL DEFAULT 'presence',
    max_items     INTEGER NOT NULL DEFAULT 1,
    persist_items INTEGER NOT NULL DEFAULT 1,
    created_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (owner, node)
);

CREATE TABLE pep_items (
    owner         TEXT NOT NULL,
    node          TEXT NOT NULL,
    item_id       TEXT NOT NULL,
    payload       TEXT NOT NULL,
    published_at  DOUBLE PRECISION NOT NULL,
    seq           BIGINT NOT NULL,
    PRIMARY KEY (owner, node, item_id),
    FOREIGN KEY (owner, node) REFERENCES pep_nodes(owner, node) ON DELETE CASCADE
);
CREATE INDEX pep_items_by_seq ON pep_items (owner, node, seq);

CREATE TABLE pep_subscriptions (
    owner       TEXT NOT NULL,
    node        TEXT NOT NULL,
    subscriber  TEXT NOT NULL,
    PRIMARY KEY (owner, node, subscriber),
    FOREIGN KEY (owner, node) REFERENCES pep_nodes(owner, node) ON DELETE CASCADE
);
