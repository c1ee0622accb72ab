"""A member is whoever the room shows (client/groups.py, client/room_names.py): this account's
alias in a room, the keys filed under it, the session names of third parties met in a room,
and where python-omemo's own messages go."""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement

from interlink.client.groups import GroupRoom, ItemFacts
from interlink.client.omemo_session import OMEMO2, addressed_as, addressee
from interlink.client.room_names import as_sent, in_room, peer_of, room_of
from tests.client.test_groups_service import ROOM, Setup

ME = "me@hub.test"
MY_ALIAS = "gme@hub.test"
CAROL_ALIAS = "gcarol@hub.test"
TP = "abc@examplechat.interop.hub.test"
TP2 = "xyz@otherchat.interop.hub.test"


def encrypted(*recipients: tuple[str, str]) -> Element:
    element = Element(f"{{{OMEMO2}}}encrypted")
    header = SubElement(element, f"{{{OMEMO2}}}header", {"sid": "7"})
    for jid, rid in recipients:
        keys = SubElement(header, f"{{{OMEMO2}}}keys", {"jid": jid})
        SubElement(keys, f"{{{OMEMO2}}}key", {"rid": rid}).text = "AAAA"
    return element


def test_the_own_presence_tells_the_address_to_seal_with() -> None:
    state = GroupRoom(ROOM, "me", ME)
    assert state.identity() == ME  # before the room said
    state.on_presence("me", False, ItemFacts(MY_ALIAS, "owner", "moderator", frozenset({110})))
    state.on_presence("carol", False, ItemFacts(CAROL_ALIAS, "member", "participant", frozenset()))
    assert state.identity() == MY_ALIAS
    assert state.recipients() == {CAROL_ALIAS}  # never this account, under either address


def test_keys_filed_under_the_alias_are_found_and_refiled_for_python_omemo() -> None:
    element = encrypted((TP, "1"), (MY_ALIAS, "42"), (ME, "43"))
    assert addressee(element, (ME, MY_ALIAS), 42) == MY_ALIAS
    assert addressee(element, (ME, MY_ALIAS), 43) == ME  # this account's other device
    assert addressee(element, (ME, MY_ALIAS), 99) == ME
    refiled = addressed_as(element, MY_ALIAS, ME)
    jids = [k.get("jid") for k in refiled.iter(f"{{{OMEMO2}}}keys")]
    assert jids == [TP, ME, ME]
    assert [k.get("jid") for k in element.iter(f"{{{OMEMO2}}}keys")][1] == MY_ALIAS  # a copy


def test_room_scoped_session_names_never_reach_the_wire() -> None:
    name = in_room(TP, ROOM)
    assert (peer_of(name), room_of(name)) == (TP, ROOM)
    assert (peer_of(TP), room_of(TP)) == (TP, None)
    element = encrypted((name, "1"), (CAROL_ALIAS, "2"))
    sent = as_sent(element)
    assert [k.get("jid") for k in sent.iter(f"{{{OMEMO2}}}keys")] == [TP, CAROL_ALIAS]
    plain = encrypted((TP, "1"))
    assert as_sent(plain) is plain


async def test_a_client_shown_by_alias_names_third_parties_per_room_and_routes_via_the_room() -> (
    None
):
    s = Setup()
    groups = s.groups
    state = GroupRoom(
        ROOM,
        "me",
        ME,
        me=MY_ALIAS,
        members={MY_ALIAS: "owner", CAROL_ALIAS: "member", TP: "member"},
        occupants={"me": MY_ALIAS, "carol": CAROL_ALIAS, "tp": TP},
        joined=True,
    )
    groups._rooms[ROOM] = state
    assert groups.session_name(state, TP) == in_room(TP, ROOM)
    assert groups.session_name(state, CAROL_ALIAS) == CAROL_ALIAS
    # python-omemo's own messages: room sessions through the room, by nick
    assert groups.protocol_route(in_room(TP, ROOM)) == f"{ROOM}/tp"
    assert groups.protocol_route(CAROL_ALIAS) == f"{ROOM}/carol"
    # the 1:1 session with the same third party stays direct
    assert groups.protocol_route(TP) == TP
    assert groups.protocol_route(TP2) == TP2
    # a room peer not in the room now: nowhere (never a direct message)
    del state.occupants["carol"]
    assert groups.protocol_route(CAROL_ALIAS) is None
    del state.occupants["tp"]
    assert groups.protocol_route(in_room(TP, ROOM)) is None


async def test_a_third_party_client_names_everyone_by_the_address_the_room_shows() -> None:
    s = Setup()
    groups = s.groups
    state = GroupRoom(ROOM, "me", ME, me=ME, members={ME: "member", CAROL_ALIAS: "owner"})
    groups._rooms[ROOM] = state
    assert groups.session_name(state, CAROL_ALIAS) == CAROL_ALIAS
    assert groups.session_name(state, TP) == TP
