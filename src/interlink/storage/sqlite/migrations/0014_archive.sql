-- XEP-0313 message archives. seq orders an archive (arrival order, what RSM pages by); id is
-- the XEP-0359 stanza-id clients see, unique per archive. One index per way of reading:
-- (owner, id) finds an entry named by a client; (owner, seq) pages a whole archive; (owner,
-- peer, seq) pages the conversation with one contact. Retention needs no index of its own:
-- archive times grow with seq, so what it removes is a prefix of the table in rowid order.
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

-- How many messages each archive holds, so the per-account quota is one lookup rather than a
-- count of the archive on every write. Writes add what they inserted (in the same transaction;
-- a trigger per inserted row costs a quarter of the write rate); every delete, however it
-- comes (quota, retention, account removal), is subtracted by the trigger.
CREATE TABLE archive_counts (
    owner  TEXT PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,
    n      INTEGER NOT NULL
);
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
