-- An account's key history is read by jid, and deleting an account (un-enlistment, user
-- delete) cascades to it by jid: without an index each was a scan of the whole table, which
-- grows with every enlistment and key change.
CREATE INDEX interop_key_history_jid ON interop_key_history (jid);
