-- XEP-0198: which stream-management stream a stored message was last written to, and as which
-- stanza of it (the client's h counts them). A client that reports h for that stream (its
-- <resume previd h/>, also after a restart) settles the messages it has: deleted, not re-sent.
ALTER TABLE offline_messages ADD COLUMN sent_on TEXT;
ALTER TABLE offline_messages ADD COLUMN sent_seq INTEGER;
