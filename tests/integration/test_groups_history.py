"""Room history over loopback TLS with stock slixmpp plugins (xep_0045 for the room, xep_0313
and xep_0059 for its archive): members chat, a member fetches the room's history page by page
from the room's address, with the stanza-ids the room stamped on what it broadcast; a
non-member is refused; a message the room refused is not in the history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from tests.integration.groupkit import configured_room, muc_client
from tests.integration.kit import DOMAIN, TIMEOUT, Xmpp, running_hub

ROOM = JID(f"team@groups.{DOMAIN}")
SENT = 7


def member(jid: str, certs: Any) -> Xmpp:
    client = muc_client(jid, certs)
    for plugin in ("xep_0059", "xep_0313", "xep_0359"):
        client.client.register_plugin(plugin)
    return client


async def test_members_fetch_the_rooms_history_page_by_page(tmp_path: Path) -> None:
    accounts = ("alice", "bob", "carol", "dave")
    async with running_hub(tmp_path, accounts=accounts) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice, bob, carol, dave = (member(f"{a}@{DOMAIN}/{a[0]}", certs) for a in accounts)
        for c in (alice, bob, carol, dave):
            await c.login(port)
        try:
            a_muc = await configured_room(alice, ROOM, "alice")
            for who in ("bob", "carol"):
                await a_muc.set_affiliation(ROOM, "member", jid=JID(f"{who}@{DOMAIN}"))
            own, *_ = await bob.client.plugin["xep_0045"].join_muc_wait(
                ROOM, "bob", timeout=TIMEOUT
            )
            assert 170 in {int(s) for s in own["muc"]["status_codes"]}  # the room is archived
            await carol.client.plugin["xep_0045"].join_muc_wait(ROOM, "carol", timeout=TIMEOUT)
            info = await bob.client.plugin["xep_0030"].get_info(jid=ROOM, timeout=TIMEOUT)
            assert "urn:xmpp:mam:2" in info["disco_info"]["features"]

            live_ids = []
            for i in range(SENT):
                sender = bob if i % 2 else carol
                sender.client.send_message(mto=ROOM, mbody=f"m{i}", mtype="groupchat")
                seen = await alice.next_message_of("groupchat", f"m{i}")
                assert seen["stanza_id"]["by"] == ROOM
                live_ids.append(str(seen["stanza_id"]["id"]))

            # a non-occupant's message is refused, and not archived
            dave.client.send_message(mto=ROOM, mbody="let me in", mtype="groupchat")
            bounced = await dave.next_message()
            assert bounced["error"]["condition"] == "not-acceptable"

            mam: Any = bob.client.plugin["xep_0313"]
            results = []
            async for result in mam.iterate(jid=ROOM, rsm={"max": 3}):
                results.append(result)
            bodies = [str(r["mam_result"]["forwarded"]["stanza"]["body"]) for r in results]
            assert bodies == [f"m{i}" for i in range(SENT)]
            assert [str(r["mam_result"]["id"]) for r in results] == live_ids
            assert server.storage is not None  # the refused message is not there either
            assert await server.storage.room_archive.count(str(ROOM)) == SENT
            first = results[0]["mam_result"]["forwarded"]["stanza"]
            assert str(first["from"]) == f"{ROOM}/carol"
            assert first["type"] == "groupchat"
            # the newest page first, as clients load history backwards
            newest = [
                str(m["mam_result"]["forwarded"]["stanza"]["body"])
                async for m in mam.iterate(jid=ROOM, reverse=True, rsm={"max": 3}, total=3)
            ]
            assert newest == ["m6", "m5", "m4"]

            # a non-member is refused
            other: Any = dave.client.plugin["xep_0313"]
            with pytest.raises(IqError) as refused:
                await other.retrieve(jid=ROOM, timeout=int(TIMEOUT))
            assert refused.value.iq["error"]["condition"] == "forbidden"
            # and so is a member once removed
            await a_muc.set_affiliation(ROOM, "none", jid=JID(f"carol@{DOMAIN}"))
            with pytest.raises(IqError) as removed:
                await carol.client.plugin["xep_0313"].retrieve(jid=ROOM, timeout=int(TIMEOUT))
            assert removed.value.iq["error"]["condition"] == "forbidden"
        finally:
            for c in (alice, bob, carol, dave):
                await c.close()
