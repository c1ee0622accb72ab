"""A stock slixmpp client (its xep_0045 plugin) against the group service over loopback TLS:
it creates and configures a room, adds a member, that member enters, reads the member list and
chats; where the rules refuse, it gets errors, never silence. As a third party, it finds a
gatekeeper member under the room's alias for her and fetches her OMEMO keys (OMEMO 2 and legacy)
at that alias with its stock pubsub plugin; and slixmpp-omemo, as a third-party member, reads
what she sends the room."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from tests.integration.groupkit import PHONE, hub_with_stock_party, muc_client, next_presence_from
from tests.integration.kit import DOMAIN, TIMEOUT, running_hub, sdk_client
from tests.integration.omemokit import OMEMO2_DEVICES, decrypted_bodies, peer_omemo

ROOM = JID(f"team@groups.{DOMAIN}")


def shown(server: Any, local: str) -> str:
    """The address the room shows for the service's user ``local`` (its alias there)."""
    aliases = server.hub.router.federation.aliases
    return f"{aliases.room_alias(local, ROOM.user, DOMAIN)}@{DOMAIN}"


async def test_stock_client_creates_joins_lists_members_and_gets_errors(tmp_path: Path) -> None:
    async with running_hub(tmp_path, accounts=("alice", "bob", "carol")) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = muc_client(f"alice@{DOMAIN}/a", certs)
        bob = muc_client(f"bob@{DOMAIN}/b", certs)
        carol = muc_client(f"carol@{DOMAIN}/c", certs)
        for c in (alice, bob, carol):
            await c.login(port)
        try:
            a_muc: Any = alice.client.plugin["xep_0045"]
            b_muc: Any = bob.client.plugin["xep_0045"]
            c_muc: Any = carol.client.plugin["xep_0045"]
            # the service is found by disco
            items = await alice.client.plugin["xep_0030"].get_items(jid=JID(DOMAIN), timeout=5)
            assert (f"groups.{DOMAIN}", None, "Groups") in items["disco_items"]["items"]
            own, _subject, _occupants, _history = await a_muc.join_muc_wait(
                ROOM, "alice", timeout=TIMEOUT
            )
            assert {110, 201} <= {int(s) for s in own["muc"]["status_codes"]}
            form = await a_muc.get_room_config(ROOM, timeout=TIMEOUT)
            assert form.get_values()["muc#roomconfig_membersonly"] is True
            form.set_type("submit")
            await a_muc.set_room_config(ROOM, form, timeout=TIMEOUT)
            await a_muc.set_affiliation(ROOM, "member", jid=JID(f"bob@{DOMAIN}"), timeout=TIMEOUT)
            await b_muc.join_muc_wait(ROOM, "bob", timeout=TIMEOUT)
            members = await b_muc.get_affiliation_list(ROOM, "member", timeout=TIMEOUT)
            owners = await b_muc.get_affiliation_list(ROOM, "owner", timeout=TIMEOUT)
            assert [str(j) for j in members] == [shown(server, "bob")]  # his alias in the room
            assert [str(j) for j in owners] == [shown(server, "alice")]
            bob.client.send_message(mto=ROOM, mbody="hello room", mtype="groupchat")
            got = await alice.next_message_of("groupchat", texted=True)
            assert (got["body"], str(got["from"])) == ("hello room", f"{ROOM}/bob")

            # Refusals are errors, not silence: a non-member entering ...
            c_muc.join_muc(ROOM, "carol")
            refused = await next_presence_from(carol, f"{ROOM}/carol", "error")
            assert refused["error"]["condition"] == "registration-required"
            # ... a non-occupant writing ...
            carol.client.send_message(mto=ROOM, mbody="let me in", mtype="groupchat")
            bounced = await carol.next_message()
            assert (bounced["type"], bounced["error"]["condition"]) == ("error", "not-acceptable")
            # ... a member changing affiliations, or reading the outcast list
            with pytest.raises(IqError) as forbidden:
                await b_muc.set_affiliation(
                    ROOM, "member", jid=JID(f"carol@{DOMAIN}"), timeout=TIMEOUT
                )
            assert forbidden.value.iq["error"]["condition"] == "forbidden"
            with pytest.raises(IqError) as outcasts:
                await b_muc.get_affiliation_list(ROOM, "outcast", timeout=TIMEOUT)
            assert outcasts.value.iq["error"]["condition"] == "forbidden"
            # ... and an invitation to an address that cannot be reached
            a_muc.invite(ROOM, JID(f"nobody@{DOMAIN}"))
            unreachable = await alice.next_message_of("error")
            assert unreachable["error"]["condition"] == "service-unavailable"
            assert str(unreachable["from"]) == str(ROOM)
            # the owner kicks the member out of the list: removed with 321
            await a_muc.set_affiliation(ROOM, "none", jid=JID(f"bob@{DOMAIN}"), timeout=TIMEOUT)
            gone = await next_presence_from(bob, f"{ROOM}/bob", "unavailable")
            assert 321 in {int(s) for s in gone["muc"]["status_codes"]}
        finally:
            for c in (alice, bob, carol):
                await c.close()


async def test_a_stock_third_party_fetches_a_gatekeeper_members_keys_at_her_alias(
    tmp_path: Path,
) -> None:
    async with hub_with_stock_party(tmp_path) as party:
        stock = party.stock
        alice = sdk_client(tmp_path, f"{PHONE}@{DOMAIN}/phone", party.port, party.certs, "alice")
        stock.client.register_plugin("xep_0060")
        try:
            await alice.connect()  # publishes her device lists and bundles (both versions)
            await alice.set_interop_settings(enabled=True)
            await alice.create_group(str(ROOM), "alice", name="Team")
            await alice.add_group_member(str(ROOM), party.jid)
            await stock.login(party.port)
            raw = stock.record_received()
            muc: Any = stock.client.plugin["xep_0045"]
            await muc.join_muc_wait(ROOM, "tp", timeout=TIMEOUT)
            alias = JID(JID(muc.get_jid_property(ROOM, "alice", "jid")).bare)
            assert alias.domain == DOMAIN
            assert PHONE not in str(alias)
            pubsub: Any = stock.client.plugin["xep_0060"]
            for devices, bundle in (
                ("urn:xmpp:omemo:2:devices", "urn:xmpp:omemo:2:bundles"),
                (
                    "eu.siacs.conversations.axolotl.devicelist",
                    "eu.siacs.conversations.axolotl.bundles:",
                ),
            ):
                got = await pubsub.get_items(alias, devices, timeout=TIMEOUT)
                assert got["from"] == alias
                listed = got.xml.findall(".//{*}device")
                assert listed, devices
                device_id = listed[0].get("id")
                if bundle.endswith(":"):
                    keys = await pubsub.get_items(alias, f"{bundle}{device_id}", timeout=TIMEOUT)
                else:
                    keys = await pubsub.get_item(alias, bundle, device_id, timeout=TIMEOUT)
                assert keys.xml.find(".//{*}bundle") is not None
            # a node she does not have is an error, never silence
            with pytest.raises(IqError) as missing:
                await pubsub.get_items(alias, "urn:xmpp:avatar:data", timeout=TIMEOUT)
            assert missing.value.iq["error"]["condition"] == "item-not-found"
            assert missing.value.iq["from"] == alias
            everything = b"".join(raw).decode("utf-8", errors="replace")
            assert str(alias) in everything
            assert PHONE not in everything  # not in a presence, a list, a key or an error
        finally:
            await alice.close()


async def test_a_stock_omemo_client_as_third_party_reads_a_gatekeeper_members_group_message(
    tmp_path: Path,
) -> None:
    """slixmpp-omemo (legacy OMEMO, as its documentation configures it) is a third-party member:
    it takes the sender's real JID from the room (her alias), fetches her keys there and reads
    what the SDK sent to the room."""
    async with hub_with_stock_party(tmp_path) as party:
        stock = party.stock
        omemo_plugin = peer_omemo(stock)
        read = decrypted_bodies(stock, omemo_plugin, "groupchat_message")
        alice = sdk_client(tmp_path, f"{PHONE}@{DOMAIN}/phone", party.port, party.certs, "alice")
        try:
            await stock.login(party.port)
            await omemo_plugin.get_session_manager()  # its keys published
            pubsub: Any = stock.client.plugin["xep_0060"]
            # slixmpp-omemo lists OMEMO 2 devices it cannot read: legacy only, as in 1:1 tests
            await pubsub.delete_node(JID(party.jid), OMEMO2_DEVICES, timeout=TIMEOUT)
            await alice.connect()
            await alice.set_interop_settings(enabled=True)
            await alice.create_group(str(ROOM), "alice", name="Team")
            await alice.add_group_member(str(ROOM), party.jid)
            muc: Any = stock.client.plugin["xep_0045"]
            await muc.join_muc_wait(ROOM, "tp", timeout=TIMEOUT)
            await alice.send_group_text(str(ROOM), "from the gatekeeper side")
            assert await asyncio.wait_for(read.get(), TIMEOUT) == "from the gatekeeper side"
        finally:
            await alice.close()
