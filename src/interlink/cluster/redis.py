"""The cluster on Redis (Debian's ``redis-server``; redis-py's asyncio client).

Keys, under a prefix (``cluster.redis_prefix``, default ``interlink:``):

- ``node:<id>``: the node's lease, a random token of its incarnation, expiring after
  ``node_ttl``; renewed only if the token is still ours (else the node was declared dead:
  fenced). ``nodes``: every node that ever held a lease and has not been cleaned up.
- ``sess:<bare JID>``: a hash, full JID -> ``node \\t available \\t priority``;
  ``node-sess:<id>``: the full JIDs a node holds (to forget them when it dies). Every write
  to a ``sess:`` hash publishes the bare JID on the channel ``dir`` in the same transaction
  or script, so nodes drop what they cached of it (:mod:`interlink.cluster.cache`).
- ``inbox:<id>``: the node's inbox, a stream (ordered, kept until handled); appended only if the
  node's lease exists, in one script, so nothing is sent to a node known dead.
- ``reap:<id>``: which survivor is reclaiming a dead node's inbox.
- ``bucket:<key>``: a token bucket (tokens, updated), refilled and taken by one script.
- the channel ``changes``: operator state changed.

*Connections.* One pool (redis-py's :class:`~redis.asyncio.BlockingConnectionPool`) of at most
``max_connections``: a call that finds none free waits up to ``pool_timeout`` seconds for one,
and every command is given ``command_timeout`` seconds; beyond either, and for any failure to
reach Redis, the call raises :class:`~interlink.cluster.ClusterError` (never redis-py's own
exceptions), and the caller falls back (routing stores the message offline). One connection
stays with the notice subscription, and two with the inboxes (:class:`_Link`): one carries
the sends, one the reads of this node's inbox.

*Sending.* :meth:`_Bus.send` calls made while a send is in flight, or in the same turn of the
event loop, go together: one script call per node (at most ``send_batch`` entries each), the
calls for every node written together, in one round trip (and, with ``appendfsync always``,
one fsync); each caller still returns only once its own entry is in the inbox. redis-py has no
automatic pipelining for asyncio, so this is the few lines that do it.

*The inbox connections.* A message that crosses nodes costs a send on one node and a read on
the other: at a paced rate, one round trip each. Through the client's command layer (its pool,
retries, script objects, response callbacks) a round trip cost about 75 us of CPU; on a
connection kept for it, through redis-py's connection API (commands packed and written
together, replies read in order), about 35 us. :class:`_Link` is that.

Redis must keep what it acknowledged for the inboxes to survive a Redis restart: run it with
``appendonly yes`` and ``appendfsync always`` (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from interlink.cluster.base import (
    ChangeCallback,
    ClusterError,
    InboxEntry,
    Located,
    NodeFencedError,
)
from interlink.cluster.cache import DirectoryCache
from interlink.tasks import cancel_and_wait

log = logging.getLogger("interlink.cluster")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_SEND = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  for i = 1, #ARGV do
    redis.call('XADD', KEYS[2], '*', 'p', ARGV[i])
  end
  return #ARGV
end
return false
"""
_RETIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('XLEN', KEYS[2]) > 0 then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3])
if redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('SREM', KEYS[5], ARGV[1])
end
return 1
"""
_UNBIND = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v and string.sub(v, 1, string.len(ARGV[2]) + 1) == ARGV[2] .. '\t' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('PUBLISH', KEYS[3], ARGV[3])
  return 1
end
return 0
"""
_TAKE_ALL = """
local now = tonumber(ARGV[1])
local state = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[2 * i])
  local period = tonumber(ARGV[2 * i + 1])
  local v = redis.call('HMGET', key, 't', 'u')
  local tokens = tonumber(v[1]) or count
  local updated = tonumber(v[2]) or now
  local per_second = count / period
  tokens = math.min(count, tokens + math.max(0, now - updated) * per_second)
  if now > updated then updated = now end
  if tokens < 1 then wait = math.max(wait, (1 - tokens) / per_second) end
  state[i] = {tokens, updated, period}
end
for i, key in ipairs(KEYS) do
  local tokens = state[i][1]
  if wait == 0 then tokens = tokens - 1 end
  local fmt = '%.17g'
  redis.call('HSET', key, 't', string.format(fmt, tokens), 'u', string.format(fmt, state[i][2]))
  redis.call('PEXPIRE', key, math.ceil(state[i][3] * 1000) + 1000)
end
return string.format('%.17g', wait)
"""
_LOCATE = """
local held = redis.call('HGETALL', KEYS[1])
local out = {}
local alive = {}
for i = 1, #held, 2 do
  local node = string.match(held[i + 1], '^([^\t]*)')
  if alive[node] == nil then
    alive[node] = redis.call('EXISTS', ARGV[1] .. node) == 1
  end
  if alive[node] then
    out[#out + 1] = held[i]
    out[#out + 1] = held[i + 1]
  end
end
return out
"""
_TAKE = """
local count = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(v[1]) or count
local updated = tonumber(v[2]) or now
local per_second = count / period
tokens = math.min(count, tokens + math.max(0, now - updated) * per_second)
if now > updated then updated = now end
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / per_second end
local fmt = '%.17g'
redis.call('HSET', KEYS[1], 't', string.format(fmt, tokens), 'u', string.format(fmt, updated))
redis.call('PEXPIRE', KEYS[1], math.ceil(period * 1000) + 1000)
return string.format('%.17g', wait)
"""


__all__ = ["ClusterError", "RedisCluster", "RedisLimits", "open_redis_cluster"]


@dataclass(frozen=True, slots=True)
class RedisLimits:
    """How much of Redis a node uses and how long it waits (``[cluster]`` settings)."""

    max_connections: int = 64  # the pool's size
    pool_timeout: float = 2.0  # seconds a call waits for a free connection
    command_timeout: float = 5.0  # seconds a command may take
    directory_cache_ttl: float = 30.0  # seconds a directory answer is kept at most; 0: none
    directory_cache_size: int = 100_000  # directory answers kept at most
    send_batch: int = 256  # inbox entries appended to one node in one script call at most


@contextlib.contextmanager
def _answering(what: str) -> Iterator[None]:
    """Redis's failures (unreachable, timed out, no free connection, an error reply) as
    :class:`ClusterError`."""
    try:
        yield
    except (RedisError, OSError, TimeoutError) as exc:
        raise ClusterError(f"Redis: {what} failed: {type(exc).__name__}: {exc}") from exc


class RedisCluster:
    """One node's view of a cluster on Redis."""

    shared = True

    def __init__(
        self,
        redis: Redis,
        node_id: str,
        *,
        prefix: str = "interlink:",
        node_ttl: float = 10.0,
        limits: RedisLimits = RedisLimits(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.node_id = node_id
        self.prefix = prefix
        self.node_ttl = node_ttl
        self.limits = limits
        self.clock = clock
        self.token = secrets.token_hex(16)
        # what went how (tests, metrics): sends, send_batches, failures, ...
        self.counters: Counter[str] = Counter()
        self.cache = DirectoryCache(
            ttl=limits.directory_cache_ttl, size=limits.directory_cache_size
        )
        self.directory = _Directory(self)
        self.bus = _Bus(self)
        self.buckets = _Buckets(self)
        self.invalidation = _Invalidation(self)
        self._scripts = {
            name: redis.register_script(src)
            for name, src in (
                ("renew", _RENEW),
                ("release", _RELEASE),
                ("send", _SEND),
                ("unbind", _UNBIND),
                ("retire", _RETIRE),
                ("take", _TAKE),
                ("locate", _LOCATE),
                ("take_all", _TAKE_ALL),
            )
        }
        self._leased = False

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run one of the scripts. Raises :class:`ClusterError`."""
        with _answering(name):
            return await self._scripts[name](keys=keys, args=args)

    async def retire(self, node: str) -> None:
        """Forget a dead ``node`` whose inbox is empty (a stream stays when its last entry is
        deleted, so emptiness is what counts: else a node that stopped after handling all its
        entries would be reaped at every lease renewal for ever): its inbox and reaper go,
        and, once it holds no sessions, its name leaves the set of nodes. All in one script,
        so nothing a restarted node was sent meanwhile is deleted."""
        node_keys = [self.key(k, node) for k in ("node", "inbox", "reap", "node-sess")]
        await self.script("retire", [*node_keys, self.key("nodes")], [node])

    async def scripts_on(
        self, link: _Link, name: str, calls: list[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        """Run the script ``name`` once per ``(keys, args)`` of ``calls``, all in one round trip
        on ``link``: the replies in order, an error reply as its :class:`ResponseError`. A
        Redis that lost its scripts (restarted) is given them, and the calls it refused made
        again (a refused call did nothing). Raises :class:`ClusterError`."""
        script = self._scripts[name]
        commands = [("EVALSHA", script.sha, len(keys), *keys, *args) for keys, args in calls]
        replies = await link.call(commands, name)
        lost = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if lost:
            again = await link.call(
                [("SCRIPT", "LOAD", script.script), *(commands[i] for i in lost)], name
            )
            for i, reply in zip(lost, again[1:], strict=True):
                replies[i] = reply
        return replies

    async def ping(self) -> None:
        """Raises :class:`ClusterError` if Redis does not answer."""
        with _answering("ping"):
            await self.redis.ping()

    def start(self) -> None:
        """Listen for notices (the directory cache is used only while they arrive)."""
        self.invalidation.start()

    async def close(self) -> None:
        await self.bus.settle(self.limits.command_timeout)
        with contextlib.suppress(ClusterError):
            await self.bus.flush_done()
        await self.invalidation.stop()
        await self.bus.close()
        with contextlib.suppress(Exception):
            if self._leased:
                await self.script("release", [self.key("node", self.node_id)], [self.token])
        await self.redis.aclose()


async def open_redis_cluster(
    url: str,
    node_id: str,
    *,
    prefix: str = "interlink:",
    node_ttl: float = 10.0,
    limits: RedisLimits = RedisLimits(),
) -> RedisCluster:
    """Connect to the Redis at ``url`` (``redis://host:port/db``) and take this node's lease.
    Raises :class:`ClusterError` if Redis cannot be reached."""
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=limits.max_connections,
        timeout=limits.pool_timeout,
        socket_connect_timeout=min(5.0, limits.command_timeout),
        socket_timeout=limits.command_timeout,
    )
    redis = Redis.from_pool(pool)
    cluster = RedisCluster(redis, node_id, prefix=prefix, node_ttl=node_ttl, limits=limits)
    try:
        await cluster.directory.heartbeat()
    except Exception as exc:
        await redis.aclose()
        raise ClusterError(f"cannot use Redis at {url}: {exc}") from exc
    cluster.start()
    return cluster


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode()


def _entries(rows: Any) -> list[InboxEntry]:
    """Stream rows ``[(id, {"p": payload}), ...]`` as entries."""
    return [InboxEntry(_text(i), _text(fields["p"])) for i, fields in rows]


def _read_entries(answer: Any) -> list[InboxEntry]:
    """XREAD's reply as the server sent it (no client callback): ``None``, or the streams with
    their rows ``[id, [field, value, ...]]``, as a map (RESP3) or pairs (RESP2)."""
    if not answer:
        return []
    streams = answer.values() if isinstance(answer, dict) else (rows for _, rows in answer)
    entries = []
    for rows in streams:
        for i, fields in rows:
            if not isinstance(fields, dict):
                fields = dict(zip(fields[::2], fields[1::2], strict=True))
            payload: Any = fields.get("p", fields.get(b"p", ""))  # none: logged as malformed
            entries.append(InboxEntry(_text(i), _text(payload)))
    return entries


class _Link:
    """One connection of the pool, kept for one kind of traffic and used by one task at a
    time, through redis-py's connection API: :meth:`call` writes its commands together and
    reads their replies in order. Taken from the pool at the first call; a failure (or a
    cancelled call) drops the connection, and the next call connects again."""

    def __init__(self, cluster: RedisCluster) -> None:
        self._c = cluster
        self._conn: Any = None

    async def call(self, commands: list[tuple[Any, ...]], what: str) -> list[Any]:
        """The replies to ``commands``, an error reply as its :class:`ResponseError`. Each
        read waits up to ``command_timeout`` (the pool's socket timeout). A read that fails
        makes that reply and the ones after it a :class:`ClusterError` (their outcome is
        unknown), while the replies read before it stand. Raises :class:`ClusterError` if
        nothing could be sent."""
        with _answering(what):
            if self._conn is None:
                pool: Any = self._c.redis.connection_pool
                self._conn = await pool.get_connection()
            conn = self._conn
            try:
                await conn.send_packed_command(conn.pack_commands(commands))
            except BaseException:
                await conn.disconnect(nowait=True)
                raise
        replies: list[Any] = []
        try:
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
        except (RedisError, OSError, TimeoutError) as exc:
            await conn.disconnect(nowait=True)
            unknown = ClusterError(f"Redis: {what} failed: {type(exc).__name__}: {exc}")
            replies += [unknown] * (len(commands) - len(replies))
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        return replies

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await self._c.redis.connection_pool.release(conn)


def _where(full: str, value: str) -> Located:
    node, available, priority = value.split("\t")
    return Located(full, node, available == "1", int(priority))


class _Directory:
    def __init__(self, cluster: RedisCluster) -> None:
        self._c = cluster

    async def heartbeat(self) -> None:
        c = self._c
        lease = c.key("node", c.node_id)
        ttl_ms = max(1, int(c.node_ttl * 1000))
        if not c._leased:
            # A new incarnation takes the id over (node ids are unique per process; one that
            # restarts after a crash is the only one using it).
            with _answering("lease"):
                await c.redis.set(lease, c.token, px=ttl_ms)
                await c.redis.sadd(c.key("nodes"), c.node_id)
            c._leased = True
            return
        if not await c.script("renew", [lease], [c.token, ttl_ms]):
            c._leased = False  # the next heartbeat takes a new lease: the node rejoins
            raise NodeFencedError(f"node {c.node_id}'s lease ran out")

    async def bind(self, full_jid: str, *, available: bool, priority: int) -> None:
        c = self._c
        bare = full_jid.split("/", 1)[0]
        value = f"{c.node_id}\t{int(available)}\t{priority}"
        with _answering("bind"):
            async with c.redis.pipeline(transaction=True) as pipe:
                pipe.hset(c.key("sess", bare), full_jid, value)
                pipe.sadd(c.key("node-sess", c.node_id), full_jid)
                pipe.publish(c.key("dir"), bare)
                await pipe.execute()
        c.cache.invalidate(bare)  # ours at once; the others' when the notice arrives

    async def unbind(self, full_jid: str) -> None:
        c = self._c
        bare = full_jid.split("/", 1)[0]
        await c.script(
            "unbind",
            [c.key("sess", bare), c.key("node-sess", c.node_id), c.key("dir")],
            [full_jid, c.node_id, bare],
        )
        c.cache.invalidate(bare)

    def peek(self, bare_jid: str) -> list[Located] | None:
        return self._c.cache.get(bare_jid, self._c.clock())

    async def locate(self, bare_jid: str, *, cached: bool = False) -> list[Located]:
        c = self._c
        if cached:
            kept = c.cache.get(bare_jid, c.clock())
            if kept is not None:
                return kept
        started = c.cache.start(bare_jid)
        located: list[Located] | None = None
        try:
            # one round trip: the sessions, filtered by their nodes' leases, in one script
            flat = await c.script("locate", [c.key("sess", bare_jid)], [c.key("node", "")])
            located = [_where(_text(flat[i]), _text(flat[i + 1])) for i in range(0, len(flat), 2)]
            return located
        finally:
            c.cache.fetched(bare_jid, started, located, c.clock())

    async def _nodes(self) -> tuple[set[str], set[str]]:
        c = self._c
        with _answering("nodes"):
            known = sorted(_text(n) for n in await c.redis.smembers(c.key("nodes")))
            if not known:
                return set(), set()
            leases = await c.redis.mget([c.key("node", n) for n in known])
        live = {n for n, lease in zip(known, leases, strict=True) if lease is not None}
        return live, set(known) - live

    async def live_nodes(self) -> set[str]:
        return (await self._nodes())[0]

    async def dead_nodes(self) -> set[str]:
        return (await self._nodes())[1]

    async def forget(self, node: str) -> int:
        c = self._c
        with _answering("forget"):
            if await c.redis.exists(c.key("node", node)):
                return 0  # alive (again)
            removed = 0
            for member in await c.redis.smembers(c.key("node-sess", node)):
                full = _text(member)
                bare = full.split("/", 1)[0]
                removed += int(
                    await c.script(
                        "unbind",
                        [c.key("sess", bare), c.key("node-sess", node), c.key("dir")],
                        [full, node, bare],
                    )
                )
                c.cache.invalidate(bare)
            await c.redis.delete(c.key("node-sess", node))
        await c.retire(node)
        return removed


_Sends = list[tuple[str, "asyncio.Future[bool]"]]  # payloads and their senders' outcomes


def _fail(batch: _Sends, error: ClusterError) -> None:
    for _, outcome in batch:
        if not outcome.done():
            outcome.set_exception(error)


class _Bus:
    def __init__(self, cluster: RedisCluster) -> None:
        self._c = cluster
        self._last = "0-0"
        self._handled: list[str] = []  # entries handled, to remove with the next read
        # the sends not yet appended, by node, and the one task appending them (in order)
        self._waiting: dict[str, _Sends] = {}
        self._task: asyncio.Task[None] | None = None
        self._sends = _Link(cluster)
        self._reads = _Link(cluster)

    async def send(self, node: str, payload: str) -> bool:
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[bool] = loop.create_future()
        self._waiting.setdefault(node, []).append((payload, outcome))
        if self._task is None:
            # starts at the loop's next turn: whatever else is sent meanwhile goes along
            self._task = loop.create_task(self._flush(), name="cluster-outbox")
        return await outcome

    async def _flush(self) -> None:
        """Append what waits, round trip after round trip: per node at most ``send_batch``
        entries in one script call, the calls for every node in one write; tell each sender
        its own outcome."""
        c = self._c
        limit = max(1, c.limits.send_batch)
        batches: list[tuple[str, _Sends]] = []
        try:
            while self._waiting:
                batches = self._take(limit)
                calls = [
                    ([c.key("node", node), c.key("inbox", node)], [p for p, _ in batch])
                    for node, batch in batches
                ]
                try:
                    replies = await c.scripts_on(self._sends, "send", calls)
                except ClusterError as exc:
                    replies = [exc] * len(batches)
                for (_, batch), reply in zip(batches, replies, strict=True):
                    self._settle(batch, reply)
                batches = []
        finally:
            self._task = None
            # cancelled (the node closes): whoever still waits hears it failed
            left = [batch for _, batch in batches] + list(self._waiting.values())
            self._waiting = {}
            gone = ClusterError("the cluster connection closed before the send")
            for batch in left:
                _fail(batch, gone)

    def _take(self, limit: int) -> list[tuple[str, _Sends]]:
        """Per node, the ``limit`` oldest sends waiting (taken out of the queue)."""
        batches = []
        for node, waiting in list(self._waiting.items()):
            batches.append((node, waiting[:limit]))
            del waiting[:limit]
            if not waiting:
                del self._waiting[node]
        return batches

    def _settle(self, batch: _Sends, reply: Any) -> None:
        """Tell the senders of ``batch`` the script's ``reply``: appended (true), the node not
        alive (false), or the failure."""
        c = self._c
        if isinstance(reply, Exception):
            c.counters["send_failures"] += len(batch)
            if not isinstance(reply, ClusterError):
                reply = ClusterError(f"Redis: send failed: {reply}")
            _fail(batch, reply)
            return
        c.counters["send_batches"] += 1
        c.counters["sends"] += len(batch)
        for _, outcome in batch:
            if not outcome.done():
                outcome.set_result(bool(reply))

    async def settle(self, within: float) -> None:
        """Wait (at most ``within`` seconds) for the sends in flight, then stop them."""
        task = self._task
        if task is not None:
            _, pending = await asyncio.wait([task], timeout=within)
            if pending:
                await cancel_and_wait(pending)

    async def close(self) -> None:
        """Give the inbox connections back (after :meth:`settle`)."""
        await self._sends.close()
        await self._reads.close()

    async def receive(self, wait: float, limit: int = 100) -> list[InboxEntry]:
        c = self._c
        inbox = c.key("inbox", c.node_id)
        # the server answers before the command's own timeout runs out
        block = max(1, int(min(wait, c.limits.command_timeout / 2) * 1000))
        commands: list[tuple[Any, ...]] = []
        if self._handled:
            # the entries handled since the last read leave in the same round trip
            commands.append(("XDEL", inbox, *self._handled))
        commands.append(("XREAD", "COUNT", limit, "BLOCK", block, "STREAMS", inbox, self._last))
        replies = await self._reads.call(commands, "inbox read")
        for reply in replies:
            if isinstance(reply, Exception):
                raise ClusterError(f"Redis: inbox read failed: {reply}")
        self._handled = []
        entries = _read_entries(replies[-1])
        if entries:
            self._last = entries[-1].id
        return entries

    async def done(self, ids: list[str]) -> None:
        """Remove handled entries: with the next :meth:`receive` (one round trip for both),
        or at :meth:`flush_done`. A node killed before leaves them to be reclaimed and
        delivered again, as one killed before calling this would."""
        self._handled += ids

    async def flush_done(self) -> None:
        """Remove the handled entries now (the node stops reading its inbox)."""
        if self._handled:
            with _answering("inbox delete"):
                await self._c.redis.xdel(self._c.key("inbox", self._c.node_id), *self._handled)
            self._handled = []

    async def reclaim(self, node: str, limit: int = 100) -> list[InboxEntry]:
        c = self._c
        with _answering("reclaim"):
            if await c.redis.exists(c.key("node", node)):
                return []
            reaper = c.key("reap", node)
            ours = await c.redis.set(reaper, c.node_id, nx=True, px=30_000)
            if not ours and await c.redis.get(reaper) != c.node_id:
                return []
            await c.redis.pexpire(reaper, 30_000)
            return _entries(await c.redis.xrange(c.key("inbox", node), count=limit))

    async def reclaimed(self, node: str, ids: list[str]) -> None:
        c = self._c
        inbox = c.key("inbox", node)
        if ids:
            with _answering("reclaimed"):
                await c.redis.xdel(inbox, *ids)
        await c.retire(node)


class _Buckets:
    def __init__(self, cluster: RedisCluster) -> None:
        self._c = cluster

    async def take(self, key: str, *, count: float, period: float, now: float) -> float:
        c = self._c
        wait = await c.script("take", [c.key("bucket", key)], [count, period, now])
        return float(wait)

    async def take_all(self, buckets: list[tuple[str, float, float]], now: float) -> float:
        if not buckets:
            return 0.0
        c = self._c
        args: list[float] = [now]
        for _, count, period in buckets:
            args += [count, period]
        keys = [c.key("bucket", key) for key, _, _ in buckets]
        return float(await c.script("take_all", keys, args))


class _Invalidation:
    """The node's one subscription: operator changes (``changes``, to the subscribers) and
    directory changes (``dir``, to the cache, which is used only while it is live)."""

    def __init__(self, cluster: RedisCluster) -> None:
        self._c = cluster
        self._callbacks: list[ChangeCallback] = []
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def publish(self, kind: str) -> None:
        with _answering("publish"):
            await self._c.redis.publish(self._c.key("changes"), kind)

    def subscribe(self, callback: ChangeCallback) -> None:
        self._callbacks.append(callback)
        self.start()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._listen(), name="cluster-notices"
            )

    async def subscribed(self) -> None:
        """Return once notices are being received (for tests and start-up)."""
        await self._subscribed.wait()

    async def _listen(self) -> None:
        c = self._c
        changes, directory = c.key("changes"), c.key("dir")
        while True:
            try:
                async with c.redis.pubsub() as pubsub:
                    await pubsub.subscribe(changes, directory)
                    while True:
                        # a bounded wait, whatever the redis-py version's idea of blocking
                        message = await pubsub.get_message(timeout=1.0)
                        if message is None:
                            continue
                        kind, channel = message.get("type"), _text(message.get("channel", ""))
                        data = message.get("data")
                        if kind == "subscribe" and channel == directory:
                            c.cache.live = True
                        elif kind == "subscribe" and channel == changes:
                            self._subscribed.set()
                        elif kind == "message" and channel == directory:
                            c.cache.invalidate(_text(data))
                        elif kind == "message" and channel == changes:
                            for callback in list(self._callbacks):
                                callback(_text(data))
            except asyncio.CancelledError:
                c.cache.live = False
                raise
            except Exception:
                c.cache.live = False  # notices may be lost until subscribed again
                self._subscribed.clear()
                log.warning("lost the Redis notice channel; resubscribing", exc_info=True)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
