"""The address a gatekeeper member shows in a room: a per-room alias, never its phone number.

Theory of operation
-------------------
A gatekeeper user's localpart is its phone number, and no third party may learn it (issue 18).
OMEMO in a non-anonymous room needs each member's *real JID* all the same: clients fetch the
member's device list and bundles by PEP at that address (XEP-0384 §5.3), and an OMEMO 2 payload
carries its sender inside the encrypted envelope (XEP-0420 ``<from/>``), which every recipient
checks against the real JID the room shows for the occupant who sent it.

So in every room each of the service's own users is shown, to every member alike, under an
alias on its service's domain: ``g<base32>@wa.example``, the AES-SIV encryption of
``<localpart>/<room localpart>`` (:meth:`~interlink.hub.federation.AliasCipher.room_alias`, the
same cipher and key as the per-provider aliases of federation). Why this key:

* **Per room, not per provider.** One OMEMO 2 message is *one* envelope encrypted for every
  member's devices: its ``<from/>`` is one address, read by members of several providers and by
  the service's own users. A per-provider alias would be a different address for each reader,
  so the check would fail for all but one of them. Per room, every member sees the same one.
* **For every member, in every room.** Gatekeeper co-members see the alias too (the same
  envelope reaches them), and a room shows it from its creation, not only once a third party
  joins: a member's address in a room never changes, so an archived message's envelope still
  matches years later, and no client has to move its sessions to a new address mid-room.
* **The room inside the alias.** The room is sealed with the localpart (not merely bound as
  associated data), so the hub turns an alias back into (account, room) with its key alone:
  no table to store, migrate or keep in step between hub processes, and the consent check
  knows which room to look at. Hence the limit on a room's name
  (``groups.max_room_name_bytes``): the alias must stay a valid localpart (1023 bytes).
* **Unlinkable across rooms.** A third party in two rooms with the same user sees two
  addresses; only what the user shows (a nick, a picture) links them.

Third parties (plug-and-play interop addresses, federated users) show their own addresses,
which are no phone numbers. Addressed to an alias, the hub answers what OMEMO needs (PEP items
of the account, disco) under the alias, to co-members of that room whom consent lets see that
member (:meth:`~interlink.hub.groups.service.GroupService.alias_iq`); anyone else gets the
answer a nonexistent account gives. Legacy OMEMO has no envelope; it only needs the device
list and bundles, fetched the same way.

Outside the room, what a user names by an alias it was shown — a block (XEP-0191) or a report
(XEP-0377) from its contact list — is about the account behind it: :class:`AliasAccounts`
reads it back (room aliases and federation's per-provider ones alike), so the block list keeps
that account out everywhere and the report is queued under the account and the room, while
the user only ever sees the alias (docs/protocol.md §6, §7).
"""

from __future__ import annotations

from dataclasses import dataclass

from interlink.hub.addressing import Addressing
from interlink.hub.federation import AliasCipher
from interlink.xmpp.jid import JID


class RoomAliases:
    """Real addresses ↔ the addresses rooms show (see the module docstring)."""

    def __init__(self, cipher: AliasCipher, addressing: Addressing) -> None:
        self._cipher = cipher
        self._addressing = addressing

    def hides(self, real: JID) -> bool:
        """Whether ``real`` is one of the services' own users (shown under an alias)."""
        return real.local is not None and self._addressing.is_home(real)

    def shown(self, room: JID, real: JID) -> JID:
        """The bare address ``room`` shows for the member ``real``."""
        bare = real.bare
        if not self.hides(bare) or room.local is None:
            return bare
        assert bare.local is not None
        return JID.make(self._cipher.room_alias(bare.local, room.local, bare.domain), bare.domain)

    def shown_full(self, room: JID, real: JID) -> JID:
        """As :meth:`shown`, keeping ``real``'s resource (an occupant's session)."""
        shown = self.shown(room, real)
        return shown if real.resource is None else shown.with_resource(real.resource)

    def resolve(self, alias: JID) -> tuple[JID, JID] | None:
        """``(account, room)`` (both bare) behind a room alias, else ``None``."""
        local = alias.local
        if local is None or not self._addressing.is_home_domain(alias.domain):
            return None
        found = self._cipher.resolve_room_alias(local, alias.domain)
        if found is None:
            return None
        groups = self._addressing.groups_domain(alias.domain)
        if groups is None:
            return None
        return JID.make(found[0], alias.domain), JID.make(found[1], groups)

    def real(self, room: JID, jid: JID) -> JID:
        """The account behind ``jid`` as given in ``room`` (an alias of that room, or an
        address as it is): what members name when they invite, ban or list."""
        found = self.resolve(jid)
        if found is None or found[1] != room.bare:
            return jid.bare
        return found[0]


@dataclass(frozen=True, slots=True)
class Behind:
    """What an alias stands for: the account, and the room for a room alias."""

    account: JID  # bare
    room: JID | None  # bare; ``None`` for a per-provider (federation) alias


class AliasAccounts:
    """Any alias the hub shows a user → the account behind it, for what a user names outside
    a room: a block (XEP-0191) and a report (XEP-0377). A room alias names its account and
    room whoever holds it; a per-provider alias (federation) only for that provider's users,
    the only ones it was ever shown to. Anything else — an address as it is, a garbled or
    forged alias — stands for nothing behind it (``None``), so it is treated exactly as an
    address no account holds. The key alone decides: nothing is stored, nothing looked up."""

    def __init__(self, cipher: AliasCipher, addressing: Addressing) -> None:
        self._cipher = cipher
        self._addressing = addressing
        self._rooms = RoomAliases(cipher, addressing)

    def behind(self, holder: JID, alias: JID) -> Behind | None:
        """The account (and room) behind ``alias`` as ``holder`` names it, else ``None``."""
        local = alias.local
        if local is None or not self._addressing.is_home_domain(alias.domain):
            return None
        found = self._rooms.resolve(alias)
        if found is not None:
            return Behind(found[0], found[1])
        provider_id = self._addressing.provider_of(holder)
        if provider_id is None:
            return None
        account = self._cipher.resolve(local, provider_id, alias.domain)
        return None if account is None else Behind(JID.make(account, alias.domain), None)

    def account_of(self, holder: JID, alias: JID) -> JID | None:
        """:meth:`behind`'s account only (what a block list needs)."""
        found = self.behind(holder, alias)
        return None if found is None else found.account


__all__ = ["AliasAccounts", "Behind", "RoomAliases"]
