"""Federation on a hub without a network: a federated provider's users, their aliases for the
hub's users, enlistment, the consent rules and suspension (issue 15), with a fake s2s port."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

import pytest
import xeddsa

from interlink.errors import StanzaError
from interlink.hub.addressing import Kind
from interlink.hub.context import HubSettings
from interlink.hub.federation import AliasCipher, Enlisted, FederationPort, LinksPort
from interlink.storage.providers import Provider, ProviderMode, ProviderStatus
from interlink.xmpp import ns
from interlink.xmpp.ext import interop
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Iq, Message, Stanza, parse_stanza, to_xml
from interlink.xmpp.xml import parse_fragment
from tests.hub.test_policy import chat, error_of, messages, set_settings
from tests.hubkit import CREDS, DOMAIN, Client, HubKit, running_hub, settle

PROVIDER = "chatprov"
SERVER = "chat.example"
FED = f"alice@{SERVER}"
PHONE = "4915112345678"
HOME = f"{PHONE}@{DOMAIN}"


@dataclass
class FakeS2S:
    sent: list[tuple[str, Stanza]] = field(default_factory=list)

    def send(self, provider_id: str, stanza: Stanza) -> None:
        self.sent.append((provider_id, stanza))

    def take(self) -> list[Stanza]:
        out = [s for _, s in self.sent]
        self.sent.clear()
        return out


def federated_provider(status: ProviderStatus = ProviderStatus.APPROVED) -> Provider:
    return Provider(
        PROVIDER,
        "Chat Example",
        "https://chat.example/hub",
        status=status,
        jwks_url="https://chat.example/jwks",
        services=(DOMAIN,),
        mode=ProviderMode.FEDERATED,
        server_domains=(SERVER,),
    )


def _seed(jid: str) -> bytes:
    return hashlib.sha256(jid.encode()).digest()


def identity_key(jid: str) -> bytes:
    """The Ed25519 identity key each test account enlisted (derived from its JID)."""
    return xeddsa.seed_to_ed25519_pub(_seed(jid))


@dataclass
class Fed:
    kit: HubKit
    s2s: FakeS2S
    home: Client
    enlisted: set[str]

    async def inbound(self, xml: str) -> None:
        el = _parse(xml)
        await self.kit.hub.route_federated(PROVIDER, parse_stanza(el))
        await settle()

    def alias(self, local: str = PHONE) -> str:
        return self.kit.hub.federation.aliases.alias(local, PROVIDER, DOMAIN) + "@" + DOMAIN


def _parse(xml: str) -> Element:
    return parse_fragment(xml)


@asynccontextmanager
async def federation(
    *, opted_in: bool = True, s2s: FakeS2S | None = None, port: FederationPort | None = None
) -> AsyncIterator[Fed]:
    """``s2s``: the fake transport (a new :class:`FakeS2S` if none); ``port``: the hub's s2s
    port, if not ``s2s`` itself (a :class:`LinksPort` the test fulfils)."""
    enlisted = {FED}

    async def enlisted_account(jid: str) -> Enlisted | None:
        return Enlisted(PROVIDER, identity_key(jid)) if jid in enlisted else None

    s2s = s2s if s2s is not None else FakeS2S()
    async with running_hub(
        HubSettings(),
        enlisted_account=enlisted_account,
        federation_port=port if port is not None else s2s,
    ) as kit:
        kit.operator.provider_changed(federated_provider())
        # enlistment creates the federated user's account row (interop_accounts needs one)
        await kit.hub.ctx.storage.accounts.create(FED, CREDS, kit.clock())
        await kit.account(PHONE)
        home = await kit.connect(HOME, "phone")
        if opted_in:
            assert (await set_settings(home, enabled="true")).get("type") == "result"
        home.take()
        yield Fed(kit, s2s, home, enlisted)


def test_aliases_are_per_provider_and_reversible_only_with_the_key() -> None:
    cipher = AliasCipher(bytes(range(64)))
    a = cipher.alias(PHONE, "p1", DOMAIN)
    assert a == cipher.alias(PHONE, "p1", DOMAIN)  # one address per provider
    assert a != cipher.alias(PHONE, "p2", DOMAIN)  # unlinkable between providers
    assert PHONE not in a
    assert a.startswith("g")
    assert JID.parse(f"{a}@{DOMAIN}").local == a  # a valid, already normalised localpart
    assert cipher.resolve(a, "p1", DOMAIN) == PHONE
    assert cipher.resolve(a, "p2", DOMAIN) is None
    assert cipher.resolve(a, "p1", "other.test") is None
    assert AliasCipher(bytes(64)).resolve(a, "p1", DOMAIN) is None
    assert cipher.resolve(PHONE, "p1", DOMAIN) is None
    assert cipher.resolve("g!!", "p1", DOMAIN) is None


async def test_federated_addresses_are_located_while_the_provider_is_approved() -> None:
    async with federation() as fed:
        addressing = fed.kit.hub.ctx.addressing
        where = addressing.locate(JID.parse(FED))
        assert (where.kind, where.provider_id, where.service) == (
            Kind.FEDERATED,
            PROVIDER,
            DOMAIN,
        )
        assert not addressing.serves(SERVER)
        fed.kit.operator.provider_changed(federated_provider(ProviderStatus.SUSPENDED))
        assert addressing.locate(JID.parse(FED)).kind is Kind.REMOTE
        assert addressing.providers.server_domain_owner(SERVER) == PROVIDER


async def test_a_federated_message_is_a_request_to_the_alias_and_the_reply_leaves_as_alias() -> (
    None
):
    async with federation() as fed:
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FED}/phone' to='{fed.alias()}' id='f1' "
            "type='chat'><body>hello</body></message>"
        )
        (got,) = messages(fed.home)
        assert got.get("from") == f"{FED}/phone"
        mark = got.find(interop.MARKER)
        assert mark is not None
        assert mark.get("provider") == PROVIDER
        assert mark.get("request") == "true"
        # a reply before accepting is refused locally; nothing goes over s2s
        await fed.home.send(chat(FED, "too early"))
        assert error_of(messages(fed.home)[0])[0] == "policy-violation"
        await fed.home.send(
            f"<iq xmlns='jabber:client' type='set' id='a'>"
            f"<accept xmlns='{interop.NS}' jid='{FED}'/></iq>"
        )
        fed.home.take()
        await fed.home.send(chat(f"{FED}/phone", "welcome"))
        (out,) = fed.s2s.take()
        assert isinstance(out, Message)
        assert out.from_ == JID.parse(f"{fed.alias()}/phone")
        assert out.to == JID.parse(f"{FED}/phone")
        assert PHONE not in to_xml(out, ns.CLIENT)


async def test_not_opted_in_unenlisted_and_phone_addresses_get_the_generic_refusal() -> None:
    async with federation(opted_in=False) as fed:
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FED}/x' to='{fed.alias()}' id='n1'>"
            "<body>hi</body></message>"
        )
        assert messages(fed.home) == []
        (answer,) = fed.s2s.take()
        assert answer.to == JID.parse(f"{FED}/x")
        assert str(answer.from_).startswith("g")  # the error comes from the alias as well
        refusal = to_xml(answer, ns.CLIENT)
        assert "service-unavailable" in refusal
        assert PHONE not in refusal
        # the same answer for a guessed phone-number address and for an unenlisted sender
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FED}/x' to='{HOME}' id='n2'>"
            "<body>hi</body></message>"
        )
        (guessed,) = fed.s2s.take()
        assert guessed.from_ == JID.parse(DOMAIN)  # no alias for a guessed address
        assert "service-unavailable" in to_xml(guessed, ns.CLIENT)
        assert PHONE not in to_xml(guessed, ns.CLIENT)
        fed.enlisted.clear()
        fed.kit.hub.federation.forget(JID.parse(FED))
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FED}/x' to='{fed.alias()}' id='n3'>"
            "<body>hi</body></message>"
        )
        (unenlisted,) = fed.s2s.take()
        assert "service-unavailable" in to_xml(unenlisted, ns.CLIENT)
        refusals = fed.kit.hub.ctx.refusals
        assert refusals["s2s-not-an-alias"] == 1
        assert refusals["s2s-not-enlisted"] == 1


async def test_a_gatekeeper_user_cannot_reach_an_unenlisted_federated_user() -> None:
    async with federation() as fed:
        await fed.home.send(chat(f"bob@{SERVER}", "hi"))
        (refused,) = messages(fed.home)
        assert error_of(refused)[0] == "service-unavailable"


async def test_pep_queries_to_a_federated_user_go_to_its_server() -> None:
    async with federation() as fed:
        await fed.inbound(  # the federated user writes first: a conversation exists
            f"<message xmlns='jabber:client' from='{FED}/p' to='{fed.alias()}' id='f1' "
            "type='chat'><body>hello</body></message>"
        )
        fed.home.take()
        await fed.home.send(
            f"<iq xmlns='jabber:client' type='get' id='b1' to='{FED}'>"
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
            "<items node='urn:xmpp:omemo:2:devices'/></pubsub></iq>"
        )
        (query,) = fed.s2s.take()
        assert isinstance(query, Iq)
        assert query.to == JID.parse(FED)
        assert query.from_ == JID.parse(f"{fed.alias()}/phone")
        # its server's answer comes back to the resource behind the alias
        await fed.inbound(
            f"<iq xmlns='jabber:client' type='result' id='b1' from='{FED}' "
            f"to='{fed.alias()}/phone'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
            "<items node='urn:xmpp:omemo:2:devices'/></pubsub></iq>"
        )
        (answer,) = [el for el in fed.home.take() if el.tag == "{jabber:client}iq"]
        assert answer.get("type") == "result"
        assert answer.get("id") == "b1"


async def test_where_a_stanza_names_its_own_sender_the_alias_is_named_both_ways() -> None:
    """Aliases in every field: a gatekeeper user naming itself (an XEP-0060 subscription's
    ``jid``, its own devices' OMEMO 2 ``<keys/>``) is named by its alias over s2s; what a
    federated server addresses to the alias inside a stanza reaches the user as its own
    address. Another of the hub's users named is still refused (the leak check)."""
    async with federation() as fed:
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FED}/p' to='{fed.alias()}' id='f1' "
            "type='chat'><body>hello</body></message>"
        )
        fed.home.take()
        await fed.home.send(
            f"<iq xmlns='jabber:client' type='set' id='s1' to='{FED}'>"
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
            f"<subscribe node='urn:xmpp:omemo:2:devices' jid='{HOME}'/></pubsub></iq>"
        )
        (query,) = fed.s2s.take()
        xml = to_xml(query, ns.CLIENT)
        assert f'jid="{fed.alias()}"' in xml
        assert PHONE not in xml
        omemo = "urn:xmpp:omemo:2"
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FED}/p' to='{fed.alias()}' id='f2' "
            f"type='chat'><encrypted xmlns='{omemo}'><header sid='7'>"
            f"<keys jid='{fed.alias()}'><key rid='9'>AAAA</key></keys>"
            f"<keys jid='{FED}'><key rid='8'>AAAA</key></keys></header></encrypted></message>"
        )
        (got,) = messages(fed.home)
        keys = [k.get("jid") for k in got.iter(f"{{{omemo}}}keys")]
        assert keys == [HOME, FED]
        other = f"4930999@{DOMAIN}"
        await fed.home.send(
            f"<iq xmlns='jabber:client' type='set' id='s2' to='{FED}'>"
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
            f"<subscribe node='urn:xmpp:omemo:2:devices' jid='{other}'/></pubsub></iq>"
        )
        assert fed.kit.hub.ctx.refusals["s2s-address-leak"] == 1


async def test_an_address_of_the_hubs_users_never_leaves_over_s2s() -> None:
    async with federation() as fed:
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FED}/p' to='{fed.alias()}' id='f1' "
            "type='chat'><body>hello</body></message>"
        )
        await fed.home.send(
            f"<iq xmlns='jabber:client' type='set' id='a'>"
            f"<accept xmlns='{interop.NS}' jid='{FED}'/></iq>"
        )
        fed.home.take()
        await fed.home.send(chat(FED, f"write to {HOME} instead"))
        (refused,) = messages(fed.home)
        assert error_of(refused)[0] == "not-allowed"
        assert fed.kit.hub.ctx.refusals["s2s-address-leak"] == 1
        third_party = JID.parse(f"u@{PROVIDER}.interop.{DOMAIN}")
        with pytest.raises(StanzaError, match="only this hub's users federate"):
            fed.kit.hub.federation.deliver(Message(JID.parse(FED), third_party, "m", None, ()))


async def test_a_disabled_federated_account_reaches_no_one_until_enabled() -> None:
    async with federation() as fed:
        fed.kit.operator.account_disabled(FED, True)
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FED}/x' to='{fed.alias()}' id='d1' "
            "type='chat'><body>hi</body></message>"
        )
        assert messages(fed.home) == []
        (refused,) = fed.s2s.take()
        assert "service-unavailable" in to_xml(refused, ns.CLIENT)  # the generic refusal
        assert fed.kit.hub.ctx.refusals["s2s-account-disabled"] == 1
        fed.kit.operator.account_disabled(FED, False)
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FED}/x' to='{fed.alias()}' id='d2' "
            "type='chat'><body>hi again</body></message>"
        )
        (got,) = messages(fed.home)
        assert got.get("id") == "d2"


async def test_suspension_makes_federated_users_unreachable_at_once() -> None:
    async with federation() as fed:
        fed.kit.operator.provider_changed(federated_provider(ProviderStatus.SUSPENDED))
        await fed.home.send(chat(FED, "hi"))
        (refused,) = messages(fed.home)
        assert error_of(refused)[0] == "remote-server-not-found"
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FED}/x' to='{fed.alias()}' id='n1'>"
            "<body>hi</body></message>"
        )
        assert messages(fed.home) == []


async def test_a_gatekeeper_user_asks_for_its_alias_towards_a_federated_user() -> None:
    async with federation() as fed:
        await fed.home.send(
            f"<iq xmlns='jabber:client' type='get' id='al'>"
            f"<alias xmlns='{interop.NS}' jid='{FED}/phone'/></iq>"
        )
        (answer,) = [el for el in fed.home.take() if el.tag == "{jabber:client}iq"]
        assert answer.get("type") == "result"
        alias = answer.find(interop.ALIAS)
        assert alias is not None
        assert alias.get("jid") == FED
        assert alias.get("alias") == fed.alias()
        # not a federated address: item-not-found; a third party asking: not for it
        await fed.home.send(
            f"<iq xmlns='jabber:client' type='get' id='al2'>"
            f"<alias xmlns='{interop.NS}' jid='someone@{DOMAIN}'/></iq>"
        )
        (refused,) = [el for el in fed.home.take() if el.tag == "{jabber:client}iq"]
        assert error_of(refused)[0] == "item-not-found"
        await fed.home.send(
            f"<iq xmlns='jabber:client' type='set' id='al3'>"
            f"<alias xmlns='{interop.NS}' jid='{FED}'/></iq>"
        )
        (wrong,) = [el for el in fed.home.take() if el.tag == "{jabber:client}iq"]
        assert error_of(wrong)[0] == "bad-request"


def sent_presences(fed: Fed) -> list[tuple[str, str | None, str | None]]:
    """(type, from, to) of each presence that left over s2s (none may name the phone number)."""
    out = []
    for stanza in fed.s2s.take():
        xml = to_xml(stanza, ns.CLIENT)
        assert PHONE not in xml
        if xml.startswith("<presence"):
            el = parse_fragment(xml)
            out.append((el.get("type", "available"), el.get("from"), el.get("to")))
    return out


def presence_in(client: Client) -> list[Element]:
    return [el for el in client.take() if el.tag == "{jabber:client}presence"]


async def accepted(fed: Fed) -> None:
    """A conversation the federated user started and the gatekeeper user accepted."""
    await fed.inbound(
        f"<message xmlns='jabber:client' from='{FED}/p' to='{fed.alias()}' id='f1' "
        "type='chat'><body>hello</body></message>"
    )
    await fed.home.send(
        f"<iq xmlns='jabber:client' type='set' id='a'>"
        f"<accept xmlns='{interop.NS}' jid='{FED}'/></iq>"
    )
    fed.home.take()
    fed.s2s.take()


async def test_a_gatekeeper_user_subscribes_to_a_federated_user_over_s2s() -> None:
    """RFC 6121 §3 with the contact's half on its own server: the request leaves under the
    alias, the approval and the contact's presence come back, and the user's next broadcast
    and unavailable go to the contact's server; a probe goes out at the next login."""
    async with federation() as fed:
        await accepted(fed)
        alias = fed.alias()
        await fed.home.send("<presence xmlns='jabber:client'/>")  # available
        await fed.home.send(f"<presence xmlns='jabber:client' to='{FED}' type='subscribe'/>")
        assert sent_presences(fed) == [("subscribe", alias, FED)]
        roster = fed.kit.hub.ctx.storage.roster
        item = await roster.get(HOME, FED)
        assert item is not None
        assert item.ask
        fed.home.take()
        await fed.inbound(
            f"<presence xmlns='jabber:client' from='{FED}' to='{alias}' type='subscribed'/>"
        )
        await fed.inbound(f"<presence xmlns='jabber:client' from='{FED}/p' to='{alias}'/>")
        item = await roster.get(HOME, FED)
        assert item is not None
        assert item.subscription.has_to
        got = presence_in(fed.home)
        assert [(el.get("type"), el.get("from")) for el in got] == [
            ("subscribed", FED),
            (None, f"{FED}/p"),
        ]
        assert got[1].find(interop.MARKER) is not None  # from a third party: marked
        # a subscription "to" only: the user's broadcasts do not go there
        await fed.home.send("<presence xmlns='jabber:client'><show>away</show></presence>")
        assert sent_presences(fed) == []
        # the next login probes the contact's server from the user's (aliased) bare JID
        again = await fed.kit.connect(HOME, "laptop")
        await again.send("<presence xmlns='jabber:client'/>")
        assert ("probe", alias, FED) in sent_presences(fed)


async def test_a_federated_users_subscription_is_approved_and_presence_flows_to_it() -> None:
    async with federation() as fed:
        await accepted(fed)
        alias = fed.alias()
        await fed.home.send("<presence xmlns='jabber:client'/>")
        fed.home.take()
        await fed.inbound(
            f"<presence xmlns='jabber:client' from='{FED}' to='{alias}' type='subscribe'/>"
        )
        (request,) = presence_in(fed.home)
        assert (request.get("type"), request.get("from")) == ("subscribe", FED)
        assert len(await fed.kit.hub.ctx.storage.roster.pending(HOME)) == 1
        await fed.home.send(f"<presence xmlns='jabber:client' to='{FED}' type='subscribed'/>")
        # the approval, then the user's current presence, each from the alias
        assert sent_presences(fed) == [
            ("subscribed", alias, FED),
            ("available", f"{alias}/phone", FED),
        ]
        await fed.home.send("<presence xmlns='jabber:client'><show>dnd</show></presence>")
        assert sent_presences(fed) == [("available", f"{alias}/phone", FED)]
        # its server probes: answered from the user's available resources
        await fed.inbound(
            f"<presence xmlns='jabber:client' from='{FED}' to='{alias}' type='probe'/>"
        )
        assert sent_presences(fed) == [("available", f"{alias}/phone", FED)]
        # a probe from someone not subscribed reveals nothing
        fed.enlisted.add(f"bob@{SERVER}")
        await fed.kit.hub.ctx.storage.accounts.create(f"bob@{SERVER}", CREDS, fed.kit.clock())
        await fed.inbound(
            f"<presence xmlns='jabber:client' from='bob@{SERVER}' to='{alias}' type='probe'/>"
        )
        assert sent_presences(fed) == []
        await fed.home.send("<presence xmlns='jabber:client' type='unavailable'/>")
        assert sent_presences(fed) == [("unavailable", f"{alias}/phone", FED)]


async def test_presence_from_a_federated_stranger_is_held_by_the_request_rules() -> None:
    """Before any conversation: a not-opted-in user gets nothing, and nothing goes back."""
    async with federation(opted_in=False) as fed:
        alias = fed.alias()
        await fed.inbound(
            f"<presence xmlns='jabber:client' from='{FED}' to='{alias}' type='subscribe'/>"
        )
        await fed.inbound(f"<presence xmlns='jabber:client' from='{FED}/p' to='{alias}'/>")
        assert presence_in(fed.home) == []
        assert await fed.kit.hub.ctx.storage.roster.pending(HOME) == []


def omemo2_bundle(key: bytes) -> str:
    ik = base64.b64encode(key).decode()
    return f"<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>AAAA</spk><ik>{ik}</ik></bundle>"


def legacy_bundle(key: bytes) -> str:
    ik = base64.b64encode(b"\x05" + xeddsa.ed25519_pub_to_curve25519_pub(key)).decode()
    return (
        "<bundle xmlns='eu.siacs.conversations.axolotl'>"
        f"<signedPreKeyPublic signedPreKeyId='1'>AAAA</signedPreKeyPublic>"
        f"<identityKey>{ik}</identityKey></bundle>"
    )


async def test_only_bundles_with_the_enlisted_identity_key_reach_gatekeeper_users() -> None:
    """Issue 15 item 4: a bundle a federated server answers (either OMEMO version) passes when
    its identity key is the one enlisted for its owner; another key is refused with
    ``not-acceptable`` (counted), and a PEP notification carrying one is dropped."""
    async with federation() as fed:
        await accepted(fed)
        alias = fed.alias()
        good, bad = identity_key(FED), identity_key("mallory@elsewhere")
        cases = [
            ("urn:xmpp:omemo:2:bundles", omemo2_bundle(good), "result"),
            ("eu.siacs.conversations.axolotl.bundles:5", legacy_bundle(good), "result"),
            ("urn:xmpp:omemo:2:bundles", omemo2_bundle(bad), "error"),
            ("eu.siacs.conversations.axolotl.bundles:5", legacy_bundle(bad), "error"),
            ("urn:xmpp:omemo:2:bundles", "<bundle xmlns='urn:xmpp:omemo:2'/>", "error"),
        ]
        for n, (node, bundle, expected) in enumerate(cases):
            await fed.inbound(
                f"<iq xmlns='jabber:client' type='result' id='b{n}' from='{FED}' "
                f"to='{alias}/phone'><pubsub xmlns='http://jabber.org/protocol/pubsub'>"
                f"<items node='{node}'><item id='5'>{bundle}</item></items></pubsub></iq>"
            )
            (answer,) = [el for el in fed.home.take() if el.tag == "{jabber:client}iq"]
            assert (answer.get("type"), answer.get("id"), answer.get("from")) == (
                expected,
                f"b{n}",
                FED,
            ), node
            if expected == "error":
                condition, text = error_of(answer)
                assert condition == "not-acceptable"
                assert f"not the one {FED} enlisted" in (text or "")
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FED}' to='{alias}' id='e1'>"
            "<event xmlns='http://jabber.org/protocol/pubsub#event'>"
            f"<items node='urn:xmpp:omemo:2:bundles'><item id='5'>{omemo2_bundle(bad)}</item>"
            "</items></event></message>"
        )
        assert messages(fed.home) == []
        assert fed.kit.hub.ctx.refusals["s2s-bundle-key-not-enlisted"] == 4
        assert fed.kit.hub.federation.refusals[PROVIDER, "s2s-bundle-key-not-enlisted"] == 4


async def test_the_links_port_refuses_until_the_transport_fulfils_it_once() -> None:
    """The composition root gives the hub a LinksPort before the s2s transport exists (the
    transport routes through the hub): sending before it is fulfilled is refused as with s2s
    off, afterwards it reaches the transport, and a second transport is a wiring mistake."""
    links = LinksPort()
    async with federation(port=links) as fed:
        await fed.home.send(chat(FED, "too early"))
        (refused,) = messages(fed.home)
        assert error_of(refused)[0] == "remote-server-not-found"
        links.fulfil(fed.s2s)
        await fed.home.send(chat(FED, "now"))
        (sent,) = fed.s2s.take()
        assert sent.to == JID.parse(FED)
        with pytest.raises(RuntimeError):
            links.fulfil(FakeS2S())
