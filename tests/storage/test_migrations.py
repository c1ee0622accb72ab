"""Migration contract: an opened database has every migration applied, numbered 1..n."""

from __future__ import annotations

from interlink.storage import Storage


async def test_an_opened_database_is_at_the_latest_version(storage: Storage) -> None:
    runner = storage.migrations
    numbers = [m.number for m in runner.migrations]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 7
    assert await runner.current_version() == len(numbers)
    assert await runner.pending() == []
    assert await runner.apply() == []  # applying again changes nothing
    await storage.ping()
