-- 0010: a phone number belongs to one account per gatekeeper service (a person may use two
-- messengers of one hub with the same number), not to one account hub-wide.
CREATE TABLE account_phones_new (
    service  TEXT NOT NULL,               -- the domain of jid
    phone    TEXT NOT NULL,               -- E.164
    jid      TEXT NOT NULL UNIQUE REFERENCES accounts(jid) ON DELETE CASCADE,
    PRIMARY KEY (service, phone)
);
INSERT INTO account_phones_new (service, phone, jid)
    SELECT substr(jid, instr(jid, '@') + 1), phone, jid FROM account_phones;
DROP TABLE account_phones;
ALTER TABLE account_phones_new RENAME TO account_phones;
