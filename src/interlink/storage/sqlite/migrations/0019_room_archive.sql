-- XEP-0313 archives of the group service's rooms: the same shape as archive_messages (0014),
-- owned by a room instead of an account, so a room's destruction takes its archive with it.
-- peer is the bare address of the member who sent the message (the XEP-0313 §4.1.1
-- "publisher", what 'with' matches), peer_resource that session's resource; the stanza is the
-- room's copy as its occupants got it (from room/nick), never with a real address in it.
CREATE TABLE room_archive_messages (
    seq            INTEGER PRIMARY KEY,
    owner          TEXT NOT NULL REFERENCES rooms(jid) ON DELETE CASCADE,
    id             TEXT NOT NULL,
    peer           TEXT NOT NULL,
    peer_resource  TEXT NOT NULL,
    at             REAL NOT NULL,
    stanza         TEXT NOT NULL
);
CREATE UNIQUE INDEX room_archive_messages_owner_id ON room_archive_messages (owner, id);
CREATE INDEX room_archive_messages_owner_seq ON room_archive_messages (owner, seq);
CREATE INDEX room_archive_messages_owner_peer_seq ON room_archive_messages (owner, peer, seq);

CREATE TABLE room_archive_counts (
    owner  TEXT PRIMARY KEY REFERENCES rooms(jid) ON DELETE CASCADE,
    n      INTEGER NOT NULL
);
CREATE TRIGGER room_archive_counts_delete AFTER DELETE ON room_archive_messages BEGIN
    UPDATE room_archive_counts SET n = n - 1 WHERE owner = OLD.owner;
END;
