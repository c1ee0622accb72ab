"""PEP (XEP-0163 / XEP-0060 subset): publish, options, access models, +notify via caps, limits."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest

from interlink.hub.caps import caps_hash, verification_string
from interlink.hub.context import HubSettings
from interlink.xmpp.parser import ElementReceived, Framing, StreamParser
from interlink.xmpp.stanza import Iq, IqType, Message, parse_stanza
from tests.hubkit import CREDS, DOMAIN, Client, HubKit, running_hub

PUBSUB = "http://jabber.org/protocol/pubsub"
EVENT = "{http://jabber.org/protocol/pubsub#event}"
ERRORS = "{http://jabber.org/protocol/pubsub#errors}"
DEVICES = "urn:xmpp:omemo:2:devices"
STANZAS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"


def options(**fields: str) -> str:
    body = "".join(f"<field var='pubsub#{k}'><value>{v}</value></field>" for k, v in fields.items())
    return (
        "<publish-options><x xmlns='jabber:x:data' type='submit'>"
        f"<field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#publish-options</value></field>"
        f"{body}</x></publish-options>"
    )


async def iq(client: Client, body: str, *, to: str = "", kind: str = "set") -> Iq:
    target = f" to='{to}'" if to else ""
    await client.send(f"<iq xmlns='jabber:client' type='{kind}' id='q'{target}>{body}</iq>")
    answers = [s for s in client.stanzas() if isinstance(s, Iq) and s.id == "q"]
    assert len(answers) == 1, answers
    return answers[0]


def condition(answer: Iq) -> tuple[str, str | None]:
    assert answer.type is IqType.ERROR, answer
    err = answer.find("{jabber:client}error")
    assert err is not None
    names = [c.tag for c in err]
    app = next((n.replace(ERRORS, "") for n in names if n.startswith(ERRORS)), None)
    return names[0].replace(STANZAS, ""), app


async def publish(client: Client, node: str, item_id: str, payload: str, opts: str = "") -> Iq:
    return await iq(
        client,
        f"<pubsub xmlns='{PUBSUB}'><publish node='{node}'><item id='{item_id}'>{payload}</item>"
        f"</publish>{opts}</pubsub>",
    )


async def items_request(client: Client, owner: str, node: str, extra: str = "") -> Iq:
    return await iq(
        client,
        f"<pubsub xmlns='{PUBSUB}'><items node='{node}'{extra}/></pubsub>",
        to=owner,
        kind="get",
    )


async def items(client: Client, owner: str, node: str, extra: str = "") -> list[tuple[str, str]]:
    answer = await items_request(client, owner, node, extra)
    assert answer.type is IqType.RESULT, answer
    found = answer.payload[0][0]
    return [(i.get("id") or "", (i[0].text or i[0].get("v") or "")) for i in found]


async def items_refused(client: Client, owner: str, node: str) -> tuple[str, str | None]:
    return condition(await items_request(client, owner, node))


async def with_caps(kit: HubKit, client: Client, features: list[str]) -> None:
    """Announce capabilities and answer the hub's disco#info query with a matching hash."""
    info = Element("{http://jabber.org/protocol/disco#info}query")
    info.append(
        Element(
            "{http://jabber.org/protocol/disco#info}identity", {"category": "client", "type": "pc"}
        )
    )
    for f in features:
        info.append(Element("{http://jabber.org/protocol/disco#info}feature", {"var": f}))
    ver = caps_hash(info)
    await client.send(
        "<presence xmlns='jabber:client'><c xmlns='http://jabber.org/protocol/caps' "
        f"hash='sha-1' node='https://example.org/client' ver='{ver}'/></presence>"
    )
    received = client.take()
    query = [el for el in received if el.tag == "{jabber:client}iq" and el.get("type") == "get"]
    client.port.received.extend(el for el in received if el not in query)  # keep the rest
    if not query:
        return  # known already: no query
    (q_el,) = query
    q = parse_stanza(q_el)
    assert isinstance(q, Iq)
    assert q.query is not None
    assert q.query.get("node") == f"https://example.org/client#{ver}"
    from interlink.xmpp.xml import serialize

    await client.send(
        f"<iq xmlns='jabber:client' type='result' id='{q.id}' to='{DOMAIN}'>{serialize(info, 'jabber:client')}</iq>"
    )


def events(client: Client) -> list[tuple[str, str, list[str]]]:
    out = []
    for s in client.stanzas():
        if isinstance(s, Message):
            ev = s.find(EVENT + "event")
            if ev is not None:
                child = ev[0]
                out.append(
                    (str(s.from_), child.get("node") or "", [i.get("id") or "" for i in child])
                )
    return out


async def test_publish_auto_creates_then_items_retract_delete() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        a.take()
        answer = await publish(a, "urn:example:n", "one", "<x xmlns='urn:example' v='1'/>")
        assert answer.type is IqType.RESULT
        assert answer.payload[0][0][0].get("id") == "one"
        answer = await publish(a, "urn:example:n", "", "<x xmlns='urn:example' v='2'/>")
        generated = answer.payload[0][0][0].get("id")
        assert generated
        # default max_items is 1: only the newest stays
        assert await items(a, "alice@hub.test", "urn:example:n") == [(generated, "2")]
        assert condition(
            await iq(
                a,
                f"<pubsub xmlns='{PUBSUB}'><retract node='urn:example:n'><item id='nope'/></retract></pubsub>",
            )
        ) == ("item-not-found", None)
        retract = await iq(
            a,
            f"<pubsub xmlns='{PUBSUB}'><retract node='urn:example:n'><item id='{generated}'/></retract></pubsub>",
        )
        assert retract.type is IqType.RESULT
        assert await items(a, "alice@hub.test", "urn:example:n") == []
        delete = await iq(
            a, f"<pubsub xmlns='{PUBSUB}#owner'><delete node='urn:example:n'/></pubsub>"
        )
        assert delete.type is IqType.RESULT
        assert await items_refused(a, "alice@hub.test", "urn:example:n") == ("item-not-found", None)


async def test_publish_options_create_and_precondition() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        a.take()
        ok = await publish(
            a,
            DEVICES,
            "current",
            "<devices xmlns='urn:xmpp:omemo:2'/>",
            options(access_model="open", max_items="max"),
        )
        assert ok.type is IqType.RESULT
        conf = await iq(
            a, f"<pubsub xmlns='{PUBSUB}#owner'><configure node='{DEVICES}'/></pubsub>", kind="get"
        )
        values = {f.get("var"): f[0].text for f in conf.payload[0][0][0]}
        assert values["pubsub#access_model"] == "open"
        assert values["pubsub#max_items"] == "256"
        clash = await publish(
            a,
            DEVICES,
            "current",
            "<devices xmlns='urn:xmpp:omemo:2'/>",
            options(access_model="presence"),
        )
        assert condition(clash) == ("conflict", "precondition-not-met")
        bad = await publish(a, "n2", "i", "<x xmlns='urn:e'/>", options(access_model="authorize"))
        assert condition(bad) == ("not-acceptable", "unsupported-access-model")
        # The owner can reconfigure, after which the same options match.
        form = (
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            f"<value>{PUBSUB}#node_config</value></field><field var='pubsub#access_model'>"
            "<value>presence</value></field></x>"
        )
        done = await iq(
            a,
            f"<pubsub xmlns='{PUBSUB}#owner'><configure node='{DEVICES}'>{form}</configure></pubsub>",
        )
        assert done.type is IqType.RESULT
        again = await publish(
            a,
            DEVICES,
            "current",
            "<devices xmlns='urn:xmpp:omemo:2'/>",
            options(access_model="presence"),
        )
        assert again.type is IqType.RESULT


async def test_access_models() -> None:
    async with running_hub() as kit:
        for name in ("alice", "bob", "carol"):
            await kit.account(name)
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b")
        c = await kit.connect("carol", "c")
        # Bob may see Alice's presence; Carol may not.
        await b.send("<presence xmlns='jabber:client' to='alice@hub.test' type='subscribe'/>")
        await a.send("<presence xmlns='jabber:client' to='bob@hub.test' type='subscribed'/>")
        for cl in (a, b, c):
            cl.take()
        await publish(a, "presence-node", "1", "<x xmlns='urn:e' v='p'/>")
        await publish(a, "open-node", "1", "<x xmlns='urn:e' v='o'/>", options(access_model="open"))
        await publish(
            a, "private-node", "1", "<x xmlns='urn:e' v='w'/>", options(access_model="whitelist")
        )
        assert await items(b, "alice@hub.test", "presence-node") == [("1", "p")]
        assert await items_refused(c, "alice@hub.test", "presence-node") == (
            "not-authorized",
            "presence-subscription-required",
        )
        assert await items(c, "alice@hub.test", "open-node") == [("1", "o")]
        assert await items_refused(b, "alice@hub.test", "private-node") == (
            "not-allowed",
            "closed-node",
        )
        assert await items(a, "alice@hub.test", "private-node") == [("1", "w")]
        forbidden = await publish(b, "x", "1", "<x xmlns='urn:e'/>")  # to Bob's own account: fine
        assert forbidden.type is IqType.RESULT
        foreign = await iq(
            b,
            f"<pubsub xmlns='{PUBSUB}'><publish node='x'><item><x xmlns='urn:e'/></item></publish></pubsub>",
            to="alice@hub.test",
        )
        assert condition(foreign) == ("forbidden", None)
        assert await items_refused(c, "nobody@hub.test", "open-node") == ("item-not-found", None)


async def test_notifications_follow_notify_caps_and_last_item_on_login() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("bob")
        a = await kit.connect("alice", "a")
        b = await kit.connect("bob", "b")
        await b.send("<presence xmlns='jabber:client' to='alice@hub.test' type='subscribe'/>")
        await a.send("<presence xmlns='jabber:client' to='bob@hub.test' type='subscribed'/>")
        await with_caps(kit, b, [DEVICES + "+notify"])
        await with_caps(kit, a, [])  # Alice's own client does not want notifications
        a.take()
        b.take()
        await publish(
            a, DEVICES, "current", "<devices xmlns='urn:xmpp:omemo:2'><device id='1'/></devices>"
        )
        assert events(b) == [("alice@hub.test", DEVICES, ["current"])]
        assert events(a) == []  # no +notify, no event
        await publish(a, "urn:other", "x", "<x xmlns='urn:e'/>")
        assert events(b) == []  # Bob only wants the device list
        # A new client of Bob with the same caps gets the newest item at once (cached ver).
        b2 = await kit.connect("bob", "b2", available=False)
        await with_caps(kit, b2, [DEVICES + "+notify"])
        await kit.hub.ctx.drain_tasks()
        assert events(b2) == [("alice@hub.test", DEVICES, ["current"])]


async def test_caps_with_a_wrong_hash_serve_only_that_session() -> None:
    async with running_hub() as kit:
        await kit.account("bob")
        b = await kit.connect("bob", "b")
        b.take()
        await b.send(
            "<presence xmlns='jabber:client'><c xmlns='http://jabber.org/protocol/caps' "
            "hash='sha-1' node='n' ver='forged'/></presence>"
        )
        (q,) = [s for s in b.stanzas() if isinstance(s, Iq)]
        await b.send(
            f"<iq xmlns='jabber:client' type='result' id='{q.id}' to='{DOMAIN}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'>"
            f"<feature var='{DEVICES}+notify'/></query></iq>"
        )
        assert b.session.wants_notify(DEVICES)
        b2 = await kit.connect("bob", "b2", available=False)
        await b2.send(
            "<presence xmlns='jabber:client'><c xmlns='http://jabber.org/protocol/caps' "
            "hash='sha-1' node='n' ver='forged'/></presence>"
        )
        assert [s for s in b2.stanzas() if isinstance(s, Iq)]  # not cached: asked again


async def test_explicit_subscription_to_an_open_node() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        await kit.account("carol")
        a = await kit.connect("alice", "a")
        c = await kit.connect("carol", "c")
        await publish(a, "feed", "1", "<x xmlns='urn:e'/>", options(access_model="open"))
        sub = await iq(
            c,
            f"<pubsub xmlns='{PUBSUB}'><subscribe node='feed' jid='carol@hub.test'/></pubsub>",
            to="alice@hub.test",
        )
        assert sub.type is IqType.RESULT
        bad = await iq(
            c,
            f"<pubsub xmlns='{PUBSUB}'><subscribe node='feed' jid='alice@hub.test'/></pubsub>",
            to="alice@hub.test",
        )
        assert condition(bad) == ("bad-request", "invalid-jid")
        c.take()
        await publish(a, "feed", "2", "<x xmlns='urn:e'/>")
        assert events(c) == [("alice@hub.test", "feed", ["2"])]
        unsub = await iq(
            c,
            f"<pubsub xmlns='{PUBSUB}'><unsubscribe node='feed' jid='carol@hub.test'/></pubsub>",
            to="alice@hub.test",
        )
        assert unsub.type is IqType.RESULT
        await publish(a, "feed", "3", "<x xmlns='urn:e'/>")
        assert events(c) == []


def bundle(prekeys: int) -> str:
    keys = "".join(f"<pk id='{i}'>{'A' * 44}</pk>" for i in range(prekeys))
    return (
        "<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>"
        + "B" * 44
        + "</spk><spks>"
        + "C" * 88
        + "</spks><ik>"
        + "D" * 44
        + f"</ik><prekeys>{keys}</prekeys></bundle>"
    )


async def test_limits_at_the_boundary() -> None:
    settings = HubSettings(pep_max_nodes=2, pep_max_items=3, pep_max_item_bytes=8192)
    async with running_hub(settings) as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        a.take()
        # A bundle with 100 prekeys is ~7 KiB and fits; a bigger payload does not.
        assert await publish(a, "b", "1", bundle(100)) is not None
        ok = await publish(a, "b", "1", bundle(100))
        assert ok.type is IqType.RESULT
        big = await publish(a, "b", "1", bundle(200))
        assert condition(big) == ("not-acceptable", "payload-too-big")
        # max_items: "max" means the configured maximum; more is refused
        assert (
            await publish(a, "m", "1", "<x xmlns='urn:e'/>", options(max_items="max"))
        ).type is IqType.RESULT
        for i in range(2, 6):
            await publish(a, "m", str(i), "<x xmlns='urn:e'/>")
        assert [i for i, _ in await items(a, "alice@hub.test", "m")] == ["3", "4", "5"]
        assert [i for i, _ in await items(a, "alice@hub.test", "m", " max_items='2'")] == ["4", "5"]
        # node count: two exist, a third is refused
        third = await publish(a, "third", "1", "<x xmlns='urn:e'/>")
        assert condition(third) == ("not-allowed", None)
        too_many = await iq(
            a, f"<pubsub xmlns='{PUBSUB}'><publish node='x'><item/></publish></pubsub>"
        )
        assert condition(too_many) == ("bad-request", "invalid-payload")


async def test_account_disco_advertises_pep_and_lists_readable_nodes() -> None:
    async with running_hub() as kit:
        await kit.account("alice")
        a = await kit.connect("alice", "a")
        await publish(a, "open-node", "1", "<x xmlns='urn:e'/>", options(access_model="open"))
        info = await iq(
            a,
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
            to="alice@hub.test",
            kind="get",
        )
        identities = [
            (i.get("category"), i.get("type"))
            for i in info.payload[0]
            if i.tag.endswith("identity")
        ]
        assert ("pubsub", "pep") in identities
        features = [f.get("var") for f in info.payload[0] if f.tag.endswith("feature")]
        assert f"{PUBSUB}#publish-options" in features
        listed = await iq(
            a,
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
            to="alice@hub.test",
            kind="get",
        )
        assert [i.get("node") for i in listed.payload[0]] == ["open-node"]


@pytest.mark.parametrize(
    ("xml", "ver"),
    [
        (
            # XEP-0115 §5.2, the simple example
            "<query xmlns='http://jabber.org/protocol/disco#info'>"
            "<identity category='client' name='Exodus 0.9.1' type='pc'/>"
            "<feature var='http://jabber.org/protocol/caps'/>"
            "<feature var='http://jabber.org/protocol/disco#info'/>"
            "<feature var='http://jabber.org/protocol/disco#items'/>"
            "<feature var='http://jabber.org/protocol/muc'/></query>",
            "QgayPKawpkPSDYmwT/WM94uAlu0=",
        ),
    ],
)
def test_caps_hash_matches_the_xep_example(xml: str, ver: str) -> None:
    (ev,) = StreamParser(framing=Framing.WEBSOCKET).feed_frame(xml.encode())
    assert isinstance(ev, ElementReceived)
    assert verification_string(ev.element).startswith("client/pc//Exodus 0.9.1<")
    assert caps_hash(ev.element) == ver


async def test_account_byte_quota_at_the_boundary_for_home_and_third_party_accounts() -> None:
    """Every account's stored payloads, all nodes together, stay within ``pep_quota_bytes``;
    the publish that would exceed it is refused and stores nothing; retracting makes room."""
    third_party = "u1@chat.interop.hub.test"
    payload = "<x xmlns='urn:e'>" + "y" * 979 + "</x>"  # 1000 bytes
    async with running_hub(HubSettings(pep_quota_bytes=3000)) as kit:
        kit.approve("chat", "Chat")
        await kit.account("alice")
        await kit.hub.ctx.storage.accounts.create(third_party, CREDS, kit.clock())
        for owner in ("alice", third_party):
            c = await kit.connect(owner, "a")
            c.take()
            assert len(payload.encode()) == 1000
            for i in range(3):  # exactly at the quota: 3 x 1000 in three nodes
                ok = await publish(c, f"n{i}", "1", payload, options(max_items="max"))
                assert ok.type is IqType.RESULT, ok
            bare = c.session.jid.bare
            assert await kit.hub.ctx.storage.pep.bytes_used(str(bare)) == 3000
            over = await publish(c, "n3", "1", "<x xmlns='urn:e'/>")
            assert condition(over) == ("resource-constraint", None)
            assert await kit.hub.ctx.storage.pep.bytes_used(str(bare)) == 3000
            # replacing an item by id with one no bigger fits
            same = await publish(c, "n0", "1", payload)
            assert same.type is IqType.RESULT
            retract = await iq(
                c,
                f"<pubsub xmlns='{PUBSUB}'><retract node='n0'><item id='1'/></retract></pubsub>",
            )
            assert retract.type is IqType.RESULT
            assert (await publish(c, "n3", "1", payload)).type is IqType.RESULT


async def test_explicit_subscriptions_stop_at_the_cap() -> None:
    async with running_hub(HubSettings(pep_max_subscriptions=2)) as kit:
        await kit.account("alice")
        await kit.account("carol")
        a = await kit.connect("alice", "a")
        c = await kit.connect("carol", "c")
        for node in ("f1", "f2", "f3"):
            await publish(a, node, "1", "<x xmlns='urn:e'/>", options(access_model="open"))

        async def subscribe(node: str) -> Iq:
            return await iq(
                c,
                f"<pubsub xmlns='{PUBSUB}'><subscribe node='{node}' jid='carol@hub.test'/>"
                "</pubsub>",
                to="alice@hub.test",
            )

        assert (await subscribe("f1")).type is IqType.RESULT
        assert (await subscribe("f2")).type is IqType.RESULT  # at the cap
        assert condition(await subscribe("f3")) == ("policy-violation", "too-many-subscriptions")
        assert (await subscribe("f1")).type is IqType.RESULT  # an existing one is kept
