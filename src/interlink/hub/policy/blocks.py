"""XEP-0191 block lists, kept in memory (loaded at start, written through) so that the check on
the routing path is a dictionary lookup. An item is a full JID, a bare JID or a domain; a domain
item blocks everyone there, so blocking ``<provider>.interop.<hub domain>`` blocks a whole
third-party provider.

An item may also be an *alias* of one of the hub's users (a room alias, or a per-provider alias
of federation; :mod:`interlink.hub.groups.aliases`): the address its owner was shown instead of
a phone number. The list keeps the item as given (what the owner reads back is the alias, never
the number) and also the account behind it, so that :meth:`BlockLists.keeps_out` holds back
what that *account* sends the owner, wherever it comes from: 1:1, and every room under every
alias. Only in that direction: what the owner sends the account's real address is not refused
as blocked (:meth:`BlockLists.blocks` matches items as given), because a "you have blocked this
address" answer there would tell the owner which number is behind the alias."""

from __future__ import annotations

from collections.abc import Callable

from interlink.errors import StanzaError, StanzaErrorCondition, StanzaErrorType
from interlink.storage.policy import PolicyRepository
from interlink.xmpp.ext import blocking
from interlink.xmpp.jid import JID, InvalidJID

#: (owner, item) -> the account behind an alias item (bare), else ``None``
AccountBehind = Callable[[JID, JID], JID | None]


class BlockLists:
    def __init__(
        self,
        repo: PolicyRepository,
        max_items: int,
        behind: AccountBehind,
        changed: Callable[[], None],
    ) -> None:
        """``behind``: the account behind an alias (:class:`~interlink.hub.groups.aliases.
        AliasAccounts`), so that a block of an alias keeps that account out. ``changed``: runs
        after a list was written (the other nodes of a cluster are told to read the change
        feed, whose entry the write made: they :meth:`reload` that list)."""
        self._repo = repo
        self.max_items = max_items
        self._behind = behind
        self._changed = changed
        self._lists: dict[str, set[str]] = {}
        #: owner -> account kept out -> the alias items of the owner's list that name it
        self._accounts: dict[str, dict[str, set[str]]] = {}
        #: owner -> writes made here while a reload of that list was reading it
        self._reloading: dict[str, int] = {}

    async def load(self) -> None:
        self._lists = await self._repo.blocklists()
        self._accounts = {}
        for owner, items in self._lists.items():
            self._learn(owner, items)

    def _learn(self, owner: str, items: set[str] | list[str]) -> None:
        holder = JID.parse(owner)
        for item in items:
            try:
                account = self._behind(holder, JID.parse(item))
            except InvalidJID:
                continue  # stored before the rules it breaks: it names no account
            if account is not None:
                self._accounts.setdefault(owner, {}).setdefault(str(account), set()).add(item)

    def _unlearn(self, owner: str, items: list[str]) -> None:
        accounts = self._accounts.get(owner)
        if not accounts:
            return
        gone = set(items)
        for account in list(accounts):
            accounts[account] -= gone
            if not accounts[account]:
                del accounts[account]
        if not accounts:
            del self._accounts[owner]

    async def reload(self, owner: JID) -> None:
        """Read ``owner``'s list again (another process or node changed it). A list this node
        wrote meanwhile is read once more: the first read may predate that write."""
        key = str(owner.bare)
        self._reloading[key] = 0
        try:
            while True:
                writes = self._reloading[key]
                items = await self._repo.blocklist(key)
                if self._reloading[key] == writes:
                    break
        finally:
            del self._reloading[key]
        self._accounts.pop(key, None)
        if items:
            self._lists[key] = items
            self._learn(key, items)
        else:
            self._lists.pop(key, None)

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

    def keeps_out(self, owner: JID, sender: JID) -> bool:
        """Whether nothing ``sender`` sends reaches ``owner`` (bare): ``sender`` is blocked as
        :meth:`blocks` matches, or its account is behind an alias ``owner`` blocked."""
        if self.blocks(owner, sender):
            return True
        accounts = self._accounts.get(str(owner))
        return accounts is not None and str(sender.bare) in accounts

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
            self._learn(key, new)
            self._wrote(key)
        return new

    async def unblock(self, owner: JID, jids: list[JID] | None) -> list[str]:
        """Remove ``jids`` (``None``: all); returns those removed."""
        key = str(owner.bare)
        current = self._lists.get(key, set())
        gone = sorted(current if jids is None else current & {str(j) for j in jids})
        if gone:
            await self._repo.unblock(key, None if jids is None else gone)
            self._unlearn(key, gone)
            remaining = current - set(gone)
            if remaining:
                self._lists[key] = remaining
            else:
                self._lists.pop(key, None)
            self._wrote(key)
        return gone

    def _wrote(self, key: str) -> None:
        if key in self._reloading:
            self._reloading[key] += 1
        self._changed()

    def forget(self, owner: JID) -> None:
        self._lists.pop(str(owner.bare), None)
        self._accounts.pop(str(owner.bare), None)
