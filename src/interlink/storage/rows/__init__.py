"""What the SQL engines share: how each record is laid out in a row of its table.

The tables are the same on SQLite and PostgreSQL (each engine's numbered migrations create
them), so the conversion between a row and the record a repository returns, and between a
record and the parameters of its INSERT, is written once, here, one module per concern; the
SQL itself stays with each engine (:mod:`interlink.storage.sqlite`,
:mod:`interlink.storage.postgres`).
"""

from __future__ import annotations

from typing import Any, TypeAlias

Row: TypeAlias = tuple[Any, ...]
