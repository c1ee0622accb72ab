-- XEP-0313 message archives. seq orders an archive (arrival order, what RSM pages by); id is
-- the XEP-0359 stanza-id clients see, unique per archive. One index per way of reading:
-- (owner, id) finds an entry named by a client; (owner, seq) pages a whole archive; (owner,
-- peer, seq) pages the conversation with one contact; (at) finds what retention removes.
CREATE TABLE archive_messages (
    seq            INTEGER PRIMARY KEY,
    owner          TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    id             TEXT NOT NULL,
    peer           TEXT NOT NULL,
    peer_resource  TEXT NOT NULL,
    at             REAL NOT NULL,
    stanza         TEXT NOT NULL
);
CREATE UNIQUE INDEX archive_messages_owner_id ON archive_messages (owner, id);
CREATE INDEX archive_messages_owner_seq ON archive_messages (owner, seq);
CREATE INDEX archive_messages_owner_peer_seq ON archive_messages (owner, peer, seq);
CREATE INDEX archive_messages_at ON archive_messages (at);

-- How many messages each archive holds, kept by triggers, so the per-account quota is one
-- lookup rather than a count of the archive on every write.
CREATE TABLE archive_counts (
    owner  TEXT PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,
    n      INTEGER NOT NULL
);
CREATE TRIGGER archive_counts_insert AFTER INSERT ON archive_messages BEGIN
    INSERT INTO archive_counts (owner, n) VALUES (NEW.owner, 1)
        ON CONFLICT (owner) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER archive_counts_delete AFTER DELETE ON archive_messages BEGIN
    UPDATE archive_counts SET n = n - 1 WHERE owner = OLD.owner;
END;

-- XEP-0313 §6 preferences: the default and the always/never lists (JSON arrays of bare JIDs).
CREATE TABLE archive_prefs (
    owner         TEXT PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,
    default_mode  TEXT NOT NULL,
    always        TEXT NOT NULL,
    never         TEXT NOT NULL
);
