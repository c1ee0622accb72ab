#!/usr/bin/env python3
"""End-to-end encryption benchmark of the client SDK (python-omemo as ``interlink.client`` uses it).

Everything runs in one process with no network. Each account is a python-omemo SessionManager
built by ``session_manager_class`` over an in-memory :class:`PepPort` (a dict of PEP items),
with its own ``SqliteOmemoStorage`` (WAL, ``synchronous=FULL``, one commit per write) in a
directory of its own. Messages are what ``InterlinkClient.send_text`` sends: an SCE envelope
(``sce.seal``) with a ~100-character body, a receipt request and a markable marker, encrypted
for OMEMO 2 (plus the legacy OMEMO body, as the client's default ``legacy=True`` asks), and
``serialize_message``. A receiver does what ``InterlinkClient._on_message`` does: the replay
check (``first_sight``), ``parse_message``, ``decrypt``, ``decide_trust`` and
``sce.open_envelope``. Stanza building and XML (de)serialization by slixmpp are not included.

It measures, for each storage variant (see ``--variants``):

``setup``     session set-up with a new contact: a fresh account logs in (keys generated and
              published), fetches the peer's device list and bundle and encrypts (X3DH), and the
              peer decrypts that key-exchange message; medians of ``--setup-n``.
``restart``   login on an existing storage (``SessionManager.create`` loads it) to the first
              message encrypted to a known contact; median of ``--restart-n``.
``sustained`` encrypt/s and decrypt/s: one-way streams (after the session is confirmed), a
              one-way stream from a new contact who has had no reply yet (every message still
              carries the key exchange), and alternating ping-pong (a DH ratchet step at every
              turn); each stream runs for ``--messages`` messages or ``--seconds`` seconds.
``replay``    the replay check (``first_sight``) against the number of digests it keeps.
``prekeys``   the cost of a key exchange against the number of stored one-time prekeys, end to
              end (through the backend's public ``generate_pre_keys``) and for x3dh's own
              lookup, with the number of public keys derived per operation.

Variants: ``disk`` (``--disk-dir``, default the temp dir) and ``tmpfs`` (``--tmpfs-dir``,
default /dev/shm) are the SDK's storage as shipped. The others are what-ifs, labelled so in the
output: ``disk-normal`` (``synchronous=NORMAL``: not durable), ``memory`` (the SDK's storage on
SQLite's ``:memory:``: what python-omemo and the SDK cost with nothing durable at all).

The process pins itself to one CPU (``--cpu``, default 0).
``--quick`` takes well under a minute, the default run a few minutes. ``--profile`` runs
cProfile over one-way streams instead and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import logging
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import oldmemo
import omemo
import omemo.storage
import twomemo
import twomemo.twomemo
import x3dh
import x3dh.pre_key_pair
import xeddsa
from omemo.types import DeviceInformation

import interlink
from interlink.client import sce
from interlink.client.durable import MAX_BATCH, CryptoGate
from interlink.client.omemo_session import (
    LEGACY,
    OMEMO2,
    REPLAY_WINDOW,
    Trust,
    decide_trust,
    parse_message,
    serialize_message,
    session_manager_class,
)
from interlink.client.omemo_session import precheck as sdk_precheck
from interlink.client.store import SqliteOmemoStorage

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOMAIN = "bench.local"
TEXT = (  # the message body: 100 characters
    "Hi! Are we still on for lunch tomorrow at noon? "
    "I booked the table by the river for the four of us."
)
RECEIPT_REQUEST = "{urn:xmpp:receipts}request"
MARKABLE = "{urn:xmpp:chat-markers:0}markable"
perf = time.perf_counter
ENCRYPT_STEPS = ("seal", "encrypt", "serialize", "commit (send)")


# -- the network: PEP and message delivery in a dict -------------------------------------------
class MemoryServer:
    """Every account's PEP items, and the encrypted elements python-omemo sent by itself."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str], Element] = {}
        self.newest: dict[tuple[str, str], str] = {}
        self.sent: list[tuple[str, str, Element]] = []  # (from, to, <encrypted/>)
        self.round_trips = 0  # PEP requests: each would be one request/response with a server


class MemoryPep:
    """The SDK's ``PepPort`` for one account, over a :class:`MemoryServer`."""

    def __init__(self, server: MemoryServer, owner: str) -> None:
        self._server = server
        self._owner = owner

    async def publish(self, node: str, item_id: str, payload: Element, *, max_items: str) -> None:
        self._server.round_trips += 1
        items = self._server.items
        if max_items == "1":
            for key in [k for k in items if k[0] == self._owner and k[1] == node]:
                del items[key]
        items[(self._owner, node, item_id)] = payload
        self._server.newest[(self._owner, node)] = item_id

    async def retract(self, node: str, item_id: str) -> None:
        self._server.round_trips += 1
        self._server.items.pop((self._owner, node, item_id), None)

    async def fetch(self, owner: str, node: str, item_id: str | None) -> Element | None:
        self._server.round_trips += 1
        if item_id is None:
            item_id = self._server.newest.get((owner, node))
            if item_id is None:
                return None
        return self._server.items.get((owner, node, item_id))

    async def send_encrypted(self, to: str, encrypted: Element) -> None:
        self._server.sent.append((self._owner, to, encrypted))


# -- storage: the SDK's, instrumented --------------------------------------------------------
class BenchStorage(SqliteOmemoStorage):
    """``SqliteOmemoStorage`` as shipped, counting its commits."""

    def __init__(self, conn: Any) -> None:
        super().__init__(conn)
        self.writes = 0  # commits that made something durable (one fsync each)

    def commit(self) -> None:
        self.writes += self.pending
        super().commit()

    async def set_synchronous(self, mode: str) -> None:
        self._conn.execute(f"PRAGMA synchronous={mode}")


@dataclass(frozen=True)
class Variant:
    name: str
    base: Path  # where the account databases go
    synchronous: str = "FULL"  # what SqliteOmemoStorage.open sets
    what_if: bool = False  # not what the SDK does
    in_memory: bool = False  # SQLite's :memory: database, kept open across "restarts"

    def describe(self) -> str:
        if self.in_memory:
            return "the SDK's storage on SQLite's `:memory:`: nothing durable, no fsync"
        return f"`{self.base}` ({fs_type(self.base)}), synchronous={self.synchronous}"


@dataclass
class Party:
    jid: str
    path: Path
    storage: BenchStorage
    manager: omemo.SessionManager
    backends: list[omemo.Backend]
    device_id: int
    gate: CryptoGate


async def _no_key_change(device: DeviceInformation) -> None:
    raise AssertionError(f"unexpected key change for {device.bare_jid}")


@dataclass
class Bench:
    """One storage variant: its directory, its PEP 'server', and the run's options."""

    variant: Variant
    legacy: bool
    workdir: Path
    server: MemoryServer = field(default_factory=MemoryServer)
    memory: dict[str, BenchStorage] = field(default_factory=dict)  # the in-memory variant's
    counter: int = 0
    max_batch: int = MAX_BATCH  # the client's commit_batch

    def new_jid(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}@{DOMAIN}"

    async def login(self, jid: str) -> tuple[Party, dict[str, float]]:
        """What ``InterlinkClient.connect`` does after authentication. A new ``jid`` is a first
        run (keys generated and published); a known one loads its storage."""
        path = self.workdir / f"{jid}.sqlite3"
        t0 = perf()
        storage: BenchStorage
        if self.variant.in_memory:
            if jid not in self.memory:
                self.memory[jid] = await BenchStorage.open(":memory:")
            storage = self.memory[jid]
        else:
            storage = await BenchStorage.open(path)
            if self.variant.synchronous != "FULL":
                await storage.set_synchronous(self.variant.synchronous)
        t1 = perf()
        backends: list[omemo.Backend] = [twomemo.Twomemo(storage)]
        if self.legacy:
            backends.append(oldmemo.Oldmemo(storage))
        cls = session_manager_class(
            MemoryPep(self.server, jid),
            storage=storage,
            manual_trust=False,
            speedups=True,  # the SDK's opt-in speed-ups, as measured
            on_key_change=_no_key_change,
            before_sending=storage.commit,
        )
        gate = CryptoGate(storage, max_batch=self.max_batch)
        manager = await cls.create(backends, storage, jid, None, Trust.UNDECIDED.value)
        t2 = perf()
        this, _ = await manager.get_own_device_information()
        await manager.refresh_device_lists(jid)
        gate.commit_now()
        t3 = perf()
        party = Party(jid, path, storage, manager, backends, this.device_id, gate)
        return party, {"open": t1 - t0, "create": t2 - t1, "own_devices": t3 - t2, "total": t3 - t0}

    async def logout(self, party: Party) -> None:
        await party.manager.shutdown()
        if not self.variant.in_memory:  # a :memory: database would be gone
            await party.storage.close()

    # -- the client's send and receive paths ---------------------------------------------------
    async def send_text(
        self, sender: Party, peer: str, text: str, steps: Counter[str] | None = None
    ) -> Element:
        """``InterlinkClient.send_text`` up to the stanza: seal, encrypt, serialize, and wait
        for the commit that releases the stanza (shared with other sends in flight)."""
        t0 = perf()
        body = Element(sce.BODY)
        body.text = text
        content = [body, Element(RECEIPT_REQUEST), Element(MARKABLE)]
        envelope = sce.seal(content, sender=sender.jid, recipient=peer, now=time.time())
        plaintext = {OMEMO2: envelope}
        order = [OMEMO2]
        if self.legacy:
            plaintext[LEGACY] = text.encode()
            order.append(LEGACY)
        t1 = perf()
        async with sender.gate.operation():
            messages, errors = await sender.manager.encrypt(frozenset([peer]), plaintext, order)
        t2 = perf()
        if errors:
            raise RuntimeError(f"encryption errors: {errors}")
        elements = [serialize_message(m) for m in messages]
        t3 = perf()
        await sender.gate.durable()  # the client sends the stanza here
        t4 = perf()
        if steps is not None:
            steps["seal"] += t1 - t0
            steps["encrypt"] += t2 - t1
            steps["serialize"] += t3 - t2
            steps["commit (send)"] += t4 - t3
        element = next(e for e in elements if e.tag == f"{{{OMEMO2}}}encrypted")
        return element

    async def receive(
        self,
        receiver: Party,
        sender: str,
        element: Element,
        steps: Counter[str] | None = None,
        *,
        wait: bool = True,
    ) -> str | None:
        """``InterlinkClient._on_message`` for an OMEMO 2 message, up to the text, handed to the
        app after its commit. ``wait=False``: as the client's receive worker going through a
        backlog, which goes on to the next message while the event waits for the commit."""
        t0 = perf()
        async with receiver.gate.operation():
            problem = await precheck(receiver, element, sender)
            if problem is not None:
                raise RuntimeError(problem)
            t1 = perf()
            message = await parse_message(element, sender, receiver.jid, receiver.manager)
            t2 = perf()
            plaintext, device, _ = await receiver.manager.decrypt(message)
            t3 = perf()
            if plaintext is None:
                return None
            await decide_trust(
                receiver.manager,
                device,
                storage=receiver.storage,
                manual_trust=False,
                on_key_change=_no_key_change,
            )
        t4 = perf()
        envelope = sce.open_envelope(
            plaintext, sender=sender, recipients={receiver.jid}, now=time.time()
        )
        t5 = perf()
        handed = receiver.gate.after(lambda: None)  # the client's event for the app
        if wait:
            await handed
        t6 = perf()
        if steps is not None:
            steps["replay check"] += t1 - t0
            steps["parse"] += t2 - t1
            steps["decrypt"] += t3 - t2
            steps["trust"] += t4 - t3
            steps["open envelope"] += t5 - t4
            steps["commit (event)"] += t6 - t5
        return envelope.body


async def precheck(receiver: Party, element: Element, sender: str) -> str | None:
    """What ``InterlinkClient`` does before decrypting (the SDK's own function)."""
    return await sdk_precheck(
        element,
        sender,
        own_bare=receiver.jid,
        device_id=receiver.device_id,
        storage=receiver.storage,
    )


# -- measurements ------------------------------------------------------------------------------
def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


async def measure_setup(bench: Bench, n: int) -> dict[str, Any]:
    """n fresh accounts each start a conversation with one existing account."""
    bob, _ = await bench.login(bench.new_jid("bob"))
    fresh: list[float] = []
    first_encrypt: list[float] = []
    first_decrypt: list[float] = []
    first_reply: list[float] = []
    writes_enc: list[int] = []
    writes_dec: list[int] = []
    trips: dict[str, list[int]] = {"login": [], "encrypt": [], "decrypt": []}
    server = bench.server
    for _ in range(n):
        r0 = server.round_trips
        alice, times = await bench.login(bench.new_jid("alice"))
        trips["login"].append(server.round_trips - r0)
        fresh.append(times["total"])
        w0, r0 = alice.storage.writes, server.round_trips
        t0 = perf()
        await alice.manager.refresh_device_lists(bob.jid)  # InterlinkClient._refresh
        element = await bench.send_text(alice, bob.jid, TEXT)
        t1 = perf()
        writes_enc.append(alice.storage.writes - w0)
        trips["encrypt"].append(server.round_trips - r0)
        w0, r0 = bob.storage.writes, server.round_trips
        body = await bench.receive(bob, alice.jid, element)
        t2 = perf()
        writes_dec.append(bob.storage.writes - w0)
        trips["decrypt"].append(server.round_trips - r0)
        assert body == TEXT
        reply = await bench.send_text(bob, alice.jid, TEXT)
        assert await bench.receive(alice, bob.jid, reply) == TEXT
        t3 = perf()
        first_encrypt.append(t1 - t0)
        first_decrypt.append(t2 - t1)
        first_reply.append(t3 - t2)
        await bench.logout(alice)
    await bench.logout(bob)
    return {
        "n": n,
        "fresh_login_ms": median_ms(fresh),
        "first_encrypt_ms": median_ms(first_encrypt),
        "first_decrypt_ms": median_ms(first_decrypt),
        "first_reply_round_trip_ms": median_ms(first_reply),
        "fresh_login_to_first_message_ms": median_ms(
            [a + b for a, b in zip(fresh, first_encrypt, strict=True)]
        ),
        "first_encrypt_writes": statistics.median(writes_enc),
        "first_decrypt_writes": statistics.median(writes_dec),
        "round_trips": {k: statistics.median(v) for k, v in trips.items()},
        "fresh_login_ms_range": [min(fresh) * 1000, max(fresh) * 1000],
        "first_decrypt_ms_range": [min(first_decrypt) * 1000, max(first_decrypt) * 1000],
    }


async def measure_restart(bench: Bench, n: int) -> dict[str, Any]:
    """Log in again on an existing storage and send the first message to a known contact."""
    alice, _ = await bench.login(bench.new_jid("alice"))
    bob, _ = await bench.login(bench.new_jid("bob"))
    await alice.manager.refresh_device_lists(bob.jid)
    assert await bench.receive(bob, alice.jid, await bench.send_text(alice, bob.jid, TEXT)) == TEXT
    assert await bench.receive(alice, bob.jid, await bench.send_text(bob, alice.jid, TEXT)) == TEXT
    await bench.logout(alice)
    login: list[float] = []
    first: list[float] = []
    trips: list[int] = []
    for _ in range(n):
        r0 = bench.server.round_trips
        t0 = perf()
        alice, _ = await bench.login(alice.jid)
        t1 = perf()
        await alice.manager.refresh_device_lists(bob.jid)  # the first send after connect does
        element = await bench.send_text(alice, bob.jid, TEXT)
        t2 = perf()
        trips.append(bench.server.round_trips - r0)
        login.append(t1 - t0)
        first.append(t2 - t1)
        assert await bench.receive(bob, alice.jid, element) == TEXT
        await bench.logout(alice)
    await bench.logout(bob)
    return {
        "n": n,
        "login_ms": median_ms(login),
        "first_encrypt_ms": median_ms(first),
        "login_to_first_message_ms": median_ms([a + b for a, b in zip(login, first, strict=True)]),
        "round_trips": statistics.median(trips),
    }


@dataclass
class Stream:
    """Counters of one sustained stream."""

    name: str
    enc_n: int = 0
    dec_n: int = 0
    enc_s: float = 0.0
    dec_s: float = 0.0
    enc_cpu: float = 0.0
    dec_cpu: float = 0.0
    enc_writes: int = 0
    dec_writes: int = 0
    steps: Counter[str] = field(default_factory=Counter)

    def row(self) -> dict[str, Any]:
        def rate(n: int, s: float) -> float | None:
            return n / s if n and s else None

        return {
            "stream": self.name,
            "encrypted": self.enc_n,
            "decrypted": self.dec_n,
            "encrypt_per_s": rate(self.enc_n, self.enc_s),
            "decrypt_per_s": rate(self.dec_n, self.dec_s),
            "encrypt_cpu_pct": 100 * self.enc_cpu / self.enc_s if self.enc_s else None,
            "decrypt_cpu_pct": 100 * self.dec_cpu / self.dec_s if self.dec_s else None,
            "writes_per_encrypt": self.enc_writes / self.enc_n if self.enc_n else None,
            "writes_per_decrypt": self.dec_writes / self.dec_n if self.dec_n else None,
            "steps_us": {
                k: 1e6 * v / (self.enc_n if k in ENCRYPT_STEPS else self.dec_n)
                for k, v in self.steps.items()
            },
        }


class Timer:
    """Wall and process CPU time (all threads) of a block, added to a stream."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        w, c = perf(), time.process_time()
        try:
            yield
        finally:
            self.wall += perf() - w
            self.cpu += time.process_time() - c


async def new_pair(bench: Bench, *, confirm: bool = True) -> tuple[Party, Party]:
    alice, _ = await bench.login(bench.new_jid("alice"))
    bob, _ = await bench.login(bench.new_jid("bob"))
    await alice.manager.refresh_device_lists(bob.jid)
    assert await bench.receive(bob, alice.jid, await bench.send_text(alice, bob.jid, TEXT)) == TEXT
    if confirm:  # a reply confirms alice's session: her messages stop carrying the key exchange
        for _ in range(2):
            element = await bench.send_text(bob, alice.jid, TEXT)
            assert await bench.receive(alice, bob.jid, element) == TEXT
            element = await bench.send_text(alice, bob.jid, TEXT)
            assert await bench.receive(bob, alice.jid, element) == TEXT
    return alice, bob


async def one_way(
    bench: Bench,
    name: str,
    max_messages: int,
    max_seconds: float,
    *,
    confirm: bool,
    window: int = 1,
) -> Stream:
    """alice encrypts a stream to bob, ``window`` sends in flight at a time (1: each send waits
    for its own commit before the next starts); then bob goes through them as a backlog, as
    the client's receive worker does with the messages stored while it was offline."""
    alice, bob = await new_pair(bench, confirm=confirm)
    stream = Stream(name)
    elements: list[Element] = []
    timer = Timer()
    w0 = alice.storage.writes
    start = perf()
    while len(elements) < max_messages and perf() - start < max_seconds:
        n = min(window, max_messages - len(elements))
        with timer():
            if n == 1:
                elements.append(await bench.send_text(alice, bob.jid, TEXT, stream.steps))
            else:
                sends = (bench.send_text(alice, bob.jid, TEXT, stream.steps) for _ in range(n))
                elements.extend(await asyncio.gather(*sends))
    stream.enc_n, stream.enc_s, stream.enc_cpu = len(elements), timer.wall, timer.cpu
    stream.enc_writes = alice.storage.writes - w0
    timer = Timer()
    w0 = bob.storage.writes
    start = perf()
    for element in elements:
        if perf() - start >= max_seconds:
            break
        with timer():
            body = await bench.receive(bob, alice.jid, element, stream.steps, wait=False)
        assert body == TEXT
        stream.dec_n += 1
    with timer():
        await bob.gate.durable()  # the last events of the backlog reach the app
    stream.dec_s, stream.dec_cpu = timer.wall, timer.cpu
    stream.dec_writes = bob.storage.writes - w0
    await bench.logout(alice)
    await bench.logout(bob)
    return stream


async def ping_pong(bench: Bench, max_messages: int, max_seconds: float) -> Stream:
    """alice and bob take turns: each message follows one in the other direction, so every
    encryption starts a new sending chain (a DH ratchet step) and every decryption too."""
    alice, bob = await new_pair(bench)
    stream = Stream("ping-pong (a DH ratchet step per message)")
    enc, dec = Timer(), Timer()
    writes0 = alice.storage.writes + bob.storage.writes
    enc_writes = 0
    start = perf()
    sender, receiver = alice, bob
    while stream.enc_n < max_messages and perf() - start < max_seconds:
        w = sender.storage.writes
        with enc():
            element = await bench.send_text(sender, receiver.jid, TEXT, stream.steps)
        enc_writes += sender.storage.writes - w
        with dec():
            body = await bench.receive(receiver, sender.jid, element, stream.steps)
        assert body == TEXT
        stream.enc_n += 1
        stream.dec_n += 1
        sender, receiver = receiver, sender
    total_writes = alice.storage.writes + bob.storage.writes - writes0
    stream.enc_s, stream.enc_cpu, stream.dec_s, stream.dec_cpu = (
        enc.wall,
        enc.cpu,
        dec.wall,
        dec.cpu,
    )
    stream.enc_writes = enc_writes
    stream.dec_writes = total_writes - enc_writes
    await bench.logout(alice)
    await bench.logout(bob)
    return stream


# -- prekeys -------------------------------------------------------------------------------------
class PubCounter:
    """Counts ``xeddsa.priv_to_curve25519_pub`` calls (one X25519 base-point multiplication each,
    which is what ``x3dh.PreKeyPair.pub`` costs every time it is read)."""

    def __init__(self) -> None:
        self.calls = 0
        self._orig: Callable[[bytes], bytes] | None = None

    def __enter__(self) -> PubCounter:
        orig = xeddsa.priv_to_curve25519_pub
        self._orig = orig

        def counting(priv: bytes) -> bytes:
            self.calls += 1
            return orig(priv)

        xeddsa.priv_to_curve25519_pub = counting
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._orig is not None
        xeddsa.priv_to_curve25519_pub = self._orig


async def measure_prekeys_e2e(
    bench: Bench, counts: list[int], samples: int, *, memoized: bool
) -> list[dict[str, Any]]:
    """For each count: bob holds that many one-time prekeys (OMEMO 2 backend); fresh contacts
    start sessions with him. Times bob's decryption of the key-exchange message and of a second
    message sent before he replied (the session is not confirmed, so it still carries the key
    exchange and python-omemo runs the prekey hiding again)."""
    rows = []
    for count in counts:
        bob, _ = await bench.login(bench.new_jid("bob"))
        backend = bob.backends[0]
        assert backend.namespace == OMEMO2
        t0 = perf()
        if count > 100:
            await backend.generate_pre_keys(count - 100)
            await bob.manager._upload_bundle(await backend.get_bundle(bob.jid, bob.device_id))
        fill_s = perf() - t0
        kex: list[float] = []
        follow: list[float] = []
        active: list[float] = []
        pubs_kex: list[int] = []
        pubs_follow: list[int] = []
        kex_writes: list[int] = []
        for _ in range(samples):
            alice, _ = await bench.login(bench.new_jid("alice"))
            t0 = perf()
            await alice.manager.refresh_device_lists(bob.jid)
            first = await bench.send_text(alice, bob.jid, TEXT)
            second = await bench.send_text(alice, bob.jid, TEXT)
            active.append((perf() - t0) / 2)
            w0 = bob.storage.writes
            with PubCounter() as pubs:
                t0 = perf()
                assert await bench.receive(bob, alice.jid, first) == TEXT
                t1 = perf()
            kex.append(t1 - t0)
            pubs_kex.append(pubs.calls)
            kex_writes.append(bob.storage.writes - w0)
            with PubCounter() as pubs:
                t0 = perf()
                assert await bench.receive(bob, alice.jid, second) == TEXT
                follow.append(perf() - t0)
            pubs_follow.append(pubs.calls)
            await bench.logout(alice)
        stored = await backend.get_num_visible_pre_keys()
        await bench.logout(bob)
        rows.append(
            {
                "prekeys": count,
                "memoized_pub": memoized,
                "samples": samples,
                "fill_s": fill_s,
                "visible_after": stored,
                "kex_decrypt_ms": median_ms(kex),
                "kex_pub_derivations": statistics.median(pubs_kex),
                "kex_writes": statistics.median(kex_writes),
                "unconfirmed_decrypt_ms": median_ms(follow),
                "unconfirmed_pub_derivations": statistics.median(pubs_follow),
                "sender_encrypt_ms": median_ms(active),
            }
        )
    return rows


async def measure_prekeys_x3dh(counts: list[int], lookups: int) -> list[dict[str, Any]]:
    """x3dh alone: the OMEMO 2 X3DH state (``twomemo.twomemo.StateImpl``) with N prekeys."""
    state_cls = twomemo.twomemo.StateImpl
    fmt, hash_fn, info = x3dh.IdentityKeyFormat.ED_25519, x3dh.HashFunction.SHA_256, state_cls.INFO
    peer = state_cls.create(fmt, hash_fn, info)
    rows = []
    for count in counts:
        state = state_cls.create(fmt, hash_fn, info)
        state.generate_pre_keys(count)
        t0 = perf()
        bundle = state.bundle
        bundle_s = perf() - t0
        n_lookups = max(3, min(lookups, 20000 // count))
        headers = []
        for _ in range(n_lookups):
            _, _, header = await peer.get_shared_secret_active(bundle)
            headers.append(header)
        with PubCounter() as pubs:
            t0 = perf()
            for header in headers:
                await state.get_shared_secret_passive(header)
            passive_s = (perf() - t0) / n_lookups
        serialized = state.json
        t0 = perf()
        state_cls.from_json(serialized, fmt, hash_fn, info)
        from_json_s = perf() - t0
        t0 = perf()
        state.hide_pre_key(b"\0" * 32)  # a miss: every stored key's public key is derived
        hide_s = perf() - t0
        rows.append(
            {
                "prekeys": count,
                "bundle_ms": bundle_s * 1000,
                "passive_ms": passive_s * 1000,
                "passive_pub_derivations": pubs.calls / n_lookups,
                "hide_or_delete_ms": hide_s * 1000,
                "from_json_ms": from_json_s * 1000,
                "state_json_kib": len(json.dumps(serialized)) / 1024,
            }
        )
    return rows


async def measure_replay(variant: Variant, sizes: list[int], calls: int) -> list[dict[str, Any]]:
    """``SqliteOmemoStorage.first_sight`` (the replay check on every received message) against
    the number of digests it remembers (90 days' worth of received messages)."""
    rows = []
    with workdir(variant.base) as wd:
        for indexed in (True,):  # the index on seen_at is shipped
            storage = await BenchStorage.open(wd / "replay.sqlite3")
            conn = storage._conn
            now = time.time()
            have = 0
            for size in sizes:
                if size > have:
                    # first_sight leaves its writes in the open transaction for the SDK's gate
                    # to commit (store.py); commit them as the gate would before seeding more.
                    storage.commit()
                    conn.execute("BEGIN")
                    conn.executemany(
                        "INSERT INTO seen_keys (digest, seen_at) VALUES (?, ?)",
                        ((os.urandom(32), now - 86400) for _ in range(size - have)),
                    )
                    conn.execute("COMMIT")
                    have = size
                for _ in range(20):  # warm-up, untimed
                    await storage.first_sight(os.urandom(32), time.time(), REPLAY_WINDOW)
                t0 = perf()
                for _ in range(calls):
                    assert await storage.first_sight(os.urandom(32), time.time(), REPLAY_WINDOW)
                have += calls + 20
                rows.append({"stored": size, "indexed": indexed, "us": (perf() - t0) / calls * 1e6})
            storage.commit()
            await storage.close()
    return rows


def calibrate() -> float:
    """Milliseconds for a fixed pure-Python loop: this VM's speed drifts, so compare runs with
    similar figures only."""
    t0 = perf()
    x = 0
    for i in range(1_000_000):
        x += i * i
    return (perf() - t0) * 1000


def time_pub_derivation(n: int = 2000) -> float:
    priv = os.urandom(32)
    t0 = perf()
    for _ in range(n):
        xeddsa.priv_to_curve25519_pub(priv)
    return (perf() - t0) / n * 1e6


# -- environment -------------------------------------------------------------------------------
def fs_type(path: Path) -> str:
    path = path.resolve()
    best, kind = "", "?"
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        mount, fstype = parts[1], parts[2]
        inside = str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def environment(cpu: int | None) -> dict[str, Any]:
    versions = {}
    for dist in ("omemo", "twomemo", "oldmemo", "x3dh", "doubleratchet", "xeddsa"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[dist] = metadata.version(dist)
    import sqlite3

    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "versions": versions,
        "pinned_cpu": cpu,
        "interlink_src": str(Path(interlink.__file__).parent),
        "commit": git_commit(),
        "argv": sys.argv,
    }


# -- output ------------------------------------------------------------------------------------
def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(results: dict[str, Any]) -> str:
    out: list[str] = []
    env = results["environment"]
    out.append(
        f"{env['date_utc']} UTC, {env['cpu']}, nproc {env['nproc']}, Python {env['python']}, "
        f"SQLite {env['sqlite']}, pinned to CPU {env['pinned_cpu']}, commit {env['commit']}, "
        f"interlink from {env['interlink_src']}"
    )
    out.append("libraries: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    out.append(f"legacy OMEMO backend loaded: {results['legacy']}")
    opts = results["options"]
    out.append(f"commit batch {opts['commit_batch']}, windowed stream {opts['window']} in flight")
    variants = results["variants"]
    out.append("\nvariants:")
    for name, v in variants.items():
        out.append(
            f"- {name}: {v['describe']}"
            + (" (what-if)" if v["what_if"] else "")
            + f"; calibration {v['calibration_ms']:.0f} ms"
        )

    out.append("\n## Sustained (one CPU)\n")
    rows = []
    for name, v in variants.items():
        for s in v.get("sustained", []):
            rows.append(
                [
                    name,
                    s["stream"],
                    s["encrypted"],
                    s["encrypt_per_s"],
                    s["decrypted"],
                    s["decrypt_per_s"],
                    s["encrypt_cpu_pct"],
                    s["decrypt_cpu_pct"],
                    fmt(s["writes_per_encrypt"], 3),
                    fmt(s["writes_per_decrypt"], 3),
                ]
            )
    out.append(
        table(
            [
                "variant",
                "stream",
                "encrypted",
                "encrypt/s",
                "decrypted",
                "decrypt/s",
                "CPU % enc",
                "CPU % dec",
                "commits/enc",
                "commits/dec",
            ],
            rows,
        )
    )
    out.append("\nPer-message time by step (µs):\n")
    step_names = [
        "seal",
        "encrypt",
        "serialize",
        "replay check",
        "parse",
        "decrypt",
        "trust",
        "open envelope",
    ]
    rows = []
    for name, v in variants.items():
        for s in v.get("sustained", []):
            rows.append([name, s["stream"], *(s["steps_us"].get(k) for k in step_names)])
    out.append(table(["variant", "stream", *step_names], rows))

    out.append("\n## Session set-up, login, restart (medians, ms)\n")
    rows = []
    for name, v in variants.items():
        su, rs = v.get("setup"), v.get("restart")
        if not su or not rs:
            continue
        rows.append(
            [
                name,
                su["n"],
                su["fresh_login_ms"],
                su["first_encrypt_ms"],
                su["fresh_login_to_first_message_ms"],
                su["first_decrypt_ms"],
                su["first_reply_round_trip_ms"],
                rs["n"],
                rs["login_ms"],
                rs["first_encrypt_ms"],
                rs["login_to_first_message_ms"],
            ]
        )
    out.append(
        table(
            [
                "variant",
                "n",
                "fresh login",
                "first encrypt to new contact",
                "fresh login → first message",
                "first decrypt (key exchange)",
                "first reply round trip",
                "n",
                "restart login",
                "first encrypt after restart",
                "restart → first message",
            ],
            rows,
        )
    )
    for name, v in variants.items():
        su = v.get("setup")
        if su:
            out.append(
                f"- {name}: PEP requests (server round trips in real life): fresh login "
                f"{fmt(su['round_trips']['login'])}, first encrypt to a new contact "
                f"{fmt(su['round_trips']['encrypt'])}, its decryption "
                f"{fmt(su['round_trips']['decrypt'])}, restart to first message "
                f"{fmt(v['restart']['round_trips'])}; "
                f"commits for the first encrypt {fmt(su['first_encrypt_writes'])}, "
                f"for the key-exchange decrypt {fmt(su['first_decrypt_writes'])}; fresh login "
                f"range {fmt(su['fresh_login_ms_range'][0])}–{fmt(su['fresh_login_ms_range'][1])}"
                f" ms, key-exchange decrypt range {fmt(su['first_decrypt_ms_range'][0])}–"
                f"{fmt(su['first_decrypt_ms_range'][1])} ms"
            )

    rp = results.get("replay")
    if rp:
        out.append(f"\n## Replay check: `first_sight` per received message ({rp['variant']})\n")
        by_size: dict[int, dict[bool, float]] = {}
        for r in rp["rows"]:
            by_size.setdefault(r["stored"], {})[r["indexed"]] = r["us"]
        out.append(
            table(
                ["digests stored", "µs per check"],
                [[k, v.get(True)] for k, v in by_size.items()],
            )
        )

    pk = results.get("prekeys")
    if pk:
        out.append(
            f"\n## Prekeys ({pk['variant']})\n\n"
            f"One `xeddsa.priv_to_curve25519_pub` (what reading `PreKeyPair.pub` costs): "
            f"{pk['pub_us']:.1f} µs\n"
        )
        rows = [
            [
                r["prekeys"],
                "memoized (shipped)" if r["memoized_pub"] else "not memoized",
                r["samples"],
                r["kex_decrypt_ms"],
                r["kex_pub_derivations"],
                r["kex_writes"],
                r["unconfirmed_decrypt_ms"],
                r["unconfirmed_pub_derivations"],
                r["sender_encrypt_ms"],
                r["visible_after"],
            ]
            for r in pk["e2e"]
        ]
        out.append(
            table(
                [
                    "stored prekeys",
                    "PreKeyPair.pub",
                    "n",
                    "key-exchange decrypt ms",
                    "pub derivations",
                    "commits",
                    "unconfirmed follow-up decrypt ms",
                    "pub derivations",
                    "sender's first encrypt ms",
                    "visible after",
                ],
                rows,
            )
        )
        out.append("\nx3dh alone (`twomemo.twomemo.StateImpl`):\n")
        rows = [
            [
                r["prekeys"],
                r["bundle_ms"],
                r["passive_ms"],
                r["passive_pub_derivations"],
                r["hide_or_delete_ms"],
                r["from_json_ms"],
                r["state_json_kib"],
            ]
            for r in pk["x3dh"]
        ]
        out.append(
            table(
                [
                    "prekeys",
                    "bundle ms",
                    "get_shared_secret_passive ms",
                    "pub derivations",
                    "hide/delete ms",
                    "from_json ms",
                    "state JSON KiB",
                ],
                rows,
            )
        )
    return "\n".join(out)


# -- driver ------------------------------------------------------------------------------------
def make_variants(names: list[str], disk: Path, tmpfs: Path) -> list[Variant]:
    known = {
        "disk": Variant("disk", disk),
        "tmpfs": Variant("tmpfs", tmpfs),
        "disk-normal": Variant("disk-normal", disk, synchronous="NORMAL", what_if=True),
        "memory": Variant("memory", tmpfs, what_if=True, in_memory=True),
    }
    unknown = set(names) - set(known)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {sorted(known)}")
    return [known[n] for n in names]


@contextlib.contextmanager
def workdir(base: Path) -> Iterator[Path]:
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="interlink-crypto-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def run_variant(variant: Variant, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {
        "describe": variant.describe(),
        "what_if": variant.what_if,
        "calibration_ms": calibrate(),
    }
    with workdir(variant.base) as wd:
        bench = Bench(variant, legacy=not args.no_legacy, workdir=wd, max_batch=args.commit_batch)
        if "setup" in args.parts:
            log(f"{variant.name}: set-up ×{args.setup_n}")
            result["setup"] = await measure_setup(bench, args.setup_n)
            log(f"{variant.name}: restart ×{args.restart_n}")
            result["restart"] = await measure_restart(bench, args.restart_n)
        if "sustained" in args.parts:
            streams = []
            log(f"{variant.name}: one-way")
            streams.append(
                await one_way(
                    bench,
                    "one-way (confirmed session), one send at a time",
                    args.messages,
                    args.seconds,
                    confirm=True,
                )
            )
            if args.window > 1:
                log(f"{variant.name}: one-way, {args.window} sends in flight")
                streams.append(
                    await one_way(
                        bench,
                        f"one-way (confirmed session), {args.window} sends in flight",
                        args.messages,
                        args.seconds,
                        confirm=True,
                        window=args.window,
                    )
                )
            log(f"{variant.name}: one-way, unconfirmed")
            streams.append(
                await one_way(
                    bench,
                    "one-way from a new contact (unconfirmed)",
                    args.messages,
                    args.seconds,
                    confirm=False,
                )
            )
            log(f"{variant.name}: ping-pong")
            streams.append(await ping_pong(bench, args.messages, args.seconds))
            result["sustained"] = [s.row() for s in streams]
    return result


async def run_prekeys(variant: Variant, args: argparse.Namespace) -> dict[str, Any]:
    with workdir(variant.base) as wd:
        bench = Bench(variant, legacy=not args.no_legacy, workdir=wd, max_batch=args.commit_batch)
        log(f"prekeys: end to end {args.prekey_counts} ×{args.prekey_samples}")
        # PreKeyPair.pub is memoized as shipped (interlink.client.prekey_memo)
        e2e = await measure_prekeys_e2e(
            bench, args.prekey_counts, args.prekey_samples, memoized=True
        )
    log("prekeys: x3dh alone")
    return {
        "variant": f"{variant.name}: {variant.describe()}",
        "pub_us": time_pub_derivation(),
        "e2e": e2e,
        "x3dh": await measure_prekeys_x3dh(args.prekey_counts, args.x3dh_lookups),
    }


async def run_profile(variant: Variant, args: argparse.Namespace) -> str:
    """cProfile over one-way streams (confirmed session): encryption and decryption separately.
    SQLite runs on the profiled thread: its commits show as ``execute``."""
    out = []
    with workdir(variant.base) as wd:
        bench = Bench(variant, legacy=not args.no_legacy, workdir=wd, max_batch=args.commit_batch)
        alice, bob = await new_pair(bench)
        n = args.messages
        elements: list[Element] = []
        profiler = cProfile.Profile()
        t0 = perf()
        profiler.enable()
        for _ in range(n):
            elements.append(await bench.send_text(alice, bob.jid, TEXT))
        profiler.disable()
        enc_s = perf() - t0
        out.append(profile_text(profiler, f"{variant.name} encrypt ×{n}: {n / enc_s:,.0f}/s"))
        profiler = cProfile.Profile()
        t0 = perf()
        profiler.enable()
        for element in elements:  # a backlog, as in the one-way streams
            await bench.receive(bob, alice.jid, element, wait=False)
        await bob.gate.durable()
        profiler.disable()
        dec_s = perf() - t0
        out.append(profile_text(profiler, f"{variant.name} decrypt ×{n}: {n / dec_s:,.0f}/s"))
        await bench.logout(alice)
        await bench.logout(bob)
    return "\n\n".join(out)


def profile_text(profiler: cProfile.Profile, title: str) -> str:
    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    return f"=== {title} (profiled)\n{buf.getvalue()}"


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small counts: well under a minute")
    p.add_argument(
        "--variants",
        default=None,
        help="comma-separated: disk, tmpfs, disk-normal, memory "
        "(default: disk,tmpfs,memory; --quick: disk,tmpfs)",
    )
    p.add_argument(
        "--parts",
        default="setup,sustained,replay,prekeys",
        help="comma-separated: setup (with restart), sustained, replay, prekeys; replay and "
        "prekeys use the first variant",
    )
    p.add_argument("--disk-dir", type=Path, default=Path(tempfile.gettempdir()))
    p.add_argument("--tmpfs-dir", type=Path, default=Path("/dev/shm"))
    p.add_argument("--messages", type=int, default=None, help="per stream (default 5000)")
    p.add_argument("--seconds", type=float, default=None, help="per stream (default 10)")
    p.add_argument("--setup-n", type=int, default=None, help="new contacts (default 10)")
    p.add_argument("--restart-n", type=int, default=None, help="restarts (default 5)")
    p.add_argument("--prekey-counts", default=None, help="stored prekeys (default 100,1000,10000)")
    p.add_argument("--prekey-samples", type=int, default=None, help="per count (default 5)")
    p.add_argument("--x3dh-lookups", type=int, default=None, help="per count (default 20)")
    p.add_argument("--replay-sizes", default=None, help="stored digests (default 0,10000,100000)")
    p.add_argument("--no-legacy", action="store_true", help="load only the OMEMO 2 backend")
    p.add_argument(
        "--window", type=int, default=32, help="sends in flight in the windowed stream (default 32)"
    )
    p.add_argument(
        "--commit-batch",
        type=int,
        default=MAX_BATCH,
        help=f"operations sharing a commit at most, as the client's commit_batch ({MAX_BATCH})",
    )
    p.add_argument("--cpu", type=int, default=0, help="the CPU to pin to (default 0)")
    p.add_argument("--no-pin", action="store_true")
    p.add_argument(
        "--profile", action="store_true", help="cProfile one-way streams of each variant instead"
    )
    p.add_argument("--save", action="store_true", help="write bench/results/crypto.{json,md}")
    args = p.parse_args(argv)
    q = args.quick
    default_variants = "disk,tmpfs" if q else "disk,tmpfs,memory"
    args.variants = args.variants or default_variants
    args.variants = [v for v in args.variants.split(",") if v]
    args.parts = {v for v in args.parts.split(",") if v}
    args.messages = args.messages or (500 if q else 5000)
    args.seconds = args.seconds or (2.0 if q else 10.0)
    args.setup_n = args.setup_n or (3 if q else 10)
    args.restart_n = args.restart_n or (3 if q else 5)
    counts = args.prekey_counts or ("100,1000" if q else "100,1000,10000")
    args.prekey_counts = [int(c) for c in counts.split(",")]
    args.prekey_samples = args.prekey_samples or (2 if q else 5)
    sizes = args.replay_sizes or ("0,10000" if q else "0,10000,100000")
    args.replay_sizes = [int(c) for c in sizes.split(",")]
    args.x3dh_lookups = args.x3dh_lookups or (5 if q else 20)
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    variants = make_variants(args.variants, args.disk_dir, args.tmpfs_dir)
    cpu = None if args.no_pin else args.cpu
    results: dict[str, Any] = {
        "environment": environment(cpu),
        "legacy": not args.no_legacy,
        "options": {
            k: (sorted(v) if isinstance(v, set) else v)
            for k, v in vars(args).items()
            if not isinstance(v, Path)
        },
        "variants": {},
    }
    if args.profile:
        texts = [await run_profile(variant, args) for variant in variants]
        print("\n\n".join(texts))
        if args.save:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / "crypto-profile.txt").write_text("\n\n".join(texts))
        return results
    for variant in variants:
        results["variants"][variant.name] = await run_variant(variant, args)
    if "replay" in args.parts:
        log(f"replay check: {args.replay_sizes} stored digests")
        results["replay"] = {
            "variant": f"{variants[0].name}: {variants[0].describe()}",
            "rows": await measure_replay(variants[0], args.replay_sizes, 200),
        }
    if "prekeys" in args.parts:
        results["prekeys"] = await run_prekeys(variants[0], args)
    return results


def main() -> None:
    args = parse_args()
    if not args.no_pin:
        os.sched_setaffinity(0, {args.cpu})
    logging.basicConfig(level=logging.ERROR)  # python-omemo warns about routine things
    started = perf()
    results = asyncio.run(main_async(args))
    if args.profile:
        return
    text = report(results)
    print(text)
    print(f"\n(took {perf() - started:.0f} s)")
    if args.save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "crypto.json").write_text(json.dumps(results, indent=2, default=str))
        (RESULTS / "crypto.md").write_text(text + "\n")
        print(f"saved to {RESULTS}/crypto.{{json,md}}")


if __name__ == "__main__":
    main()
