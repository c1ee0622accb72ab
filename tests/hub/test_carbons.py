"""Message carbons (XEP-0280) on the hub."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from tests.hubkit import Client, running_hub

CARBONS = "urn:xmpp:carbons:2"


async def enable(c: Client, on: bool = True) -> None:
    verb = "enable" if on else "disable"
    await c.send(f"<iq xmlns='jabber:client' type='set' id='c'><{verb} xmlns='{CARBONS}'/></iq>")
    (res,) = [el for el in c.take() if el.get("id") == "c"]
    assert res.get("type") == "result"


def copies(elements: list[Element]) -> list[tuple[str, str, str]]:
    """(kind, original from, original body) of each carbon copy."""
    out = []
    for el in elements:
        for kind in ("received", "sent"):
            wrapper = el.find(f"{{{CARBONS}}}{kind}")
            if wrapper is not None:
                original = wrapper[0][0]
                out.append(
                    (
                        kind,
                        original.get("from") or "",
                        original.findtext("{jabber:client}body") or "",
                    )
                )
    return out


def direct(elements: list[Element]) -> list[str]:
    return [
        el.findtext("{jabber:client}body") or ""
        for el in elements
        if el.tag == "{jabber:client}message" and el.find("{jabber:client}body") is not None
    ]


async def test_received_and_sent_copies_go_to_enabled_resources_only() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a1 = await kit.connect("alice", "a1")
        a2 = await kit.connect("alice", "a2")
        a3 = await kit.connect("alice", "a3")
        b = await kit.connect("bob", "b")
        await enable(a1)
        await enable(a2)
        for c in (a1, a2, a3, b):
            c.take()
        await b.send(
            "<message xmlns='jabber:client' to='alice@hub.test/a1' type='chat'><body>hi a1</body></message>"
        )
        assert direct(a1.take()) == ["hi a1"]
        assert copies(a2.take()) == [("received", "bob@hub.test/b", "hi a1")]
        assert a3.take() == []
        await a1.send(
            "<message xmlns='jabber:client' to='bob@hub.test' type='chat'><body>hi bob</body></message>"
        )
        assert direct(b.take()) == ["hi bob"]
        got = a2.take()
        assert copies(got) == [("sent", "alice@hub.test/a1", "hi bob")]
        assert got[0].get("from") == "alice@hub.test"  # copies come from the bare JID
        assert copies(a1.take()) == []
        assert a3.take() == []


async def test_what_is_not_copied() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a1 = await kit.connect("alice", "a1")
        a2 = await kit.connect("alice", "a2")
        b = await kit.connect("bob", "b")
        await enable(a2)
        for c in (a1, a2, b):
            c.take()
        for body in (
            "<body>p</body><private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/>",
        ):
            await b.send(
                f"<message xmlns='jabber:client' to='alice@hub.test/a1' type='chat'>{body}</message>"
            )
        await b.send(
            "<message xmlns='jabber:client' to='alice@hub.test/a1' type='headline'><body>h</body></message>"
        )
        await b.send(
            "<message xmlns='jabber:client' to='alice@hub.test/a1'><x xmlns='urn:e'/></message>"
        )
        assert copies(a2.take()) == []
        await enable(a2, False)
        await b.send(
            "<message xmlns='jabber:client' to='alice@hub.test/a1' type='chat'><body>x</body></message>"
        )
        assert copies(a2.take()) == []


async def test_carbons_state_is_forgotten_with_the_session() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a1 = await kit.connect("alice", "a1")
        await enable(a1)
        await kit.disconnect(a1)
        assert kit.hub.router.carbons._enabled == {}
