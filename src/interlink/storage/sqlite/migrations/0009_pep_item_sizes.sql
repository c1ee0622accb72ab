-- 0009: the size in bytes of each PEP item's payload (UTF-8), so an account's PEP usage is a
-- sum of integers (the per-account byte quota) rather than a read of every payload.
ALTER TABLE pep_items ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
UPDATE pep_items SET size = length(CAST(payload AS BLOB));
