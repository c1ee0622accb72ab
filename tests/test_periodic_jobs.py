"""The hub's clean-up jobs (media, change feed, archives) run through one loop: a failure is
logged and the job runs again at its next time; what a run removed is logged with its count."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from interlink.app import _periodically


async def test_a_failed_run_is_logged_and_the_job_runs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    counts: list[int | Exception] = [RuntimeError("disk unplugged"), 0, 3]
    runs = 0

    async def job() -> int:
        nonlocal runs
        runs += 1
        result = counts[runs - 1] if runs <= len(counts) else 0
        if isinstance(result, Exception):
            raise result
        return result

    caplog.set_level(logging.INFO, logger="interlink")
    task = asyncio.create_task(_periodically(0.01, job, "clean-up failed", "things removed"))
    try:
        async with asyncio.timeout(5):
            while runs < 3:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    failed = [r for r in caplog.records if r.getMessage() == "clean-up failed"]
    assert len(failed) == 1
    assert failed[0].exc_info is not None
    removed = [r for r in caplog.records if r.getMessage() == "things removed"]
    assert [r.__dict__["count"] for r in removed] == [3]  # a run that removed nothing is silent


async def test_without_a_message_a_run_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    ran = asyncio.Event()

    async def job() -> int:
        ran.set()
        return 7

    caplog.set_level(logging.INFO, logger="interlink")
    task = asyncio.create_task(_periodically(0.01, job, "pruning failed"))
    async with asyncio.timeout(5):
        await ran.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert caplog.records == []
