"""Room aliases (hub/groups/aliases.py, AliasCipher.room_alias): what a room shows for the
service's own users, and how the hub reads it back."""

from __future__ import annotations

import secrets

from interlink.hub.addressing import Addressing, ProviderDirectory
from interlink.hub.federation import AliasCipher
from interlink.hub.groups.aliases import AliasAccounts, Behind, RoomAliases
from interlink.xmpp.jid import JID

SERVICE = "wa.example"
ROOM = JID.parse(f"team@groups.{SERVICE}")
ALICE = JID.parse(f"4915112345678@{SERVICE}")


def aliases() -> RoomAliases:
    return RoomAliases(
        AliasCipher(secrets.token_bytes(64)), Addressing((SERVICE,), ProviderDirectory())
    )


def test_a_member_has_one_alias_per_room_that_reads_back_to_account_and_room() -> None:
    faces = aliases()
    shown = faces.shown(ROOM, ALICE)
    assert shown == faces.shown(ROOM, ALICE.with_resource("phone").bare)  # deterministic
    assert shown.domain == SERVICE
    assert "4915112345678" not in str(shown)
    assert faces.resolve(shown) == (ALICE, ROOM)
    assert faces.real(ROOM, shown) == ALICE
    other = JID.parse(f"other@groups.{SERVICE}")
    assert faces.shown(other, ALICE) != shown  # unlinkable across rooms
    assert faces.real(other, shown) == shown  # an alias of another room names no one here
    full = faces.shown_full(ROOM, ALICE.with_resource("phone"))
    assert (full.bare, full.resource) == (shown, "phone")


def test_third_parties_show_their_own_addresses() -> None:
    faces = aliases()
    tp = JID.parse(f"abc@examplechat.interop.{SERVICE}")
    assert faces.shown(ROOM, tp) == tp
    assert faces.real(ROOM, tp) == tp
    assert faces.resolve(tp) is None


def test_per_provider_aliases_and_forgeries_are_no_room_aliases() -> None:
    cipher = AliasCipher(secrets.token_bytes(64))
    faces = RoomAliases(cipher, Addressing((SERVICE,), ProviderDirectory()))
    per_provider = JID.make(cipher.alias(ALICE.local or "", "room", SERVICE), SERVICE)
    assert faces.resolve(per_provider) is None
    assert faces.resolve(JID.make("g" + "a" * 40, SERVICE)) is None
    assert faces.resolve(JID.make("gnot-base32!", SERVICE)) is None
    elsewhere = JID.make(faces.shown(ROOM, ALICE).local, "other.example")
    assert faces.resolve(elsewhere) is None  # a service's aliases live on its domain only
    other_key = RoomAliases(
        AliasCipher(secrets.token_bytes(64)), Addressing((SERVICE,), ProviderDirectory())
    )
    assert other_key.resolve(faces.shown(ROOM, ALICE)) is None


def test_the_longest_room_name_allowed_still_gives_valid_addresses() -> None:
    faces = aliases()
    room = JID.make("r" * 512, f"groups.{SERVICE}")  # groups.max_room_name_bytes at most
    shown = faces.shown(room, JID.make("9" * 93, SERVICE))
    assert len((shown.local or "").encode()) <= 1023
    assert faces.resolve(shown) == (JID.make("9" * 93, SERVICE), room)


def test_what_a_block_or_report_names_is_read_back_to_the_account_behind_it() -> None:
    """AliasAccounts: a room alias names its account and room whoever holds it; a per-provider
    alias names its account only for that provider's users (the only ones shown it); an
    address as it is, or a forged alias, names nothing behind it."""
    cipher = AliasCipher(secrets.token_bytes(64))
    accounts = AliasAccounts(cipher, Addressing((SERVICE,), ProviderDirectory()))
    faces = RoomAliases(cipher, Addressing((SERVICE,), ProviderDirectory()))
    tp = JID.parse(f"abc@examplechat.interop.{SERVICE}")
    other_tp = JID.parse(f"abc@otherchat.interop.{SERVICE}")
    in_room = faces.shown(ROOM, ALICE)
    assert accounts.behind(tp, in_room) == Behind(ALICE, ROOM)
    assert accounts.account_of(JID.parse(f"bob@{SERVICE}"), in_room) == ALICE
    per_provider = JID.make(cipher.alias(ALICE.local or "", "examplechat", SERVICE), SERVICE)
    assert accounts.behind(tp, per_provider) == Behind(ALICE, None)
    assert accounts.behind(other_tp, per_provider) is None  # another provider's alias
    assert accounts.behind(JID.parse(f"bob@{SERVICE}"), per_provider) is None
    assert accounts.behind(tp, ALICE) is None  # the number itself: an address as it is
    assert accounts.behind(tp, JID.make("g" + "a" * 40, SERVICE)) is None
    assert accounts.behind(tp, JID.make(in_room.local, "other.example")) is None
    assert accounts.behind(tp, JID.parse(SERVICE)) is None  # a domain item
