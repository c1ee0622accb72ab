"""The SDK's group commit: nothing leaves before its state is durable; bursts share commits."""

from __future__ import annotations

import asyncio
import functools

import pytest
from omemo.storage import StorageException

from interlink.client.durable import CryptoGate


class FakeStorage:
    """Counts commits and records the order of commits and effects."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.dirty = 0  # writes since the last commit
        self.in_operation = 0  # writes of the current operation
        self.commits = 0
        self.fail = False
        self.epoch = 0

    @property
    def pending(self) -> bool:
        return self.dirty > 0

    def write(self) -> None:
        self.dirty += 1
        self.in_operation += 1

    def begin_operation(self) -> None:
        self.in_operation = 0

    def end_operation(self, *, keep: bool) -> None:
        if not keep:
            self.dirty -= self.in_operation
            self.log.append(f"undo {self.in_operation}")
        self.in_operation = 0

    def commit(self) -> None:
        if self.fail:
            self.dirty = 0  # rolled back
            self.epoch += 1
            raise StorageException("disk I/O error")
        if self.dirty:
            self.commits += 1
            self.log.append(f"commit {self.dirty}")
            self.dirty = 0
        self.in_operation = 0


def setup(max_batch: int = 64) -> tuple[CryptoGate, FakeStorage, list[str]]:
    log: list[str] = []
    storage = FakeStorage(log)
    return CryptoGate(storage, max_batch=max_batch), storage, log


async def send(gate: CryptoGate, storage: FakeStorage, log: list[str], name: str) -> None:
    """What ``InterlinkClient._send`` does: encrypt in an operation, then hand the stanza over."""
    async with gate.operation():
        storage.write()
    await gate.after(lambda: log.append(name))


async def test_a_lone_operation_commits_before_its_effect() -> None:
    gate, storage, log = setup()
    await send(gate, storage, log, "m1")
    assert log == ["commit 1", "m1"]
    assert gate.commits == 1
    await send(gate, storage, log, "m2")
    assert log == ["commit 1", "m1", "commit 1", "m2"]


async def test_concurrent_operations_share_one_commit() -> None:
    gate, storage, log = setup()
    await asyncio.gather(*(send(gate, storage, log, f"m{i}") for i in range(10)))
    assert log == ["commit 10", *(f"m{i}" for i in range(10))]  # in order, after the commit
    assert storage.commits == 1


async def test_a_batch_commits_after_max_batch_operations() -> None:
    """The receive worker goes through a backlog without yielding: the batch bound commits."""
    gate, storage, log = setup(max_batch=4)
    for i in range(10):
        async with gate.operation():
            storage.write()
        gate.after(functools.partial(log.append, f"event {i}"))
    assert log == [
        "commit 4",
        *(f"event {i}" for i in range(4)),  # event 3 is handed over after its commit: at once
        "commit 4",
        *(f"event {i}" for i in range(4, 8)),
    ]
    await gate.durable()
    assert log[-3:] == ["commit 2", "event 8", "event 9"]


async def test_an_effect_with_nothing_pending_runs_at_once() -> None:
    gate, _, log = setup()
    future = gate.after(lambda: log.append("now"))
    assert log == ["now"]
    assert future.done()


async def test_effects_keep_their_order_behind_a_pending_commit() -> None:
    """An event that needs no new state still waits behind one that does."""
    gate, storage, log = setup()
    async with gate.operation():
        storage.write()
    gate.after(lambda: log.append("message"))
    gate.after(lambda: log.append("error about the next stanza"))
    assert log == []
    await gate.durable()
    assert log == ["commit 1", "message", "error about the next stanza"]


async def test_half_an_operation_is_never_committed() -> None:
    """An operation waiting on the network (a bundle download) keeps the commit back: its
    writes and the earlier ones reach the disk together, after it ends."""
    gate, storage, log = setup()
    resume = asyncio.Event()
    entered = asyncio.Event()

    async def slow() -> None:
        async with gate.operation():
            storage.write()
            entered.set()
            await resume.wait()
            storage.write()

    task = asyncio.create_task(slow())
    await entered.wait()
    first = gate.after(lambda: log.append("first"))  # the commit's turn comes, and passes
    for _ in range(5):
        await asyncio.sleep(0)
    assert log == []
    assert not first.done()
    resume.set()
    await task
    await first
    assert log == ["commit 2", "first"]


async def test_a_failed_commit_sends_nothing_and_tells_everyone() -> None:
    gate, storage, log = setup()
    failures: list[str] = []
    async with gate.operation():
        storage.write()
    storage.fail = True
    quiet = gate.after(lambda: log.append("event"), fail=lambda exc: failures.append(str(exc)))
    with pytest.raises(StorageException):
        await gate.after(lambda: log.append("stanza"))
    assert log == []
    assert failures == ["disk I/O error"]
    assert quiet.done()
    assert isinstance(quiet.exception(), StorageException)
    storage.fail = False
    await send(gate, storage, log, "later")  # the gate goes on working
    assert log == ["commit 1", "later"]


async def test_an_operation_that_raises_still_releases_and_commits() -> None:
    gate, storage, log = setup()

    async def refused() -> None:
        async with gate.operation():
            storage.write()
            raise RuntimeError("python-omemo refused the message")

    with pytest.raises(RuntimeError):
        await refused()
    await send(gate, storage, log, "next")
    assert log == ["commit 2", "next"]


async def test_a_failing_effect_does_not_keep_back_the_others() -> None:
    gate, storage, log = setup()

    def broken() -> None:
        raise OSError("socket closed")

    async with gate.operation():
        storage.write()
    bad = gate.after(broken)
    good = gate.after(lambda: log.append("next"))
    await good
    assert isinstance(bad.exception(), OSError)
    assert log == ["commit 1", "next"]


async def test_commit_now_releases_what_is_held_back() -> None:
    gate, storage, log = setup()
    async with gate.operation():
        storage.write()
    gate.after(lambda: log.append("event"))
    gate.commit_now()
    assert log == ["commit 1", "event"]


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        CryptoGate(FakeStorage([]), max_batch=0)


async def test_operations_waiting_for_their_turn_join_the_commit() -> None:
    """Sends queued behind one that waits on the network (the first message to a contact
    fetches its keys) are committed together once they have all run."""
    gate, storage, log = setup()
    resume = asyncio.Event()

    async def first() -> None:
        async with gate.operation():
            storage.write()
            await resume.wait()
        await gate.after(lambda: log.append("m0"))

    tasks = [asyncio.create_task(first())]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(send(gate, storage, log, f"m{i}")) for i in range(1, 6)]
    await asyncio.sleep(0)
    resume.set()
    await asyncio.gather(*tasks)
    assert log == ["commit 6", *(f"m{i}" for i in range(6))]


async def test_a_waiter_cancelled_before_its_turn_does_not_hold_the_commit() -> None:
    gate, storage, log = setup()
    resume = asyncio.Event()

    async def holder() -> None:
        async with gate.operation():
            storage.write()
            await resume.wait()

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(send(gate, storage, log, "never"))
    await asyncio.sleep(0)
    resume.set()
    waiter.cancel()
    await held
    await gate.durable()
    assert log == ["commit 1"]
    assert waiter.cancelled()


async def test_an_operation_cancelled_half_way_is_undone_and_the_rest_committed() -> None:
    gate, storage, log = setup()
    async with gate.operation():
        storage.write()
    first = gate.after(lambda: log.append("m1"))
    entered = asyncio.Event()

    async def interrupted() -> None:
        async with gate.operation():
            storage.write()
            storage.write()
            entered.set()
            await asyncio.Event().wait()  # a fetch that never ends

    task = asyncio.create_task(interrupted())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await first
    assert log == ["commit 1", "m1", "undo 2"]
    assert not storage.pending  # nothing of the interrupted operation is left to commit
    await gate.durable()
    assert storage.commits == 1


async def test_a_closed_gate_runs_nothing_more() -> None:
    gate, storage, log = setup()
    gate.close()
    async with gate.operation():
        storage.write()
    with pytest.raises(StorageException, match="closed"):
        await gate.after(lambda: log.append("late"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert log == []


def test_max_delay_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="max_delay"):
        CryptoGate(FakeStorage([]), max_delay=-1.0)
