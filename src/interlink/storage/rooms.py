"""XEP-0045 rooms of the group service: each room's configuration and subject, and its
affiliations (owners, admins, members, outcasts). Occupants are not stored: they are who is in
the room now, and clients enter again after a restart (XEP-0410 tells them to)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from interlink.xmpp.ext.muc import Affiliation, RoomConfig


@dataclass(frozen=True, slots=True)
class StoredRoom:
    jid: str  # room@groups.<service>
    service: str  # the gatekeeper service whose group service holds it
    config: RoomConfig
    subject: str
    subject_by: str  # the nick that set it ("" for none)
    created: float


class StoredMember(NamedTuple):
    jid: str  # a bare account address
    affiliation: Affiliation
    invited_by: str | None  # while a mediated invitation is pending


class RoomRepository(Protocol):
    async def get(self, room: str) -> tuple[StoredRoom, list[StoredMember]] | None:
        """The room and its affiliations, or ``None`` if there is no such room."""
        ...

    async def create(self, room: StoredRoom, owner: str, *, max_owned: int) -> bool:
        """Store a new room owned by ``owner``. Nothing is stored and ``False`` returned if
        ``owner`` already owns ``max_owned`` rooms.

        Raises:
            RoomExistsError: a room with that address exists.
        """
        ...

    async def save(self, room: StoredRoom) -> None:
        """Replace a room's configuration and subject (no-op for a room that does not exist)."""
        ...

    async def set_members(self, room: str, changes: Mapping[str, StoredMember | None]) -> None:
        """Apply affiliation changes at once (``None`` removes one)."""
        ...

    async def delete(self, room: str) -> bool:
        """Remove a room and its affiliations; whether there was one."""
        ...

    async def owned(self, owner: str) -> int:
        """How many rooms ``owner`` owns."""
        ...

    async def rooms_of(self, member: str) -> list[str]:
        """The rooms where ``member`` is an owner, admin or member (pending included)."""
        ...

    async def public(self, service: str) -> list[tuple[str, str]]:
        """(room, name) of the rooms of ``service`` configured as public, by address."""
        ...


__all__ = ["RoomRepository", "StoredMember", "StoredRoom"]
