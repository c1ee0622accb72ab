-- 0010: a phone number belongs to one account per gatekeeper service, not to one account
-- hub-wide.
ALTER TABLE account_phones ADD COLUMN service TEXT;
UPDATE account_phones SET service = split_part(jid, '@', 2);
ALTER TABLE account_phones ALTER COLUMN service SET NOT NULL;
ALTER TABLE account_phones DROP CONSTRAINT account_phones_pkey;
ALTER TABLE account_phones ADD PRIMARY KEY (service, phone);
