"""cancel_and_wait: a task that loses its cancellation (as ``asyncio.wait_for`` can make it on
Python 3.11) is cancelled again until it ends; nothing hangs, failures are logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from interlink.tasks import cancel_and_wait


async def test_a_task_that_swallows_its_cancellation_is_cancelled_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lost = 0

    async def stubborn() -> None:
        nonlocal lost
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            lost += 1  # dropped, as wait_for drops one that races its inner future
        await asyncio.sleep(60)

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait([task], again_after=0.01), timeout=5)
    assert task.cancelled()
    assert lost == 1
    assert any("ignored its cancellation" in r.getMessage() for r in caplog.records)


async def test_plain_cancel_and_await_hangs_on_such_a_task() -> None:
    """The failure the helper exists for: one cancel, then an await that never returns."""

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)
        await asyncio.sleep(60)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=0.1)
    assert not done  # still running: awaiting it would wait the full minute
    await cancel_and_wait([task], again_after=0.01)
    assert task.cancelled()


async def test_done_tasks_and_failures(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise ValueError("broken")

    async def finishes() -> None:
        return None

    failed = asyncio.create_task(fails(), name="fails")
    finished = asyncio.create_task(finishes())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(asyncio.sleep(60))
    with caplog.at_level(logging.ERROR, logger="interlink.tasks"):
        await cancel_and_wait([failed, finished, waiting])
    assert waiting.cancelled()
    assert finished.done()
    assert not finished.cancelled()
    records = [r for r in caplog.records if r.getMessage() == "a background task had failed"]
    assert len(records) == 1
    assert getattr(records[0], "task", None) == "fails"
    await cancel_and_wait([])  # nothing to do
