"""A roster's byte budget (``max_roster_bytes``): contacts, names and groups together."""

from __future__ import annotations

from interlink.hub.context import HubSettings
from interlink.storage.roster import RosterItem
from tests.hub.test_presence_roster import roster_set
from tests.hubkit import running_hub


def test_item_size_is_utf8_bytes_of_contact_name_and_groups() -> None:
    assert RosterItem("b@hub.test", "é", groups=("ab", "c")).size == 10 + 2 + 3


async def test_roster_byte_budget_at_the_boundary() -> None:
    # b@hub.test (10) + name (5) = 15 bytes; c@hub.test (10) + group (5) = 15 bytes
    async with running_hub(HubSettings(max_roster_bytes=30)) as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        a.take()
        assert await roster_set(a, "<item jid='b@hub.test' name='bbbbb'/>") == "ok"
        assert await roster_set(a, "<item jid='c@hub.test'><group>ccccc</group></item>") == "ok"
        # exactly at 30: one byte more is refused, and nothing changes
        assert await roster_set(a, "<item jid='b@hub.test' name='bbbbbb'/>") == "not-allowed"
        assert await roster_set(a, "<item jid='d@hub.test'/>") == "not-allowed"
        items = await kit.hub.ctx.storage.roster.items("alice@hub.test")
        assert sum(i.size for i in items) == 30
        # shrinking is always allowed, and makes room; so does removing
        assert await roster_set(a, "<item jid='b@hub.test'/>") == "ok"
        assert await roster_set(a, "<item jid='b@hub.test' name='bbbbb'/>") == "ok"
        assert await roster_set(a, "<item jid='c@hub.test' subscription='remove'/>") == "ok"
        assert await roster_set(a, "<item jid='d@hub.test' name='ddddd'/>") == "ok"
        assert await roster_set(a, "<item jid='e@hub.test'/>") == "not-allowed"
