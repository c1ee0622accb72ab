-- 0013: XEP-0054 vcard-temp: one serialized vCard per account.
CREATE TABLE vcards (
    owner  TEXT PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,
    vcard  TEXT NOT NULL
);
