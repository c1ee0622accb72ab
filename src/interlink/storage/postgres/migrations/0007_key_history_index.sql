-- 0007: an account's key history is read by jid, and deleting an account cascades to it by jid.
CREATE INDEX interop_key_history_jid ON interop_key_history (jid, id);
