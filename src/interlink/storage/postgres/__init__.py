"""The PostgreSQL engine (psycopg 3 async, a connection pool, numbered migrations of its own,
durable commits, a commit-ordered change feed): one module per concern, named as in
:mod:`interlink.storage`, each the twin of its SQLite module, holding its SQL and row mappers.
Imported only when ``storage.engine = "postgres"``: psycopg is needed only then."""

from __future__ import annotations
