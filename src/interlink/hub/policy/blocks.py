"""XEP-0191 block lists, kept in memory (loaded at start, written through) so that the check on
the routing path is a dictionary lookup. An item is a full JID, a bare JID or a domain; a domain
item blocks everyone there, so blocking ``<provider>.interop.<hub domain>`` blocks a whole
third-party provider."""

from __future__ import annotations

from interlink.errors import StanzaError, StanzaErrorCondition, StanzaErrorType
from interlink.storage.policy import PolicyRepository
from interlink.xmpp.ext import blocking
from interlink.xmpp.jid import JID


class BlockLists:
    def __init__(self, repo: PolicyRepository, max_items: int) -> None:
        self._repo = repo
        self.max_items = max_items
        self._lists: dict[str, set[str]] = {}

    async def load(self) -> None:
        self._lists = await self._repo.blocklists()

    @property
    def active(self) -> bool:
        return bool(self._lists)

    def items(self, owner: JID) -> list[str]:
        return sorted(self._lists.get(str(owner.bare), ()))

    def blocks(self, owner: JID, other: JID) -> bool:
        """Whether ``owner`` (bare) blocked ``other``: its full JID, bare JID or domain."""
        items = self._lists.get(str(owner))
        if not items:
            return False
        if other.domain in items:
            return True
        return (str(other.bare) in items) | (other.resource is not None and str(other) in items)

    @staticmethod
    def blocked_error() -> StanzaError:
        """What a user gets for writing to someone on their own block list (XEP-0191 §3.6)."""
        return StanzaError(
            StanzaErrorCondition.NOT_ACCEPTABLE,
            "you have blocked this address; unblock it first",
            type_=StanzaErrorType.CANCEL,  # as in XEP-0191 §3.6
            app_condition=blocking.BLOCKED_ERROR,
        )

    async def block(self, owner: JID, jids: list[JID], now: float) -> list[str]:
        """Add ``jids``; returns those new to the list."""
        key = str(owner.bare)
        current = self._lists.get(key, set())
        new = sorted({str(j) for j in jids} - current)
        if len(current) + len(new) > self.max_items:
            raise StanzaError(
                StanzaErrorCondition.POLICY_VIOLATION,
                f"a block list holds at most {self.max_items} items",
            )
        if new:
            await self._repo.block(key, new, now)
            self._lists.setdefault(key, set()).update(new)
        return new

    async def unblock(self, owner: JID, jids: list[JID] | None) -> list[str]:
        """Remove ``jids`` (``None``: all); returns those removed."""
        key = str(owner.bare)
        current = self._lists.get(key, set())
        gone = sorted(current if jids is None else current & {str(j) for j in jids})
        if gone:
            await self._repo.unblock(key, None if jids is None else gone)
            remaining = current - set(gone)
            if remaining:
                self._lists[key] = remaining
            else:
                self._lists.pop(key, None)
        return gone

    def forget(self, owner: JID) -> None:
        self._lists.pop(str(owner.bare), None)
