"""The SDK's SQLite storage for python-omemo: values survive a reopen; writes are immediate."""

from __future__ import annotations

from pathlib import Path

from interlink.client.store import SqliteOmemoStorage


async def test_values_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "omemo.sqlite3"
    store = await SqliteOmemoStorage.open(path)
    await store.store("/a", {"k": [1, 2, 3], "s": "x"})
    await store.store_bytes("/b", b"\x00\x01")
    await store.store("/gone", 5)
    await store.delete("/gone")
    await store.close()
    store = await SqliteOmemoStorage.open(path)
    try:
        assert (await store.load("/a")).from_just() == {"k": [1, 2, 3], "s": "x"}
        assert (await store.load_bytes("/b")).from_just() == b"\x00\x01"
        assert (await store.load("/gone")).is_nothing
    finally:
        await store.close()
