-- 0011: XEP-0198: which stream-management stream a stored message was last written to, and as
-- which stanza of it.
ALTER TABLE offline_messages ADD COLUMN sent_on TEXT;
ALTER TABLE offline_messages ADD COLUMN sent_seq BIGINT;
