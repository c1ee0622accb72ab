"""Group commit: concurrent writers share one transaction, so one fsync and a few hops to the
SQLite thread serve many callers.

Callers :meth:`GroupCommit.submit` an item and wait. The first item to arrive starts a drain
task; everything submitted before the drain gets its turn is written in one call of ``write``
(one transaction, committed durably before ``write`` returns), and items arriving meanwhile
form the next group. So under no load a write is alone and waits for nothing; under load
the commit and its fsync are shared.

The guarantees each caller keeps:

- its await returns only after the transaction holding its item has committed; the result is
  the one ``write`` gave for its item;
- if ``write`` fails (the transaction rolled back), every caller in that group gets the
  exception, and none of its items is stored; the next group is tried afresh;
- a caller cancelled while it waits gives up its answer, not its item: the item may still be
  committed with its group (as it could be had the cancellation come just after the commit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class GroupCommit(Generic[ItemT, ResultT]):
    """``write(items)`` stores all ``items`` in one transaction and returns one result per
    item, in order (see the module docstring)."""

    def __init__(
        self,
        write: Callable[[list[ItemT]], Awaitable[list[ResultT]]],
        *,
        max_group: int = 256,
    ) -> None:
        if max_group < 1:
            raise ValueError("max_group must be at least 1")
        self._write = write
        self._max = max_group
        self._waiting: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._drain_task: asyncio.Task[None] | None = None
        self.groups = 0  # transactions written (for tests and metrics)

    async def submit(self, item: ItemT) -> ResultT:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        self._waiting.append((item, future))
        if self._drain_task is None:
            self._drain_task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                group = self._waiting[: self._max]
                del self._waiting[: self._max]
                try:
                    results = await self._write([item for item, _ in group])
                    if len(results) != len(group):
                        raise RuntimeError("group write returned the wrong number of results")
                except asyncio.CancelledError:
                    for _, future in group:
                        future.cancel()
                    raise
                except Exception as exc:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                finally:
                    self.groups += 1
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        except asyncio.CancelledError:
            for _, future in self._waiting:
                future.cancel()
            self._waiting.clear()
            raise
        finally:
            self._drain_task = None
