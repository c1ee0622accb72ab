"""Message and iq routing rules (RFC 6120 §10, RFC 6121 §8) on the hub, with fake connections."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from interlink.hub.context import HubSettings
from interlink.hub.session import BindConflictPolicy
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, IqType, Message, MessageType
from tests.hubkit import DOMAIN, running_hub

STANZA_ERR = "{urn:ietf:params:xml:ns:xmpp-stanzas}"


def error_condition(stanza: object) -> str:
    assert isinstance(stanza, Message | Iq)
    err = stanza.find("{jabber:client}error")
    assert err is not None
    return err[0].tag.replace(STANZA_ERR, "")


def bodies(stanzas: Sequence[object]) -> list[str | None]:
    return [s.body for s in stanzas if isinstance(s, Message)]


async def test_chat_to_bare_jid_goes_to_highest_priority_resources() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b1 = await kit.connect("bob", "b1", priority=5)
        b2 = await kit.connect("bob", "b2", priority=5)
        b3 = await kit.connect("bob", "b3", priority=1)
        bn = await kit.connect("bob", "bn", priority=-1)
        for c in (b1, b2, b3, bn):
            c.take()
        await a.send(
            "<message xmlns='jabber:client' to='bob@hub.test' type='chat'><body>x</body></message>"
        )
        assert bodies(b1.stanzas()) == ["x"]
        assert bodies(b2.stanzas()) == ["x"]
        assert bodies(b3.stanzas()) == []
        assert bodies(bn.stanzas()) == []


async def test_full_jid_goes_to_that_resource_even_with_negative_priority() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b1 = await kit.connect("bob", "b1", priority=5)
        bn = await kit.connect("bob", "bn", priority=-1)
        b1.take()
        bn.take()
        await a.send(
            "<message xmlns='jabber:client' to='bob@hub.test/bn' type='chat'><body>x</body></message>"
        )
        assert bodies(bn.stanzas()) == ["x"]
        assert bodies(b1.stanzas()) == []
        # An unknown resource falls back to the bare-JID rules for chat.
        await a.send(
            "<message xmlns='jabber:client' to='bob@hub.test/gone' type='chat'><body>y</body></message>"
        )
        assert bodies(b1.stanzas()) == ["y"]


async def test_from_is_the_senders_full_jid_and_to_is_kept() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b")
        b.take()
        await a.send(
            "<message xmlns='jabber:client' to='bob@hub.test' id='m1'><body>x</body></message>"
        )
        (msg,) = b.stanzas()
        assert msg.from_ == JID.parse("alice@hub.test/a")
        assert msg.to == JID.parse("bob@hub.test")
        assert msg.id == "m1"


async def test_headline_goes_to_all_non_negative_and_is_never_stored() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b1 = await kit.connect("bob", "b1", priority=5)
        b2 = await kit.connect("bob", "b2", priority=0)
        a.take()
        b1.take()
        b2.take()
        await a.send(
            "<message xmlns='jabber:client' to='bob@hub.test' type='headline'><body>h</body></message>"
        )
        assert bodies(b1.stanzas()) == ["h"]
        assert bodies(b2.stanzas()) == ["h"]
        await kit.disconnect(b1)
        await kit.disconnect(b2)
        await a.send(
            "<message xmlns='jabber:client' to='bob@hub.test' type='headline'><body>h</body></message>"
        )
        assert a.stanzas() == []
        assert await kit.hub.ctx.storage.offline.count("bob@hub.test") == 0


@pytest.mark.parametrize(
    ("to", "mtype", "condition"),
    [
        ("nobody@hub.test", "chat", "service-unavailable"),
        ("bob@hub.test", "groupchat", "service-unavailable"),
        ("hub.test", "chat", "service-unavailable"),
        ("someone@elsewhere.example", "chat", "remote-server-not-found"),
    ],
)
async def test_message_errors(to: str, mtype: str, condition: str) -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        a.take()
        await a.send(
            f"<message xmlns='jabber:client' to='{to}' type='{mtype}' id='e1'><body>x</body></message>"
        )
        (err,) = a.stanzas()
        assert isinstance(err, Message)
        assert err.type is MessageType.ERROR
        assert err.id == "e1"
        assert error_condition(err) == condition
        assert err.body is None  # the original content is not echoed back


async def test_error_messages_are_never_answered_with_errors() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        a.take()
        await a.send(
            "<message xmlns='jabber:client' to='nobody@hub.test' type='error'><body>x</body></message>"
        )
        assert a.stanzas() == []


async def test_iq_to_the_server() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        a.take()
        await a.send(
            "<iq xmlns='jabber:client' to='hub.test' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>"
        )
        (pong,) = a.stanzas()
        assert isinstance(pong, Iq)
        assert pong.type is IqType.RESULT
        assert pong.id == "p"
        assert pong.from_ == JID.parse(DOMAIN)
        await a.send(
            "<iq xmlns='jabber:client' to='hub.test' type='get' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )
        (info,) = a.stanzas()
        assert isinstance(info, Iq)
        features = [f.get("var") for f in info.payload[0] if f.tag.endswith("feature")]
        assert "urn:xmpp:ping" in features
        assert "msgoffline" in features
        await a.send(
            "<iq xmlns='jabber:client' to='hub.test' type='get' id='u'><query xmlns='urn:example:unknown'/></iq>"
        )
        (err,) = a.stanzas()
        assert error_condition(err) == "service-unavailable"
        await a.send(
            "<iq xmlns='jabber:client' to='hub.test' type='get' id='n'><query xmlns='http://jabber.org/protocol/disco#info' node='nope'/></iq>"
        )
        assert error_condition(a.stanzas()[0]) == "item-not-found"


async def test_iq_to_full_jid_is_routed_and_answered() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b", available=False)
        a.take()
        await a.send(
            "<iq xmlns='jabber:client' to='bob@hub.test/b' type='get' id='v1'><query xmlns='jabber:iq:version'/></iq>"
        )
        (req,) = b.stanzas()
        assert isinstance(req, Iq)
        assert req.from_ == JID.parse("alice@hub.test/a")
        await b.send("<iq xmlns='jabber:client' to='alice@hub.test/a' type='result' id='v1'/>")
        (res,) = a.stanzas()
        assert isinstance(res, Iq)
        assert res.type is IqType.RESULT
        await a.send(
            "<iq xmlns='jabber:client' to='bob@hub.test/none' type='get' id='v2'><query xmlns='jabber:iq:version'/></iq>"
        )
        assert error_condition(a.stanzas()[0]) == "service-unavailable"
        # results to nowhere are dropped silently
        await a.send("<iq xmlns='jabber:client' to='bob@hub.test/none' type='result' id='v3'/>")
        assert a.stanzas() == []


async def test_iq_to_bare_jid_is_answered_on_behalf_of_the_account_only_for_subscribers() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b")
        a.take()
        disco = "<query xmlns='http://jabber.org/protocol/disco#info'/>"

        async def ask(to: str, iq_id: str) -> Iq:
            await a.send(
                f"<iq xmlns='jabber:client' to='{to}' type='get' id='{iq_id}'>{disco}</iq>"
            )
            (answer,) = [s for s in a.stanzas() if isinstance(s, Iq)]
            return answer

        # Not subscribed: the same answer as for an account that does not exist (no oracle).
        stranger = await ask("bob@hub.test", "i1")
        missing = await ask("nobody@hub.test", "i2")
        assert error_condition(stranger) == error_condition(missing) == "service-unavailable"
        from interlink.xmpp.stanza import to_xml

        assert to_xml(stranger).replace("bob", "X").replace("i1", "ID") == to_xml(missing).replace(
            "nobody", "X"
        ).replace("i2", "ID")
        # Once Bob lets Alice see his presence, the hub answers for him.
        await a.send("<presence xmlns='jabber:client' to='bob@hub.test' type='subscribe'/>")
        await b.send("<presence xmlns='jabber:client' to='alice@hub.test' type='subscribed'/>")
        a.take()
        info = await ask("bob@hub.test", "i3")
        assert info.type is IqType.RESULT
        assert info.payload[0][0].get("category") == "account"
        await a.send(
            "<iq xmlns='jabber:client' to='bob@hub.test' type='set' id='i4'><query xmlns='urn:example'/></iq>"
        )
        assert error_condition(a.stanzas()[0]) == "service-unavailable"


async def test_headline_to_an_unknown_full_jid_is_dropped() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b")
        a.take()
        b.take()
        await a.send(
            "<message xmlns='jabber:client' to='bob@hub.test/gone' type='headline'><body>h</body></message>"
        )
        assert b.stanzas() == []
        assert a.stanzas() == []


@pytest.mark.parametrize("policy", list(BindConflictPolicy))
async def test_bind_conflict_policies(policy: BindConflictPolicy) -> None:
    from interlink.errors import StanzaError

    async with running_hub(HubSettings(bind_conflict=policy)) as kit:
        await kit.account("alice")
        first = await kit.connect("alice", "phone")
        if policy is BindConflictPolicy.REFUSE:
            with pytest.raises(StanzaError) as info:
                await kit.connect("alice", "phone")
            assert info.value.condition == "conflict"
            return
        second = await kit.connect("alice", "phone")
        if policy is BindConflictPolicy.OVERRIDE:
            assert second.session.jid.resource != "phone"
            assert (second.session.jid.resource or "").startswith("phone.")
            assert not first.port.closed
        else:
            assert second.session.jid.resource == "phone"
            assert first.port.closed
            assert first.port.terminated is not None
            assert first.port.terminated.condition == "conflict"


async def test_generated_resources_are_unique() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        jids = {(await kit.connect("alice")).session.jid for _ in range(20)}
        assert len(jids) == 20


@pytest.mark.parametrize("policy", list(BindConflictPolicy))
async def test_sessions_per_account_stop_at_the_cap(policy: BindConflictPolicy) -> None:
    """The cap'th bind succeeds, the next gets resource-constraint (RFC 6120 §7.6.2.1); another
    account is not affected; a replacement (same resource, ``replace``) does not add one."""
    from interlink.errors import StanzaError

    async with running_hub(HubSettings(bind_conflict=policy, max_sessions_per_account=3)) as kit:
        await kit.account("alice")
        await kit.account("bob")
        first = await kit.connect("alice", "r0")
        second = await kit.connect("alice", "r1")
        await kit.connect("alice", "r2")
        with pytest.raises(StanzaError) as info:
            await kit.connect("alice", "r3")
        assert info.value.condition == "resource-constraint"
        assert "(3)" in info.value.text
        if policy is BindConflictPolicy.REPLACE:
            again = await kit.connect("alice", "r0")
            assert again.session.jid.resource == "r0"
            assert first.port.closed
        await kit.connect("bob")
        await kit.disconnect(second)
        await kit.connect("alice", "r3")  # a freed place can be taken
