"""The storage test kit's fixtures (:mod:`tests.storage.kit`) for every test under here."""

from __future__ import annotations

from tests.storage.kit import engine, storage

__all__ = ["engine", "storage"]
