"""The group service's limits (the ``[groups]`` configuration section)."""

from __future__ import annotations

from dataclasses import dataclass, field

from interlink.hub.groups.room import RoomLimits
from interlink.hub.policy.limits import Rate


@dataclass(frozen=True, slots=True)
class GroupSettings:
    room: RoomLimits = field(default_factory=RoomLimits)
    rooms_per_user: int = 100  # rooms one account owns
    max_message_bytes: int = 64 * 1024  # one message to a room or an occupant, as sent
    room_rate: Rate = field(default_factory=lambda: Rate(600, 60.0))  # per room
    sender_rate: Rate = field(default_factory=lambda: Rate(60, 60.0))  # per sender, all rooms
    rooms_cached: int = 10_000  # rooms without occupants kept in memory
    rate_keys: int = 100_000  # buckets kept per table
    labels_cached: int = 100_000  # interop markers of members kept in memory (least recent out)
    # A room's localpart (UTF-8): the service's users' aliases in the room seal it, and an
    # alias must stay a valid localpart (hub/groups/aliases.py); hence at most 512.
    max_room_name_bytes: int = 256

    def __post_init__(self) -> None:
        if (
            self.rooms_per_user < 1
            or self.max_message_bytes < 1
            or self.rooms_cached < 1
            or self.labels_cached < 1
            or not 1 <= self.max_room_name_bytes <= 512
        ):
            raise ValueError("group limits must be at least 1")


__all__ = ["GroupSettings"]
