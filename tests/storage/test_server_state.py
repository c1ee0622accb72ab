"""Server state contract: a named secret is created once and then kept."""

from __future__ import annotations

from interlink.storage import Storage


async def test_a_secret_is_created_once(storage: Storage) -> None:
    first = await storage.server_state.get_or_create_secret("sasl-decoy", 32)
    assert len(first) == 32
    assert await storage.server_state.get_or_create_secret("sasl-decoy", 32) == first
    other = await storage.server_state.get_or_create_secret("other", 16)
    assert len(other) == 16
    assert other != first[:16]
