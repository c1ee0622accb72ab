"""Ending background tasks for sure.

``task.cancel()`` followed by ``await task`` can wait for ever on Python 3.11: ``asyncio.wait_for``
returns its inner result and drops a cancellation that arrives just as the inner future completes
(CPython gh-86296, fixed in 3.12 by rewriting ``wait_for`` on ``asyncio.timeout``). redis-py
writes every command through ``wait_for``, so a task cancelled while it talks to Redis could lose
the cancellation and run on; ``serve --workers`` then saw a worker hang in its graceful stop until
the supervisor killed it. :func:`cancel_and_wait` cancels again whatever is still running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("interlink.tasks")

AGAIN_AFTER = 0.5  # seconds before a task still running is cancelled again


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], *, again_after: float = AGAIN_AFTER
) -> None:
    """Cancel ``tasks`` and return once every one has ended, cancelling again each ``again_after``
    seconds those that have not. A task that ended with an exception other than its cancellation
    is logged (its owner is stopping; there is nobody left to tell)."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_after)
        if pending:
            log.warning(
                "a task ignored its cancellation; cancelling it again",
                extra={"tasks": sorted(task.get_name() for task in pending)},
            )
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "a background task had failed",
                exc_info=task.exception(),
                extra={"task": task.get_name()},
            )
