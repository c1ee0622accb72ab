-- 0012: XEP-0049 private XML storage: one serialized fragment per account and namespace.
CREATE TABLE private_fragments (
    owner      TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,
    namespace  TEXT NOT NULL,
    fragment   TEXT NOT NULL,
    size       BIGINT NOT NULL,
    PRIMARY KEY (owner, namespace)
);
