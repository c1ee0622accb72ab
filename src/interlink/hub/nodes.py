"""What routing and the session registry need of the cluster, below the offline queue and the
registry: the directory writer (:class:`DirectorySync`), :func:`send_to_nodes` (a message for
an account, delivered or stored), and :func:`elsewhere` + :func:`send_live` (stanzas that only
matter to a session that is there now: presence, carbons, PEP notifications, room traffic).
The node's own loops are in :mod:`interlink.hub.cluster`.

Every kind of payload a node puts in another node's inbox is built here (``to``/``xml``,
``drain``, ``live``, ``probe``, ``room``; requests that wait for an answer, :class:`NodeCalls`:
``component``, ``metrics`` and their ``reply``), and read in :meth:`ClusterNode.handle`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from interlink.cluster import Cluster, ClusterError, Located, SessionDirectory
from interlink.tasks import cancel_and_wait
from interlink.xmpp.jid import JID

if TYPE_CHECKING:
    from interlink.hub.session import Session

log = logging.getLogger("interlink.cluster")
_GONE = -(2**31)  # the priority that means "unbind"
T = TypeVar("T")


class DirectorySync:
    """Writes this node's sessions (bound, presence changed, gone) to the shared directory, in
    order, from one background task, so routing never waits for it."""

    def __init__(
        self,
        directory: SessionDirectory,
        bound: Callable[[str], None] | None = None,
        *,
        retries: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0),
    ) -> None:
        """``bound(full_jid)`` is called once a session's entry as available is written (so
        the messages stored for it by other nodes before they could see it are delivered).
        A write the cluster fails (:class:`ClusterError`) is tried again after each of
        ``retries`` seconds, the later changes waiting behind it (they keep their order);
        then it is logged and dropped (the next change of that session writes it again)."""
        self._directory = directory
        self._bound = bound
        self._retries = retries
        self._queue: asyncio.Queue[tuple[str, bool, int] | None] | None = None
        self._task: asyncio.Task[None] | None = None

    def changed(self, session: Session) -> None:
        self._put((str(session.jid), session.available, session.priority))

    def gone(self, session: Session) -> None:
        self._put((str(session.jid), False, _GONE))

    def _put(self, item: tuple[str, bool, int]) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(
                self._write(self._queue), name="cluster-directory"
            )
        self._queue.put_nowait(item)

    async def _write(self, queue: asyncio.Queue[tuple[str, bool, int] | None]) -> None:
        while (item := await queue.get()) is not None:
            full, available, priority = item
            try:
                for pause in (*self._retries, None):
                    try:
                        if priority == _GONE:
                            await self._directory.unbind(full)
                        else:
                            await self._directory.bind(full, available=available, priority=priority)
                        break
                    except ClusterError:
                        if pause is None:
                            raise
                        await asyncio.sleep(pause)
                if priority != _GONE and available and priority >= 0 and self._bound is not None:
                    self._bound(full)
            except Exception:
                log.warning("could not update the session directory", exc_info=True)
            finally:
                queue.task_done()

    async def flush(self) -> None:
        """Wait until everything so far is written."""
        if self._queue is not None:
            await self._queue.join()

    async def close(self) -> None:
        if self._queue is not None and self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._queue = None
            self._task = None


def _payload(to: JID, xml: str) -> str:
    return json.dumps({"to": str(to), "xml": xml}, ensure_ascii=False)


async def ask_nodes_to_drain(cluster: Cluster, bare: JID) -> None:
    """Ask the other nodes where ``bare`` has an available resource to deliver its stored
    messages (a message was stored while such a resource was coming online there). Looks the
    account up afresh: a cached answer could miss the resource that just came. If the cluster
    cannot be reached the stored messages wait for the resource's next available presence
    (logged, not raised: they are stored already)."""
    notice = json.dumps({"drain": str(bare)})
    try:
        located = await cluster.directory.locate(str(bare))
        for node in sorted({s.node for s in located if s.node != cluster.node_id and s.available}):
            await cluster.bus.send(node, notice)
    except ClusterError as exc:
        log.warning(
            "could not ask the other nodes to deliver stored messages",
            extra={"jid": str(bare), "error": str(exc)},
        )


async def send_to_session(cluster: Cluster, full: JID, xml: str) -> bool:
    """Route a message for exactly ``full`` to the other node that holds it, if one does:
    whether it took it (a full JID held elsewhere goes there, not to this node's resources).
    The directory is read as :func:`send_to_nodes` reads it (cached first, again from the
    shared server if every node named refuses), and a cluster that cannot be reached is
    ``False`` (logged): the caller delivers or stores the message here."""
    try:
        for cached in (True, False):
            located = await cluster.directory.locate(str(full.bare), cached=cached)
            holders = sorted(
                {w.node for w in located if w.node != cluster.node_id and w.full_jid == str(full)}
            )
            if not holders:
                return False
            for node in holders:
                if await cluster.bus.send(node, _payload(full, xml)):
                    return True
        return False
    except ClusterError as exc:
        log.warning(
            "could not route a message to another node's session",
            extra={"jid": str(full), "error": str(exc)},
        )
        return False


async def send_to_nodes(cluster: Cluster, bare: JID, full: JID | None, xml: str) -> bool:
    """Route a message for ``bare`` (or exactly ``full``) to the sessions other live nodes hold:
    to the node holding ``full`` if one does, else to the nodes of the available resources of
    highest non-negative priority (RFC 6121 §8.5.2.1.1). Whether any node took it; if not,
    the caller stores the message.

    The directory is read from this node's cache first (:meth:`SessionDirectory.locate`); if
    every node it names refuses (a node that died), it is read again from the shared server.
    A node that took the message but no longer holds the session stores it there. If the
    cluster cannot be reached (down, too slow, no free connection in time) this returns
    ``False`` and logs it, never raises: the message is stored rather than lost (should the
    append have happened before the failure was seen, it is delivered twice, never zero
    times)."""
    try:
        for cached in (True, False):
            located = await cluster.directory.locate(str(bare), cached=cached)
            sent = await _send_to(cluster, located, bare, full, xml)
            if sent is not None:
                return sent
        return False
    except ClusterError as exc:
        log.warning(
            "could not route a message to another node; storing it",
            extra={"jid": str(bare), "error": str(exc)},
        )
        return False


async def _send_to(
    cluster: Cluster, located: list[Located], bare: JID, full: JID | None, xml: str
) -> bool | None:
    """Send to the best of ``located``: ``True`` if a node took it, ``False`` if there is no
    node to send it to, ``None`` if there were nodes and each refused (not alive)."""
    others = [s for s in located if s.node != cluster.node_id]
    refused = False
    if full is not None:
        for where in others:
            if where.full_jid == str(full):
                if await cluster.bus.send(where.node, _payload(full, xml)):
                    return True
                refused = True
    eligible = [s for s in others if s.available and s.priority >= 0]
    if not eligible:
        return None if refused else False
    best = max(s.priority for s in eligible)
    sent = False
    for node in sorted({s.node for s in eligible if s.priority == best}):
        sent = await cluster.bus.send(node, _payload(bare, xml)) or sent
    return True if sent else None


async def elsewhere(cluster: Cluster, bare: JID) -> list[Located]:
    """The available sessions of ``bare`` on the other live nodes (none with the in-process
    cluster: nothing to ask)."""
    if not cluster.shared:
        return []
    try:
        # the node's cached answer (dropped when the account's sessions change): presence and
        # copies for every contact must not cost a Redis round trip each
        found = await cluster.directory.locate(str(bare), cached=True)
    except Exception:  # live stanzas are for sessions that are there now: none is lost
        log.warning("the session directory could not be read", exc_info=True)
        return []
    return [s for s in found if s.node != cluster.node_id and s.available]


async def elsewhere_all(cluster: Cluster, bares: Iterable[JID]) -> dict[JID, list[Located]]:
    """:func:`elsewhere` for several accounts at once (the lookups run concurrently); only
    those with a session elsewhere are in the result."""
    if not cluster.shared:
        return {}
    wanted = list(dict.fromkeys(bares))
    found = await asyncio.gather(*(elsewhere(cluster, bare) for bare in wanted))
    return {bare: where for bare, where in zip(wanted, found, strict=True) if where}


# What a session must be for a live stanza to be written to it (checked on its own node, which
# alone knows): available; carbons enabled (XEP-0280); a roster reader; wanting ``<node>``
# notifications (``when_notify``).
WHEN_AVAILABLE = "available"
WHEN_CARBONS = "carbons"
WHEN_ROSTER = "roster"  # it asked for the roster (RFC 6121 §2.1.6)


def when_notify(node: str) -> str:
    return "notify:" + node


async def send_live(
    cluster: Cluster, deliveries: Sequence[tuple[Located, str]], when: str | None = None
) -> int:
    """Write each ``xml`` to the session ``where`` on its node, if it is still there (and meets
    ``when``, see ``WHEN_*``); one inbox entry per node. Nothing is stored if it is gone: these
    are stanzas for a session, not messages for an account. Returns how many nodes took them."""
    by_node: dict[str, list[list[str]]] = {}
    for where, xml in deliveries:
        by_node.setdefault(where.node, []).append([where.full_jid, xml])
    taken = 0
    for node in sorted(by_node):
        payload = json.dumps({"live": by_node[node], "when": when}, ensure_ascii=False)
        try:
            taken += await cluster.bus.send(node, payload)
        except Exception:
            log.warning("stanzas for another node's sessions not sent", exc_info=True)
    return taken


async def send_to_node(cluster: Cluster, node: str, kind: str, body: dict[str, str]) -> bool:
    """A request of ``kind`` for ``node`` to act on (``probe``: answer with the presence of an
    account's sessions there; ``room``: a room's traffic for its occupants there)."""
    try:
        return await cluster.bus.send(node, json.dumps({kind: body}, ensure_ascii=False))
    except Exception:
        log.warning("a request for another node not sent", extra={"kind": kind}, exc_info=True)
        return False


class OrderedSender(Generic[T]):
    """Items sent in the order they were put, by one background task, in batches: each batch
    is what gathered while the one before was sent (``send(batch)``; a failure is logged, the
    items are for sessions and none is a message for an account). At most ``backlog`` items
    wait (``None``: no bound); beyond, :meth:`put` refuses, and counts it (``dropped``, logged
    at the first and every thousandth). The one queue shape behind :class:`LiveWriter` and
    :class:`Fanout`."""

    def __init__(
        self, send: Callable[[list[T]], Awaitable[None]], name: str, backlog: int | None = None
    ) -> None:
        self._send = send
        self._name = name
        self._backlog = backlog
        self._items: list[T] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Queue ``item``; ``False`` (nothing queued) if ``backlog`` items wait already."""
        if self._backlog is not None and len(self._items) >= self._backlog:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning(
                    "stanzas for other nodes dropped: backlog full",
                    extra={"queue": self._name, "n": self.dropped},
                )
            return False
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)
        self._items.append(item)
        self._idle.clear()
        self._wake.set()
        return True

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._items = self._items, []
            if batch:
                try:
                    await self._send(batch)
                except Exception:
                    log.warning("stanzas for other nodes not sent", exc_info=True)
            if not self._items:
                self._idle.set()

    async def flush(self) -> None:
        """Wait until everything put so far was sent."""
        await self._idle.wait()

    async def close(self, within: float = 10.0) -> None:
        """Send what waits (at most ``within`` seconds: a Redis that no longer answers must not
        hold up a node's stop; what is left is logged), then stop."""
        if self._task is not None:
            try:
                async with asyncio.timeout(within):
                    await self.flush()
            except TimeoutError:
                log.warning(
                    "stanzas for other nodes not sent before stopping",
                    extra={"queue": self._name, "n": len(self._items)},
                )
            await cancel_and_wait([self._task])
            self._task = None


class LiveWriter:
    """Stanzas for sessions on other nodes, sent in the order they were written (one inbox
    entry per node and batch, :func:`send_live`). For a stream of stanzas whose order matters
    (a room's traffic). At most ``backlog`` stanzas wait; beyond, they are dropped and counted
    (``dropped``): the room's archive keeps them for the occupant to fetch."""

    def __init__(self, cluster: Cluster, backlog: int) -> None:
        self._queue: OrderedSender[tuple[Located, str]] = OrderedSender(
            lambda batch: self._send(cluster, batch), "live-writer", backlog
        )

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    @staticmethod
    async def _send(cluster: Cluster, batch: list[tuple[Located, str]]) -> None:
        await send_live(cluster, batch)

    def write(self, node: str, full: JID, xml: str) -> None:
        self._queue.put((Located(str(full), node, True, 0), xml))

    async def flush(self) -> None:
        """Wait until everything written so far was sent."""
        await self._queue.flush()

    async def close(self) -> None:
        await self._queue.close()


def home_of(key: str, nodes: Iterable[str]) -> str:
    """The node among ``nodes`` that hosts ``key`` (rendezvous hashing: every node that sees
    the same live nodes picks the same one, and a node leaving moves only its own keys)."""
    return max(nodes, key=lambda node: hashlib.sha256(f"{node}\0{key}".encode()).digest())


Answer = Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any] | None]]


class NodeCalls:
    """Requests to another node that wait for its answer, through the inboxes: :meth:`call`
    puts ``{kind: {"call": id, "node": this node, ...body}}`` in that node's inbox; there the
    handler :meth:`serve` made for ``kind`` computes the answer in the background (``spawn``)
    and puts ``{"reply": {"call": id, "answer": ...}}`` in ours (:meth:`replied`). No answer
    within the time given (the node died, or is slow) is ``None``, as is a node that is not
    alive."""

    def __init__(
        self, cluster: Cluster, spawn: Callable[[Coroutine[Any, Any, None], str], None]
    ) -> None:
        self._cluster = cluster
        self._spawn = spawn
        self._waiting: dict[str, asyncio.Future[Mapping[str, Any] | None]] = {}

    async def call(
        self, node: str, kind: str, body: Mapping[str, Any], within: float
    ) -> Mapping[str, Any] | None:
        key = secrets.token_hex(8)
        waiter: asyncio.Future[Mapping[str, Any] | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiting[key] = waiter
        request = {**body, "call": key, "node": self._cluster.node_id}
        try:
            if not await self._cluster.bus.send(node, json.dumps({kind: request})):
                return None
            return await asyncio.wait_for(waiter, within)
        except TimeoutError:
            return None
        except Exception:
            log.warning("a call to another node failed", extra={"kind": kind}, exc_info=True)
            return None
        finally:
            self._waiting.pop(key, None)

    def serve(self, kind: str, answer: Answer) -> Callable[[Mapping[str, Any]], Awaitable[None]]:
        """The inbox handler for requests of ``kind``, answered by ``answer(body)``."""

        async def handler(body: Mapping[str, Any]) -> None:
            self._spawn(self._answer(answer, body), f"answer a {kind} request")

        return handler

    async def _answer(self, answer: Answer, body: Mapping[str, Any]) -> None:
        result = await answer(body)
        reply = {"reply": {"call": str(body["call"]), "answer": result}}
        await self._cluster.bus.send(str(body["node"]), json.dumps(reply))

    async def replied(self, body: Mapping[str, Any]) -> None:
        """The inbox handler for ``reply``: an answer to one of this node's calls."""
        waiter = self._waiting.get(str(body["call"]))
        if waiter is not None and not waiter.done():
            answer = body.get("answer")
            waiter.set_result(answer if isinstance(answer, Mapping) else None)


Build = Callable[[Located], str | None]  # the stanza for one session elsewhere, or none


class Fanout:
    """Stanzas for an account's sessions on other nodes that must not hold up the stanza that
    caused them (carbons on the message path, roster pushes): :meth:`put` queues them, one
    background task sends them in order, in batches (one concurrent directory read per distinct
    account in the batch, one inbox entry per node and condition). At most ``backlog`` jobs
    wait; beyond, new ones are dropped and counted (``dropped``): like a session that just went,
    the copies are lost, never the message they copy."""

    def __init__(self, cluster: Cluster, backlog: int) -> None:
        self._cluster = cluster
        self._queue: OrderedSender[tuple[JID, str | None, Build]] = OrderedSender(
            self._send, "fanout", backlog
        )

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    @property
    def active(self) -> bool:
        """Whether other nodes may hold sessions (``put`` is worth calling)."""
        return self._cluster.shared

    def may_reach(self, bare: JID) -> bool:
        """Whether :meth:`put` for ``bare`` may send anything: not if there is no other node,
        nor if this node's fresh answer of the directory has no available session of ``bare``
        elsewhere (so a caller can spare building what it would put)."""
        cluster = self._cluster
        if not cluster.shared:
            return False
        known = cluster.directory.peek(str(bare))
        return known is None or any(w.node != cluster.node_id and w.available for w in known)

    def put(self, bare: JID, when: str | None, build: Build) -> None:
        """``build(where)`` for each available session of ``bare`` on another node, sent to it
        if it still meets ``when`` (see ``WHEN_*``)."""
        if not self.may_reach(bare):
            return  # no other node, or this node's fresh answer: no session elsewhere
        self._queue.put((bare, when, build))  # beyond the backlog: dropped and counted

    async def _send(self, jobs: list[tuple[JID, str | None, Build]]) -> None:
        found = await elsewhere_all(self._cluster, (bare for bare, _, _ in jobs))
        out: dict[str | None, list[tuple[Located, str]]] = {}
        for bare, when, build in jobs:
            for where in found.get(bare, ()):
                xml = build(where)
                if xml is not None:
                    out.setdefault(when, []).append((where, xml))
        for when, deliveries in out.items():
            await send_live(self._cluster, deliveries, when)

    async def flush(self) -> None:
        """Wait until everything put so far was sent."""
        await self._queue.flush()

    async def close(self) -> None:
        await self._queue.close()
