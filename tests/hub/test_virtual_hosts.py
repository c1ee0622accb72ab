"""Several gatekeeper services on one hub: separate accounts, separate providers, no traffic
between the services (service tests on the in-memory hub)."""

from __future__ import annotations

from xml.etree.ElementTree import Element

from interlink.xmpp.jid import JID
from tests.hubkit import CREDS, Client, HubKit, running_hub

WA, MSG = "wa.test", "msg.test"
STANZA_NS = "{jabber:client}"


async def account(kit: HubKit, jid: str) -> None:
    await kit.hub.ctx.storage.accounts.create(jid, CREDS, kit.clock())


def errors(client: Client) -> list[Element]:
    return [el for el in client.take() if el.get("type") == "error"]


async def test_the_same_name_on_two_services_is_two_accounts() -> None:
    async with running_hub(services=(WA, MSG)) as kit:
        await account(kit, f"alice@{WA}")
        await account(kit, f"alice@{MSG}")
        await account(kit, f"bob@{WA}")
        wa = await kit.connect(f"alice@{WA}", "a")
        msg = await kit.connect(f"alice@{MSG}", "a")
        assert str(wa.session.jid) == f"alice@{WA}/a"
        assert str(msg.session.jid) == f"alice@{MSG}/a"
        # A bare user name is the default service's.
        bob = await kit.connect("bob", "b")
        assert str(bob.session.jid) == f"bob@{WA}/b"
        wa.take()
        msg.take()
        await bob.send(f"<message xmlns='jabber:client' to='alice@{WA}'><body>hi</body></message>")
        assert [el.findtext(f"{STANZA_NS}body") for el in wa.take()] == ["hi"]
        assert msg.take() == []


async def test_users_of_two_services_do_not_exchange_stanzas() -> None:
    async with running_hub(services=(WA, MSG)) as kit:
        await account(kit, f"alice@{WA}")
        await account(kit, f"bob@{MSG}")
        alice = await kit.connect(f"alice@{WA}", "a")
        bob = await kit.connect(f"bob@{MSG}", "b")
        alice.take()
        bob.take()
        await alice.send(f"<message xmlns='jabber:client' to='bob@{MSG}'><body>x</body></message>")
        (error,) = errors(alice)
        assert (
            error.find(
                f"{STANZA_NS}error/{{urn:ietf:params:xml:ns:xmpp-stanzas}}service-unavailable"
            )
            is not None
        )
        assert "another service" in (
            error.findtext(f"{STANZA_NS}error/{{urn:ietf:params:xml:ns:xmpp-stanzas}}text") or ""
        )
        assert bob.take() == []
        await alice.send(f"<presence xmlns='jabber:client' to='bob@{MSG}' type='subscribe'/>")
        assert bob.take() == []
        await alice.send(
            f"<iq xmlns='jabber:client' type='get' id='v' to='bob@{MSG}/b'>"
            "<query xmlns='jabber:iq:version'/></iq>"
        )
        assert [el.get("type") for el in alice.take()] == ["error"]
        assert bob.take() == []


async def test_a_provider_reaches_only_the_services_it_is_approved_for() -> None:
    async with running_hub(services=(WA, MSG)) as kit:
        kit.approve("chat", "Chat", WA)
        for jid in (f"alice@{WA}", f"bob@{MSG}", f"x@chat.interop.{WA}", f"x@chat.interop.{MSG}"):
            await account(kit, jid)
        alice = await kit.connect(f"alice@{WA}", "a")
        bob = await kit.connect(f"bob@{MSG}", "b")
        for user in (alice, bob):
            await user.send(
                "<iq xmlns='jabber:client' type='set' id='s'>"
                "<settings xmlns='urn:interlink:interop:0' enabled='true'/></iq>"
            )
            user.take()
        on_wa = await kit.connect(f"x@chat.interop.{WA}", "app")
        on_msg = await kit.connect(f"x@chat.interop.{MSG}", "app")
        on_wa.take()
        on_msg.take()
        body = "<body>hello</body>"
        await on_wa.send(f"<message xmlns='jabber:client' to='alice@{WA}'>{body}</message>")
        assert [el.findtext(f"{STANZA_NS}body") for el in alice.take()] == ["hello"]
        # Its user on the service it is not approved for, and across services: the generic
        # refusal a nonexistent account gets.
        await on_msg.send(f"<message xmlns='jabber:client' to='bob@{MSG}'>{body}</message>")
        await on_wa.send(f"<message xmlns='jabber:client' to='bob@{MSG}'>{body}</message>")
        assert bob.take() == []
        for sender in (on_msg, on_wa):
            (error,) = errors(sender)
            condition = error.find(f"{STANZA_NS}error")
            assert condition is not None
            assert [child.tag.split("}")[1] for child in condition] == ["service-unavailable"]
        # The providers a user may choose from are their service's.
        await bob.send(
            "<iq xmlns='jabber:client' type='get' id='p'>"
            "<providers xmlns='urn:interlink:interop:0'/></iq>"
        )
        (answer,) = bob.take()
        assert list(answer[0]) == []
        await alice.send(
            "<iq xmlns='jabber:client' type='get' id='p'>"
            "<providers xmlns='urn:interlink:interop:0'/></iq>"
        )
        (answer,) = alice.take()
        assert [p.get("id") for p in answer[0]] == ["chat"]


async def test_a_stream_authenticates_accounts_of_its_own_service_only() -> None:
    async with running_hub(services=(WA, MSG)) as kit:
        hub = kit.hub
        assert str(hub.account_jid("alice", MSG)) == f"alice@{MSG}"
        assert str(hub.account_jid("alice")) == f"alice@{WA}"  # no host named: the default
        assert str(hub.account_jid(f"x@chat.interop.{WA}", WA)) == f"x@chat.interop.{WA}"
        assert hub.account_jid(f"alice@{MSG}", WA) is None
        assert hub.account_jid(f"x@chat.interop.{MSG}", f"chat.interop.{WA}") is None
        assert hub.account_jid("alice@elsewhere.test", WA) is None
        assert hub.account_jid(f"alice@{WA}/r", WA) is None


async def test_pep_gates_refuse_between_two_services() -> None:
    """Review finding (defence in depth): ``InteropPolicy._between`` lets any two gatekeeper
    users through unless one blocked the other, whatever their services, so PEP reads and
    notifications rely on the router and presence code never letting a cross-service
    subscription come about. docs/architecture.md says the service check "holds for messages,
    presence, iqs and PEP alike": the PEP gates must say no between two services too."""
    async with running_hub(services=(WA, MSG)) as kit:
        await account(kit, f"alice@{WA}")
        await account(kit, f"bob@{MSG}")
        policy = kit.hub.router.policy
        alice, bob = JID.parse(f"alice@{WA}"), JID.parse(f"bob@{MSG}")
        assert not await policy.may_query(alice, bob)
        assert not await policy.may_exchange(bob, alice)


async def test_reports_are_about_users_of_the_reporters_service() -> None:
    async with running_hub(services=(WA, MSG)) as kit:
        kit.approve("chat", "Chat", WA, MSG)
        await account(kit, f"bob@{MSG}")
        bob = await kit.connect(f"bob@{MSG}", "b")
        bob.take()
        report = (
            "<iq xmlns='jabber:client' type='set' id='r'><block xmlns='urn:xmpp:blocking'>"
            "<item jid='{}'><report xmlns='urn:xmpp:reporting:1' "
            "reason='urn:xmpp:reporting:spam'/></item></block></iq>"
        )
        await bob.send(report.format(f"x@chat.interop.{WA}"))
        (answer,) = bob.take()
        assert answer.get("type") == "error"
        assert "not a user of your service" in "".join(answer.itertext())
        assert await kit.hub.ctx.storage.policy.reports(10) == []
        await bob.send(report.format(f"x@chat.interop.{MSG}"))
        assert [el.get("type") for el in bob.take()] == ["result"]
        assert len(await kit.hub.ctx.storage.policy.reports(10)) == 1


async def test_presence_to_a_domain_not_served_is_answered_with_an_error() -> None:
    """RFC 6120 §8.3, §10.4: a group join to a service the hub does not have fails at once."""
    async with running_hub(services=(WA,)) as kit:
        await account(kit, f"alice@{WA}")
        alice = await kit.connect(f"alice@{WA}", "a")
        alice.take()
        for to, condition in (
            (f"room@muc.{WA}/alice", "service-unavailable"),
            ("room@conference.example.org/alice", "remote-server-not-found"),
        ):
            await alice.send(f"<presence xmlns='jabber:client' to='{to}'/>")
            (error,) = alice.take()
            assert (error.tag, error.get("type"), error.get("from")) == (
                f"{STANZA_NS}presence",
                "error",
                to,
            )
            found = error.find(f"{STANZA_NS}error")
            assert found is not None
            assert found[0].tag.split("}")[1] == condition
        # Unavailable presence to such an address gets no answer.
        await alice.send(
            f"<presence xmlns='jabber:client' to='room@muc.{WA}/a' type='unavailable'/>"
        )
        assert alice.take() == []
