"""Federated users in the hub's rooms, with a stock Prosody 0.12 (issue 18 item 2, issue 15): a
slixmpp user on Prosody (``carol@chat.example``) is made a member of a hub room by a gatekeeper
user and enters it over s2s, beside a plug-and-play third party; messages go every way, the
member list shows the third parties' markers, and no byte Prosody received shows a phone
number; an invitation from the Prosody user to a gatekeeper user who has not opted in is
refused exactly like one to an account that does not exist; and when the provider is
suspended, its user leaves the room for everyone else. End to end: slixmpp-omemo on Prosody
and an SDK gatekeeper user exchange OMEMO-encrypted group messages in a hub room. And a user of
a stock ejabberd 23.01 enters and chats the same way."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
import slixmpp
from slixmpp import JID

from interlink.client.events import GroupMessage
from interlink.storage.providers import ProviderStatus
from interlink.xmpp.ext import interop
from interlink.xmpp.sasl import derive_credentials
from tests.integration.federationkit import (
    DOMAIN,
    EJABBERD_SERVER,
    GROUPS,
    PEER,
    PHONE,
    PROSODY_SERVER,
    PROVIDER,
    World,
    enlist,
    gatekeeper,
    interop_iq,
    open_form,
    open_nodes,
    world,
)
from tests.integration.groupkit import (
    configured_room,
    muc_client,
    next_presence_from,
    stock_third_party,
)
from tests.integration.kit import TIMEOUT, Xmpp, next_of, sdk_client
from tests.integration.omemokit import (
    announce_legacy_only,
    decrypted_bodies,
    peer_omemo,
    send_encrypted,
)

needs_prosody = pytest.mark.skipif(
    PROSODY_SERVER.missing is not None, reason=PROSODY_SERVER.missing or ""
)
needs_ejabberd = pytest.mark.skipif(
    EJABBERD_SERVER.missing is not None, reason=EJABBERD_SERVER.missing or ""
)

TOKEN = "operator-token-for-tests-0123456789"
ROOM = JID(f"team@{GROUPS}")
SHY = "4915187654321"  # a gatekeeper user who has not opted in
CAROL = f"carol@{PEER}"
MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
OMEMO2 = "urn:xmpp:omemo:2"
DEVICES = f"{OMEMO2}:devices"


def room_alias(w: World, local: str) -> str:
    assert w.hub.hub is not None
    return f"{w.hub.hub.federation.aliases.room_alias(local, ROOM.user, DOMAIN)}@{DOMAIN}"


def provider_alias(w: World, local: str) -> str:
    assert w.hub.hub is not None
    return f"{w.hub.hub.federation.aliases.alias(local, PROVIDER, DOMAIN)}@{DOMAIN}"


async def conference_invitation(raw: list[bytes]) -> Any:
    """The first message with a direct invitation among what a client read (once what it
    read so far parses: a stanza may arrive in pieces)."""
    while True:
        text = b"<s xmlns='jabber:client'>" + b"".join(raw) + b"</s>"
        with contextlib.suppress(slixmpp.ET.ParseError):
            for stanza in slixmpp.ET.fromstring(text).iter("{jabber:client}message"):
                if stanza.find("{jabber:x:conference}x") is not None:
                    return stanza
        await asyncio.sleep(0.05)


async def member_list(client: Xmpp, affiliation: str) -> dict[str, Any]:
    """The room's list of ``affiliation`` as the raw items (jid -> element): slixmpp's plugin
    gives JIDs only, and the marker rides inside each item."""
    iq = client.client.make_iq_get(ito=ROOM)
    iq.append(
        slixmpp.ET.fromstring(
            f"<query xmlns='{MUC_ADMIN}'><item affiliation='{affiliation}'/></query>"
        )
    )
    result = await iq.send(timeout=TIMEOUT)  # type: ignore[no-untyped-call]
    return {item.get("jid"): item for item in result.xml.iter(f"{{{MUC_ADMIN}}}item")}


async def plug_and_play(w: World, tmp_path: Path) -> Xmpp:
    """A plug-and-play third party (``examplechat``), enlisted, on the hub's c2s port."""
    base = f"https://127.0.0.1:{w.hub.ports['http']}"
    client = await stock_third_party(base, w.certs.hub, tmp_path / "tp", TOKEN, domain=DOMAIN)
    await client.login(w.hub.ports["c2s-starttls"])
    return client


@needs_prosody
async def test_a_prosody_user_chats_in_a_hub_room_with_gatekeeper_and_plug_and_play_members(
    tmp_path: Path,
) -> None:
    async with world(tmp_path, PROSODY_SERVER, admin={"token": TOKEN}) as w:
        assert w.hub.storage is not None
        await w.hub.storage.accounts.create(f"{SHY}@{DOMAIN}", derive_credentials("pw", 4096), 0.0)
        await enlist(w.hub, CAROL)
        home = muc_client(f"{PHONE}@{DOMAIN}/phone", w.certs.hub)
        home.client.register_plugin("xep_0004")
        home.client.register_plugin("xep_0060")
        await home.login(w.hub.ports["c2s-starttls"])
        await interop_iq(home, f"<settings xmlns='{interop.NS}' enabled='true'/>")
        tp = await plug_and_play(w, tmp_path)
        await w.peer.register("carol", PEER, "pw")
        carol = muc_client(f"{CAROL}/laptop", w.certs.hub)
        carol.client.register_plugin("xep_0060")
        await carol.login(w.peer.c2s_port)
        clients = (home, tp, carol)
        try:
            h_muc = await configured_room(home, ROOM, "home")
            tp_jid = tp.client.boundjid.bare
            for jid, affiliation in ((CAROL, "admin"), (tp_jid, "member")):
                await h_muc.set_affiliation(ROOM, affiliation, jid=JID(jid), timeout=TIMEOUT)
            # carol enters over s2s (Prosody opens its stream to the group service's domain)
            c_muc: Any = carol.client.plugin["xep_0045"]
            await c_muc.join_muc_wait(ROOM, "carol", timeout=TIMEOUT)
            t_muc: Any = tp.client.plugin["xep_0045"]
            await t_muc.join_muc_wait(ROOM, "tp", timeout=TIMEOUT)
            await next_presence_from(carol, f"{ROOM}/tp")
            home_shown = room_alias(w, PHONE)
            assert JID(c_muc.get_jid_property(ROOM, "home", "jid")).bare == home_shown
            # messages every way
            for sender, text in (
                (carol, "from prosody"),
                (home, "from the gatekeeper"),
                (tp, "from tp"),
            ):
                sender.client.send_message(mto=ROOM, mbody=text, mtype="groupchat")
                for reader in clients:
                    got = await reader.next_message_of("groupchat", text)
                    if sender is carol and reader is not carol:
                        assert str(got["from"]) == f"{ROOM}/carol"
                        mark = got.xml.find(interop.MARKER)
                        if reader is home:
                            assert mark is not None
                            assert mark.get("provider") == PROVIDER
            # the member list: the third parties marked, the gatekeeper user by alias
            seen_by_carol = await member_list(carol, "member")
            assert set(seen_by_carol) == {str(tp_jid)}
            assert seen_by_carol[str(tp_jid)].find(interop.MARKER) is not None
            admins = await member_list(home, "admin")
            assert set(admins) == {CAROL}
            assert admins[CAROL].find(interop.MARKER).get("provider") == PROVIDER
            assert set(await member_list(carol, "owner")) == {home_shown}
            # carol fetches the gatekeeper member's OMEMO device list at its per-room alias,
            # through Prosody and s2s
            pubsub: Any = home.client.plugin["xep_0060"]
            await pubsub.publish(
                home.client.boundjid.bare,
                DEVICES,
                id="current",
                payload=slixmpp.ET.fromstring(
                    f"<devices xmlns='{OMEMO2}'><device id='77'/></devices>"
                ),
                options=open_form(home),
                timeout=TIMEOUT,
            )
            c_pubsub: Any = carol.client.plugin["xep_0060"]
            got = await c_pubsub.get_items(JID(home_shown), DEVICES, max_items=1, timeout=TIMEOUT)
            assert got["from"] == JID(home_shown)
            assert [d.get("id") for d in got["pubsub"]["items"]["item"]["payload"]] == ["77"]
            # a direct invitation (XEP-0249) to the gatekeeper user is an ordinary message
            # from a third party: marked (not a request: the gatekeeper user added carol to the
            # room, which opened the conversation). slixmpp's MUC plugin keeps it from the
            # "message" event, so the test reads what home's client received.
            raw = home.record_received()
            direct = carol.client.make_message(mto=JID(provider_alias(w, PHONE)))
            direct.append(slixmpp.ET.fromstring(f"<x xmlns='jabber:x:conference' jid='{ROOM}'/>"))
            direct.send()
            request = await asyncio.wait_for(conference_invitation(raw), TIMEOUT)
            assert request.get("from") == f"{CAROL}/laptop"
            mark = request.find(interop.MARKER)
            assert mark is not None
            assert mark.get("provider") == PROVIDER
            # carol invites a gatekeeper user who has not opted in (by the alias she would know
            # from a chat), then an account that does not exist: the same refusal
            c_muc.invite(ROOM, JID(provider_alias(w, SHY)))
            shy = await carol.next_message_of("error")
            c_muc.invite(ROOM, JID(f"nobody@{DOMAIN}"))
            nobody = await carol.next_message_of("error")
            assert shy["error"]["condition"] == nobody["error"]["condition"]
            assert shy["error"]["condition"] == "service-unavailable"
            assert (shy["error"]["text"], str(shy["from"])) == (
                nobody["error"]["text"],
                str(nobody["from"]),
            )
            # what Prosody received: the room's traffic from the group service's domain, and
            # not one phone number
            captured = b"".join(w.wire)
            assert b"from the gatekeeper" in captured
            assert home_shown.encode() in captured
            assert PHONE.encode() not in captured
            assert SHY.encode() not in captured
            # suspended: carol leaves the room for everyone else
            assert w.hub.registry is not None
            await w.hub.registry.set_status(PROVIDER, ProviderStatus.SUSPENDED, "test")
            gone = await next_presence_from(home, f"{ROOM}/carol", "unavailable")
            assert gone["type"] == "unavailable"
            await next_presence_from(tp, f"{ROOM}/carol", "unavailable")
        finally:
            for client in clients:
                await client.close()


@needs_prosody
async def test_an_sdk_member_and_a_slixmpp_omemo_member_on_prosody_talk_encrypted_in_a_room(
    tmp_path: Path,
) -> None:
    """OMEMO in a hub room across federation: slixmpp-omemo (legacy OMEMO) on Prosody is a
    member of an SDK gatekeeper user's room; the SDK fetches its keys over s2s PEP and
    encrypts for it, and it fetches hers at her per-room alias over s2s and reads what she
    sends the room, then writes back encrypted; the hub relays ciphertext only."""
    async with world(tmp_path, PROSODY_SERVER) as w:
        opt_in = await gatekeeper(w)  # her settings: third parties allowed
        await w.peer.register("alice", PEER, "pw")
        peer = muc_client(f"alice@{PEER}/slixmpp-omemo", w.certs.hub)
        peer.client.register_plugin("xep_0004")
        omemo_plugin = peer_omemo(peer)
        read = decrypted_bodies(peer, omemo_plugin, "groupchat_message")
        sdk = sdk_client(
            tmp_path, f"{PHONE}@{DOMAIN}/sdk", w.hub.ports["c2s-starttls"], w.certs.hub, "sdk"
        )
        try:
            await peer.login(w.peer.c2s_port)
            manager = await omemo_plugin.get_session_manager()  # its keys on Prosody
            this_device, *_ = await manager.get_own_device_information()
            await enlist(w.hub, f"alice@{PEER}", this_device.identity_key)  # its identity enlisted
            own = JID(f"alice@{PEER}")
            await announce_legacy_only(peer, omemo_plugin, own)
            await open_nodes(peer, own)
            await sdk.connect()
            await sdk.create_group(str(ROOM), "gk", name="Across")
            await sdk.add_group_member(str(ROOM), str(own))
            muc: Any = peer.client.plugin["xep_0045"]
            await muc.join_muc_wait(ROOM, "alice", timeout=TIMEOUT)
            routed: list[str] = []
            w.s2s.taps.append(lambda _link, data: routed.append(data.decode(errors="replace")))
            await sdk.send_group_text(str(ROOM), "sealed for a federated member")
            assert await asyncio.wait_for(read.get(), 30) == "sealed for a federated member"
            assert not any("sealed for a federated member" in x for x in routed)  # ciphertext
            # and back: slixmpp-omemo encrypts for the room's members (her alias)
            await send_encrypted(
                peer,
                omemo_plugin,
                str(ROOM),
                "from Prosody, encrypted",
                mtype="groupchat",
                recipient=room_alias(w, PHONE),
            )
            event = await next_of(sdk, GroupMessage, 30)
            assert (event.text, event.sender, event.room) == (
                "from Prosody, encrypted",
                str(own),
                str(ROOM),
            )
            assert PHONE.encode() not in b"".join(w.wire)
        finally:
            await sdk.close()
            await peer.close()
            await opt_in.close()


@needs_ejabberd
async def test_an_ejabberd_user_chats_in_a_hub_room(tmp_path: Path) -> None:
    """The same with a stock ejabberd 23.01: its user enters a gatekeeper user's room over
    s2s, messages go both ways, and ejabberd receives no phone number."""
    async with world(tmp_path, EJABBERD_SERVER) as w:
        user = f"dave@{PEER}"
        await enlist(w.hub, user)
        home = muc_client(f"{PHONE}@{DOMAIN}/phone", w.certs.hub)
        await home.login(w.hub.ports["c2s-starttls"])
        await interop_iq(home, f"<settings xmlns='{interop.NS}' enabled='true'/>")
        await w.peer.register("dave", PEER, "pw")
        dave = muc_client(f"{user}/laptop", w.certs.hub)
        await dave.login(w.peer.c2s_port)
        try:
            h_muc = await configured_room(home, ROOM, "home")
            await h_muc.set_affiliation(ROOM, "member", jid=JID(user), timeout=TIMEOUT)
            d_muc: Any = dave.client.plugin["xep_0045"]
            await d_muc.join_muc_wait(ROOM, "dave", timeout=TIMEOUT)
            dave.client.send_message(mto=ROOM, mbody="from ejabberd", mtype="groupchat")
            got = await home.next_message_of("groupchat", "from ejabberd")
            assert got.xml.find(interop.MARKER) is not None
            home.client.send_message(mto=ROOM, mbody="to ejabberd", mtype="groupchat")
            await dave.next_message_of("groupchat", "to ejabberd")
            captured = b"".join(w.wire)
            assert b"to ejabberd" in captured
            assert PHONE.encode() not in captured
        finally:
            await dave.close()
            await home.close()
