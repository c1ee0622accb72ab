"""What routing and the session registry need of the cluster, below the offline queue and the
registry: the directory writer (:class:`DirectorySync`) and :func:`send_to_nodes`. The node's
own loops are in :mod:`interlink.hub.cluster`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from interlink.cluster import Cluster, ClusterError, Located, SessionDirectory
from interlink.xmpp.jid import JID

if TYPE_CHECKING:
    from interlink.hub.session import Session

log = logging.getLogger("interlink.cluster")
_GONE = -(2**31)  # the priority that means "unbind"


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
