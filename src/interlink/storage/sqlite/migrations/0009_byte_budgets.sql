-- 0009: per-account byte budgets. The size in bytes (UTF-8) of each PEP item's payload and of
-- each offline message, so an account's usage is a sum of integers rather than a read of every
-- payload; offline messages' sizes are indexed with their owner, so the queue's count and bytes
-- are read from the index alone when a message is stored. PEP subscriptions are counted per
-- subscribing account (the per-account cap), so they are indexed by subscriber.
ALTER TABLE pep_items ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE pep_items SET size = length(CAST(payload AS BLOB));

ALTER TABLE offline_messages ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE offline_messages SET size = length(CAST(stanza AS BLOB));
CREATE INDEX offline_messages_sizes ON offline_messages (owner, size);

CREATE INDEX pep_subscriptions_by_subscriber ON pep_subscriptions (subscriber);
