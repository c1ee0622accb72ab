-- XEP-0049 private XML storage: one serialized fragment per account and namespace, with its
-- UTF-8 size so an account's usage is one sum.
CREATE TABLE private_fragments (
    owner      TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    namespace  TEXT NOT NULL,
    fragment   TEXT NOT NULL,
    size       INTEGER NOT NULL,
    PRIMARY KEY (owner, namespace)
);
