"""Group commit for the SDK's crypto state: nothing leaves before the state behind it is on disk.

python-omemo changes the crypto state (sessions, message keys, the replay memory) on every
encrypt and decrypt. :class:`~interlink.client.store.SqliteOmemoStorage` collects those changes
in one open SQLite transaction; a :class:`CryptoGate` decides when it commits, and holds back
every *effect* of an operation (the stanza it encrypted, the events of a message it decrypted)
until it has. So after a crash or a power loss the state on disk is never behind what anybody
has seen: no sending chain's message key is used twice for different messages, and no message
the app was shown can be decrypted a second time as new.

The commit (one fsync) costs about as much as the cryptography on a typical disk. The gate
shares it among operations that follow each other closely: when an operation ends, the commit
is only *scheduled* (``loop.call_soon``), so operations that are already runnable or waiting
for their turn (several sends at once, the receive worker going through the offline backlog
without yielding) join it. It runs at the latest after ``max_batch`` operations, and never
while an operation is half done: python-omemo's writes of one operation reach the disk together
or not at all (unless python-omemo sends something in the middle of one: the session manager's
hooks call :meth:`CryptoGate.commit_now` first, see ``omemo_session.session_manager_class``, which
also lets out what was held back before, so stanzas leave in the order they were encrypted).
An operation interrupted
half-way (cancelled, e.g. when the client closes) is undone: each operation's writes sit behind
a savepoint. Held-back effects wait at most ``max_delay`` seconds for a commit between two
operations, even when every operation waits on the network inside and the next one follows at
once. A lone operation
pays one event-loop turn of latency; a burst pays one fsync per batch.

If the commit fails, the transaction is rolled back, the storage forgets what it cached, and
every effect held back fails instead of running: its stanza is never sent. So does every effect
whose writes were lost some other way (a commit made directly by python-omemo's hooks that
failed, SQLite rolling back a transaction after an I/O error): the storage's ``epoch`` changes
with every such loss, and an effect runs only if it has not changed since the effect was held
back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from omemo.storage import StorageException

log = logging.getLogger(__name__)

MAX_BATCH = 64  # operations sharing one commit, at most
MAX_DELAY = 0.05  # seconds an effect waits, at most, before a commit between two operations


def check_limits(max_batch: int, max_delay: float) -> None:
    """ValueError unless ``max_batch`` ≥ 1 and ``max_delay`` ≥ 0."""
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    if max_delay < 0:
        raise ValueError("max_delay must not be negative")


class Committer(Protocol):
    """What the gate needs from the storage."""

    @property
    def pending(self) -> bool:
        """Whether there are uncommitted writes."""

    @property
    def epoch(self) -> int:
        """Changes whenever uncommitted writes are lost."""

    def commit(self) -> None:
        """Make every write so far durable; on failure roll back and raise."""

    def begin_operation(self) -> None:
        """The writes from here on belong to one operation."""

    def end_operation(self, *, keep: bool) -> None:
        """The operation is over; ``keep=False`` undoes its writes."""


class _Effect:
    __slots__ = ("epoch", "fail", "future", "run")

    def __init__(
        self,
        run: Callable[[], None],
        fail: Callable[[BaseException], None] | None,
        future: asyncio.Future[None],
        epoch: int,
    ) -> None:
        self.run = run
        self.fail = fail
        self.future = future
        self.epoch = epoch  # the storage's epoch when it was held back


class CryptoGate:
    """One crypto operation at a time; their effects wait for the commit of their state."""

    def __init__(
        self, storage: Committer, *, max_batch: int = MAX_BATCH, max_delay: float = MAX_DELAY
    ) -> None:
        check_limits(max_batch, max_delay)
        self._storage = storage
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._held_since = 0.0  # loop time the oldest held-back effect was given
        self._closed = False
        self._lock = asyncio.Lock()
        self._waiting = 0  # operations waiting for their turn
        self._outbox: list[_Effect] = []
        self._operations = 0  # ended since the last commit
        self._scheduled = False
        self.commits = 0  # commits that had writes to make durable

    @contextlib.asynccontextmanager
    async def operation(self) -> AsyncIterator[None]:
        """Exclusive use of the crypto state (ratchets must see one operation at a time)."""
        self._waiting += 1
        try:
            await self._lock.acquire()
        except BaseException:  # cancelled while waiting: it will not commit for the others
            self._waiting -= 1
            self._schedule()
            raise
        self._waiting -= 1
        if self._outbox and self._overdue():
            self._commit()  # a boundary between operations: nothing is half done
        self._storage.begin_operation()
        keep = True
        try:
            yield
        except Exception:
            raise  # python-omemo refused something: what it wrote stays, as it decided
        except BaseException:
            keep = False  # interrupted half-way (cancelled): undo its writes
            raise
        finally:
            self._storage.end_operation(keep=keep)
            self._lock.release()
            self._operations += 1
            if self._operations >= self._max_batch or (self._outbox and self._overdue()):
                self._commit()
            else:
                self._schedule()

    def after(
        self, effect: Callable[[], None], *, fail: Callable[[BaseException], None] | None = None
    ) -> asyncio.Future[None]:
        """Run ``effect`` once every write made so far is durable (at once if there is none),
        in the order effects were given; ``fail`` instead if the commit fails. The future
        completes when it has run (or carries the commit's error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        item = _Effect(effect, fail, future, self._storage.epoch)
        if self._closed:
            self._fail(item, StorageException("the crypto state is closed"))
        elif not self._outbox and not self._storage.pending:
            self._run(item)
        else:
            if not self._outbox:
                self._held_since = loop.time()
            self._outbox.append(item)
            self._schedule()
        return future

    async def durable(self) -> None:
        """Wait until every write made so far is durable (raises if the commit fails)."""
        await self.after(lambda: None)

    def commit_now(self) -> None:
        """Commit and release the held effects now, in their order (when closing, and before
        python-omemo sends something by itself in the middle of an operation, which must not
        overtake them); raises if the commit fails."""
        self._commit(reraise=True)

    def close(self) -> None:
        """No more commits from here (the storage is about to close); effects given later
        fail."""
        self._closed = True

    def _overdue(self) -> bool:
        return asyncio.get_running_loop().time() - self._held_since >= self._max_delay

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._on_turn)

    def _on_turn(self) -> None:
        self._scheduled = False
        if self._closed or self._lock.locked() or self._waiting:
            return  # half an operation is never committed; the next one to end schedules again
        self._commit()

    def _commit(self, *, reraise: bool = False) -> None:
        self._operations = 0
        effects, self._outbox = self._outbox, []
        if self._storage.pending:
            try:
                self._storage.commit()
            except Exception as exc:
                log.error("crypto state not saved; %d held-back effects dropped", len(effects))
                for item in effects:
                    self._fail(item, exc)
                if reraise:
                    raise
                return
            self.commits += 1
        epoch = self._storage.epoch
        for item in effects:
            if item.epoch == epoch:
                self._run(item)
            else:  # its writes were lost before this commit (see the module docstring)
                self._fail(item, StorageException("the crypto state it needed was lost"))

    @staticmethod
    def _run(item: _Effect) -> None:
        try:
            item.run()
        except Exception as exc:  # one effect's failure must not keep back the others
            log.exception("an effect of a crypto operation failed")
            if not item.future.done():
                item.future.set_exception(exc)
                item.future.exception()  # retrieved: nobody may be waiting for it
            return
        if not item.future.done():
            item.future.set_result(None)

    @staticmethod
    def _fail(item: _Effect, exc: BaseException) -> None:
        if item.fail is not None:
            try:
                item.fail(exc)
            except Exception:
                log.exception("a failure handler of a crypto operation failed")
        if not item.future.done():
            item.future.set_exception(exc)
            item.future.exception()  # retrieved: nobody may be waiting for it
