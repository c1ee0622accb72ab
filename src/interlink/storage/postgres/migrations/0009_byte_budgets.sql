-- 0009: per-account byte budgets: the UTF-8 size of each PEP item's payload and of each offline
-- message, so an account's usage is a sum of integers; PEP subscriptions indexed by subscriber.
ALTER TABLE pep_items ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
UPDATE pep_items SET size = octet_length(payload);

ALTER TABLE offline_messages ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
UPDATE offline_messages SET size = octet_length(stanza);
CREATE INDEX offline_messages_sizes ON offline_messages (owner, size);

CREATE INDEX pep_subscriptions_by_subscriber ON pep_subscriptions (subscriber);
