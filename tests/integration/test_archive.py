"""XEP-0313 archives over loopback with slixmpp's own xep_0313/xep_0059 plugins: paging across
10,000 archived messages both ways, real routing archiving both sides with the stanza-ids the
recipient saw, a second device fetching history, and a stanza the consent rules refused never
archived."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import slixmpp

from interlink.app import HubServer
from interlink.storage.archive import ArchiveEntry, ArchiveFilter
from tests.integration.kit import DOMAIN, TIMEOUT, Certs, Xmpp, running_hub
from tests.integration.test_consent import ALICE, world

BOB = f"bob@{DOMAIN}"
MANY = 10_000


def archiving(jid: str, certs: Certs) -> Xmpp:
    client = Xmpp(jid, "pw", certs)
    for plugin in ("xep_0059", "xep_0313", "xep_0359"):
        client.client.register_plugin(plugin)
    return client


async def history(
    client: Xmpp, *, reverse: bool = False, total: int | None = None, page: int = 250
) -> list[Any]:
    mam: Any = client.client.plugin["xep_0313"]
    out = []
    async for message in mam.iterate(rsm={"max": page}, reverse=reverse, total=total):
        out.append(message)
    return out


def archive_id(result: Any) -> str:
    return str(result["mam_result"]["id"])


def body(result: Any) -> str:
    return str(result["mam_result"]["forwarded"]["stanza"]["body"])


async def seed(server: HubServer, owner: str, n: int) -> list[str]:
    """``n`` messages in ``owner``'s archive, straight through the repository (for speed)."""
    assert server.storage is not None
    ids = [f"seed-{i:05d}" for i in range(n)]
    for first in range(0, n, 500):
        entries = [
            ArchiveEntry(
                owner,
                ids[i],
                BOB,
                "desk",
                1_800_000_000.0 + i,
                f'<message xmlns="jabber:client" from="{BOB}/desk" to="{owner}" type="chat">'
                f"<body>n{i}</body></message>",
            )
            for i in range(first, min(n, first + 500))
        ]
        await server.storage.archive.append(entries, 1_000_000)
    return ids


async def test_queries_page_correctly_across_ten_thousand_messages(tmp_path: Path) -> None:
    async with running_hub(tmp_path, archive={"max_messages_per_account": 20_000}) as (
        server,
        certs,
    ):
        ids = await seed(server, f"alice@{DOMAIN}", MANY)
        alice = archiving(f"alice@{DOMAIN}/laptop", certs)
        await alice.login(server.ports["c2s-starttls"])
        try:
            forward = await asyncio.wait_for(history(alice), 120)
            assert [archive_id(m) for m in forward] == ids
            assert body(forward[0]) == "n0"
            assert body(forward[-1]) == f"n{MANY - 1}"
            # Backwards from the end, page by page, to the very start. slixmpp's reverse
            # iteration asks for the last page with an empty <before/>, then stops: it takes
            # first-index + items == count as the end whichever way it pages. So it gives the
            # last page, and the pages before it are asked for one by one.
            last_page = await history(alice, reverse=True)
            assert [archive_id(m) for m in last_page] == list(reversed(ids[-250:]))
            mam: Any = alice.client.plugin["xep_0313"]
            backward = ids[-250:]
            before = ids[-250]
            pages = 1
            while True:
                answer = await mam.retrieve(rsm={"max": 250, "before": before}, timeout=TIMEOUT)
                pages += 1
                backward = [archive_id(m) for m in answer["mam"]["results"]] + backward
                fin = answer["mam_fin"]
                assert fin["rsm"]["first_index"] == str(MANY - 250 * pages)
                if fin["complete"]:
                    break
                before = fin["rsm"]["first"]
            assert backward == ids
            assert pages == MANY // 250
            # one page: the count of the whole set, and the first item's index
            answer = await mam.retrieve(rsm={"max": 100, "after": ids[4_999]}, timeout=TIMEOUT)
            fin = answer["mam_fin"]
            assert fin["rsm"]["count"] == str(MANY)
            assert fin["rsm"]["first_index"] == "5000"
            assert (fin["rsm"]["first"], fin["rsm"]["last"]) == (ids[5_000], ids[5_099])
            assert not fin["complete"]
            assert [archive_id(m) for m in answer["mam"]["results"]] == ids[5_000:5_100]
            last = await mam.retrieve(rsm={"max": 100, "after": ids[-101]}, timeout=TIMEOUT)
            assert last["mam_fin"]["complete"]
            assert len(last["mam"]["results"]) == 100
        finally:
            await alice.close()


async def test_routing_archives_both_sides_and_another_device_fetches_history(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        alice = archiving(f"alice@{DOMAIN}/phone", certs)
        bob = archiving(f"{BOB}/desk", certs)
        await alice.login(server.ports["c2s-starttls"])
        await bob.login(server.ports["c2s-starttls"])
        seen_ids = []
        try:
            for i in range(30):
                alice.send_chat(BOB, f"m{i}")
            for i in range(30):
                got = await bob.next_message()
                assert got["body"] == f"m{i}"
                sid = got.xml.find("{urn:xmpp:sid:0}stanza-id")
                assert sid is not None
                assert sid.get("by") == BOB
                seen_ids.append(sid.get("id"))
            bob.send_chat(f"alice@{DOMAIN}", "reply")
            assert (await alice.next_message())["body"] == "reply"
            await alice.ping_server()
            await bob.ping_server()
        finally:
            await alice.close()
        # bob's new device reads his history, with the ids his desk saw
        tablet = archiving(f"{BOB}/tablet", certs)
        await tablet.login(server.ports["c2s-starttls"])
        try:
            got = await history(tablet, page=7)
            assert [body(m) for m in got] == [f"m{i}" for i in range(30)] + ["reply"]
            assert [archive_id(m) for m in got][:30] == seen_ids
            mine = await history(tablet, page=50)
            assert len(mine) == 31
        finally:
            await tablet.close()
            await bob.close()
        laptop = archiving(f"alice@{DOMAIN}/laptop", certs)
        await laptop.login(server.ports["c2s-starttls"])
        try:
            mam: Any = laptop.client.plugin["xep_0313"]
            with_bob = await mam.retrieve(
                with_jid=slixmpp.JID(BOB), rsm={"max": 100}, timeout=TIMEOUT
            )
            assert [body(m) for m in with_bob["mam"]["results"]] == [f"m{i}" for i in range(30)] + [
                "reply"
            ]
            assert with_bob["mam_fin"]["complete"]
        finally:
            await laptop.close()


async def test_a_stanza_the_consent_rules_refused_is_not_archived(tmp_path: Path) -> None:
    async with world(tmp_path, opted_in=False) as w:
        w.tp.send_plain(ALICE, "refused")
        refused = await w.tp.next_error()
        assert refused.condition == "service-unavailable"
        await w.alice.client.set_interop_settings(enabled=True)
        w.tp.send_plain(ALICE, "let through")
        assert (await w.alice.next_plain())["body"] == "let through"
        laptop = archiving(f"{ALICE}/laptop", w.certs)
        await laptop.login(w.port)
        try:
            got = await history(laptop)
            assert [body(m) for m in got] == ["let through"]
        finally:
            await laptop.close()
        storage = w.server.storage
        assert storage is not None
        third_party = await storage.archive.page(
            w.tp.jid, ArchiveFilter(), after=None, before=None, limit=10
        )
        assert third_party is not None
        assert third_party.messages == []


async def test_the_running_hub_prunes_past_retention(tmp_path: Path) -> None:
    async with running_hub(tmp_path, archive={"retention": 60.0, "prune_interval": 0.1}) as (
        server,
        _certs,
    ):
        storage = server.storage
        assert storage is not None
        owner = f"alice@{DOMAIN}"
        now = time.time()
        await storage.archive.append(
            [
                ArchiveEntry(owner, "old", BOB, "", now - 120, "<message/>"),
                ArchiveEntry(owner, "new", BOB, "", now, "<message/>"),
            ],
            100,
        )
        for _ in range(100):
            if await storage.archive.count(owner) == 1:
                break
            await asyncio.sleep(0.05)
        left = await storage.archive.page(owner, ArchiveFilter(), after=None, before=None, limit=5)
        assert left is not None
        assert [m.id for m in left.messages] == ["new"]
