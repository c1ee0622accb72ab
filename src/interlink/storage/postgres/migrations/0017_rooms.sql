-- XEP-0045 rooms of the group service (groups.<service>): configuration (JSON of RoomConfig)
-- and subject per room, and its affiliations. Occupants are in memory only.
CREATE TABLE rooms (
    jid         TEXT PRIMARY KEY,
    service     TEXT NOT NULL,
    config      TEXT NOT NULL,
    subject     TEXT NOT NULL DEFAULT '',
    subject_by  TEXT NOT NULL DEFAULT '',
    public      INTEGER NOT NULL DEFAULT 0,  -- copied from config, to list public rooms
    created     DOUBLE PRECISION NOT NULL
);
CREATE INDEX rooms_public ON rooms (service, public);

CREATE TABLE room_members (
    room         TEXT NOT NULL REFERENCES rooms(jid) ON DELETE CASCADE,
    jid          TEXT NOT NULL,  -- not a foreign key: third-party and (later) remote members too
    affiliation  TEXT NOT NULL,  -- owner | admin | member | outcast
    invited_by   TEXT,           -- a pending mediated invitation
    PRIMARY KEY (room, jid)
);
CREATE INDEX room_members_by_jid ON room_members (jid, affiliation);

-- An account removed (deleted, unenlisted) leaves every room with it: its affiliations go.
CREATE FUNCTION room_members_leave() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM room_members WHERE jid = OLD.jid;
    RETURN NULL;
END;
$$;
CREATE TRIGGER room_members_leave_with_account AFTER DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION room_members_leave();
