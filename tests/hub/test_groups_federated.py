"""Federated users as members of rooms (issue 18 item 2 with issue 15), on a hub without a
network: a federated user (``alice@chat.example``, on a provider's own server, reached over a
fake s2s port) is invited, enters, chats, reads the member list, gets the subject, kicks,
destruction and self-ping answers, all over s2s from the room's address; gatekeeper members
show only their per-room aliases in anything that leaves; its invitations are message requests
and its refusals are those of a nonexistent account; it fetches a co-member's keys at the
alias; and it leaves the rooms when its server cannot be reached or its provider is
suspended, nothing being kept for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.federation import Enlisted
from interlink.interop.operator import OperatorState
from interlink.storage.providers import Provider, ProviderStatus
from interlink.xmpp import ns
from interlink.xmpp.ext import interop, muc
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import (
    Iq,
    IqType,
    Message,
    Presence,
    PresenceType,
    Stanza,
    parse_stanza,
    to_xml,
)
from interlink.xmpp.xml import parse_fragment
from tests.hub.test_cluster_rooms import create as cluster_create
from tests.hub.test_cluster_rooms import room_on
from tests.hub.test_cluster_rooms import send as cluster_send
from tests.hub.test_federation import (
    FED,
    HOME,
    PHONE,
    PROVIDER,
    SERVER,
    FakeS2S,
    Fed,
    federated_provider,
    federation,
    identity_key,
)
from tests.hub.test_groups_service import (
    GROUPS,
    OMEMO2_DEVICES,
    ROOM,
    STANZAS,
    admin_set,
    codes,
    create,
    invite,
    publish_devices,
    say,
    user,
)
from tests.hub.test_policy import PROVIDER as PNP
from tests.hub.test_policy import TP, set_settings
from tests.hubkit import CREDS, DOMAIN, running_cluster

FULL = f"{FED}/laptop"


@dataclass
class FailingS2S(FakeS2S):
    """An s2s port that refuses what it is given (no way to reach that server)."""

    failing: bool = False

    def send(self, provider_id: str, stanza: Stanza) -> None:
        if self.failing:
            raise StanzaError(StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND, "unreachable")
        super().send(provider_id, stanza)


@asynccontextmanager
async def world() -> AsyncIterator[Fed]:
    """The federated provider (``chatprov``) and a plug-and-play one (``examplechat``); the
    gatekeeper user (its phone number) owns ``team``, unlocked, and is in it."""
    async with federation(s2s=FailingS2S()) as fed:
        fed.kit.approve(PNP, "Example Chat")
        await fed.kit.hub.ctx.storage.accounts.create(TP, CREDS, fed.kit.clock())
        await create(fed.home)
        fed.home.take()
        yield fed


def room_alias(fed: Fed, local: str = PHONE, room: str = "team") -> str:
    return fed.kit.hub.federation.aliases.room_alias(local, room, DOMAIN) + "@" + DOMAIN


def out(fed: Fed) -> list[Stanza]:
    """What left over s2s since last asked; none of it shows the phone number."""
    sent = fed.s2s.take()
    for stanza in sent:
        assert PHONE not in to_xml(stanza, ns.CLIENT), to_xml(stanza, ns.CLIENT)
    return sent


async def fed_enters(fed: Fed, nick: str = "alice", full: str = FULL) -> list[Stanza]:
    await fed.inbound(
        f"<presence xmlns='jabber:client' from='{full}' to='{ROOM}/{nick}'>"
        f"<x xmlns='{muc.NS}'/></presence>"
    )
    return out(fed)


async def member(fed: Fed, jid: str = FED, affiliation: str = "member") -> None:
    answer = await admin_set(fed.home, f"<item affiliation='{affiliation}' jid='{jid}'/>")
    assert answer.type is IqType.RESULT, to_xml(answer)
    fed.home.take()


def item(stanza: Stanza) -> dict[str, str]:
    x = stanza.find(muc.USER_X)
    assert x is not None
    found = x.find(muc.ITEM)
    assert found is not None
    return dict(found.attrib)


def error_condition(stanza: Stanza) -> str:
    err = stanza.find("{jabber:client}error")
    assert err is not None, to_xml(stanza)
    return err[0].tag.replace("{" + STANZAS + "}", "")


async def test_a_federated_member_enters_chats_and_reads_the_member_list_over_s2s() -> None:
    async with world() as fed:
        await member(fed)
        got = await fed_enters(fed)
        assert all(s.from_ is not None and s.from_.domain == GROUPS for s in got)
        assert all(str(s.to) == FULL for s in got)
        presences = [s for s in got if isinstance(s, Presence)]
        by_nick = {str(p.from_.resource): p for p in presences if p.from_ is not None}
        assert item(by_nick["owner"])["jid"].startswith(room_alias(fed))  # never the number
        assert 110 in codes(by_nick["alice"])
        assert any(isinstance(s, Message) and s.find(muc.SUBJECT) is not None for s in got)
        # the gatekeeper occupant sees it enter, marked as a third party
        (seen,) = [s for s in fed.home.stanzas() if isinstance(s, Presence)]
        assert item(seen)["jid"] == FULL
        x = seen.find(muc.USER_X)
        assert x is not None
        mark = x.find(f"{muc.ITEM}/{interop.MARKER}")
        assert mark is not None
        assert mark.get("provider") == PROVIDER
        # groupchat both ways, its messages marked
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FULL}' to='{ROOM}' type='groupchat' "
            "id='g1'><body>from the federated server</body></message>"
        )
        echo = out(fed)
        assert [m.body for m in echo if isinstance(m, Message)] == ["from the federated server"]
        (heard,) = [s for s in fed.home.stanzas() if isinstance(s, Message)]
        assert heard.body == "from the federated server"
        assert heard.find(interop.MARKER) is not None
        await say(fed.home, "from the gatekeeper")
        (msg,) = out(fed)
        assert isinstance(msg, Message)
        assert (str(msg.from_), msg.body) == (f"{ROOM}/owner", "from the gatekeeper")
        # the member list: the owner by alias, the federated member marked
        await fed.inbound(
            f"<iq xmlns='jabber:client' from='{FULL}' to='{ROOM}' type='get' id='l1'>"
            f"<query xmlns='{muc.NS_ADMIN}'><item affiliation='member'/></query></iq>"
        )
        (listing,) = out(fed)
        assert isinstance(listing, Iq)
        assert listing.type is IqType.RESULT
        query = listing.payload[0]
        assert [i.get("jid") for i in query] == [FED]
        assert query[0].find(interop.MARKER) is not None
        await fed.inbound(
            f"<iq xmlns='jabber:client' from='{FULL}' to='{ROOM}' type='get' id='l2'>"
            f"<query xmlns='{muc.NS_ADMIN}'><item affiliation='owner'/></query></iq>"
        )
        (owners,) = out(fed)
        assert [i.get("jid") for i in owners.payload[0]] == [room_alias(fed)]
        # XEP-0410 self-ping, answered by the room
        await fed.inbound(
            f"<iq xmlns='jabber:client' from='{FULL}' to='{ROOM}/alice' type='get' id='p1'>"
            f"<ping xmlns='{ns.PING}'/></iq>"
        )
        (pong,) = out(fed)
        assert isinstance(pong, Iq)
        assert (pong.type, str(pong.from_)) == (IqType.RESULT, f"{ROOM}/alice")
        # a new subject reaches it
        await fed.home.send(
            f"<message xmlns='jabber:client' type='groupchat' to='{ROOM}' id='s'>"
            "<subject>plans</subject></message>"
        )
        (subject,) = out(fed)
        assert subject.find(muc.SUBJECT) is not None


async def test_kick_ban_and_destruction_reach_a_federated_occupant() -> None:
    async with world() as fed:
        await member(fed)
        await fed_enters(fed)
        fed.home.take()
        await admin_set(fed.home, "<item nick='alice' role='none'><reason>out</reason></item>")
        (kicked,) = out(fed)
        assert isinstance(kicked, Presence)
        assert kicked.type is PresenceType.UNAVAILABLE
        assert 307 in codes(kicked)
        await fed_enters(fed)
        await admin_set(fed.home, f"<item affiliation='outcast' jid='{FED}'/>")
        banned = [s for s in out(fed) if isinstance(s, Presence)]
        assert 301 in codes(banned[0])
        got = await fed_enters(fed)
        assert error_condition(got[0]) == "forbidden"
        await admin_set(fed.home, f"<item affiliation='member' jid='{FED}'/>")
        out(fed)
        await fed_enters(fed)
        await fed.home.send(
            f"<iq xmlns='jabber:client' type='set' id='d' to='{ROOM}'>"
            f"<query xmlns='{muc.NS_OWNER}'><destroy><reason>bye</reason></destroy></query></iq>"
        )
        (gone,) = out(fed)
        assert isinstance(gone, Presence)
        assert gone.type is PresenceType.UNAVAILABLE
        x = gone.find(muc.USER_X)
        assert x is not None
        assert x.find(f"{{{muc.NS_USER}}}destroy") is not None


async def test_invitations_to_a_federated_user_leave_over_s2s_naming_the_inviter_by_alias() -> None:
    async with world() as fed:
        await invite(fed.home, FED)  # mediated: makes it a member of the members-only room
        (invitation,) = out(fed)
        assert isinstance(invitation, Message)
        assert (str(invitation.from_), str(invitation.to)) == (ROOM, FED)
        x = invitation.find(muc.USER_X)
        assert x is not None
        sent = x.find(f"{{{muc.NS_USER}}}invite")
        assert sent is not None
        assert sent.get("from") == room_alias(fed)
        await fed_enters(fed)  # accepting is entering
        fed.home.take()
        # XEP-0249: an ordinary 1:1 message, under the per-provider alias
        await fed.home.send(
            f"<message xmlns='jabber:client' to='{FED}' id='di'>"
            f"<x xmlns='{muc.NS_CONFERENCE}' jid='{ROOM}'/></message>"
        )
        (direct,) = out(fed)
        assert str(direct.from_).split("/")[0] == fed.alias()


async def test_a_federated_users_invitation_is_a_request_and_its_refusal_is_no_accounts() -> None:
    async with world() as fed:
        await member(fed, affiliation="admin")  # may invite (rooms do not let members)
        await fed_enters(fed)
        await fed.kit.account("4915100000002")  # has not opted in
        fed.home.take()

        async def invites(invitee: str, id_: str) -> Stanza:
            await fed.inbound(
                f"<message xmlns='jabber:client' from='{FULL}' to='{ROOM}' id='{id_}'>"
                f"<x xmlns='{muc.NS_USER}'><invite to='{invitee}'/></x></message>"
            )
            (answer,) = out(fed)
            return answer

        not_opted_in = await invites(fed.alias("4915100000002"), "i1")
        nobody = await invites("nobody@" + DOMAIN, "i2")
        phone = await invites(HOME, "i3")  # a number guessed: never taken for an alias
        texts = {to_xml(s, ns.CLIENT).replace(f'id="{s.id}"', "") for s in (not_opted_in, nobody)}
        texts.add(to_xml(phone, ns.CLIENT).replace(f'id="{phone.id}"', ""))
        assert len(texts) == 1, texts  # byte for byte the same
        assert error_condition(nobody) == "service-unavailable"
        assert str(nobody.from_) == ROOM
        # a second gatekeeper user who opted in gets it as a message request
        bob_phone = "4915100000003"
        await fed.kit.account(bob_phone)
        bob = await user(fed.kit, f"{bob_phone}@{DOMAIN}", opted_in=True)
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FULL}' to='{ROOM}' id='i4'>"
            f"<x xmlns='{muc.NS_USER}'><invite to='{fed.alias(bob_phone)}'/></x></message>"
        )
        (notice,) = out(fed)  # no error: the §9.3 notice of a new member, by its alias
        assert item(notice) == {"affiliation": "member", "jid": room_alias(fed, bob_phone)}
        (request,) = [s for s in bob.stanzas() if isinstance(s, Message)]
        assert str(request.from_) == ROOM
        x = request.find(muc.USER_X)
        assert x is not None
        sent = x.find(f"{{{muc.NS_USER}}}invite")
        assert sent is not None
        assert sent.get("from") == FED
        mark = request.find(interop.MARKER)
        assert mark is not None
        assert (mark.get("provider"), mark.get("request")) == (PROVIDER, "true")


async def test_a_federated_member_fetches_a_gatekeeper_members_keys_at_the_room_alias() -> None:
    async with world() as fed:
        await publish_devices(fed.home)
        shown = room_alias(fed)

        async def fetches() -> Iq:
            await fed.inbound(
                f"<iq xmlns='jabber:client' from='{FULL}' to='{shown}' type='get' id='k'>"
                f"<pubsub xmlns='{ns.PUBSUB}'><items node='{OMEMO2_DEVICES}'/></pubsub></iq>"
            )
            (answer,) = out(fed)
            assert isinstance(answer, Iq)
            assert str(answer.from_) == shown
            return answer

        refused = await fetches()  # not a member yet: the answer of no account
        assert refused.type is IqType.ERROR
        assert error_condition(refused) == "service-unavailable"
        await member(fed)
        await fed_enters(fed)
        answer = await fetches()
        assert answer.type is IqType.RESULT, to_xml(answer)
        assert "4242" in to_xml(answer)
        # a message to the alias is not a way around the rules
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FULL}' to='{shown}' id='m'>"
            "<body>hi</body></message>"
        )
        (bounce,) = out(fed)
        assert error_condition(bounce) == "service-unavailable"


async def test_a_suspended_providers_occupants_leave_and_nothing_is_kept_for_them() -> None:
    async with world() as fed:
        await member(fed)
        await fed_enters(fed)
        fed.home.take()
        fed.kit.operator.provider_changed(federated_provider(ProviderStatus.SUSPENDED))
        fed.kit.hub.federation.provider_closed(PROVIDER)  # what the s2s transport does
        await fed.kit.hub.ctx.drain_tasks()
        (left,) = [s for s in fed.home.stanzas() if isinstance(s, Presence)]
        assert left.type is PresenceType.UNAVAILABLE
        assert str(left.from_) == f"{ROOM}/alice"
        await say(fed.home, "still there?")
        assert out(fed) == []
        assert fed.kit.hub.ctx.storage  # nothing queued: the offline store has nothing for it
        queued = await fed.kit.hub.ctx.storage.offline.count(FED)
        assert queued == 0


class ClosingLinks:
    """The s2s transport as operator state sees it: closing a provider's links tells the hub
    (``Federation.provider_closed``), as ``S2SService.close_provider`` does."""

    def __init__(self, fed: Fed) -> None:
        self.fed = fed

    def provider_changed(self, provider: Provider) -> None:
        pass

    def provider_removed(self, provider_id: str) -> None:
        pass

    def close_provider(self, provider_id: str, reason: str) -> int:
        self.fed.kit.hub.federation.provider_closed(provider_id)
        return 1


async def test_a_removed_providers_occupants_leave_their_rooms() -> None:
    async with world() as fed:
        ctx = fed.kit.hub.ctx
        operator = OperatorState(ctx.addressing, ctx.sessions, ClosingLinks(fed))
        operator.provider_changed(federated_provider())
        await member(fed)
        await fed_enters(fed)
        fed.home.take()
        operator.provider_removed(PROVIDER)  # its server domains are forgotten with it
        await ctx.drain_tasks()
        (left,) = [s for s in fed.home.stanzas() if isinstance(s, Presence)]
        assert left.type is PresenceType.UNAVAILABLE
        assert str(left.from_) == f"{ROOM}/alice"
        await say(fed.home, "still there?")
        assert out(fed) == []


async def test_sessions_that_left_are_not_remembered_as_shown_a_federated_occupant() -> None:
    """What the room remembers of whom a federated occupant was shown to is bounded by the
    sessions in the room: one that left is forgotten (it is shown the occupant again if it
    comes back)."""
    async with world() as fed:
        await member(fed)
        await fed_enters(fed)
        bob = await user(fed.kit, "bob", opted_in=True)
        await invite(fed.home, f"bob@{DOMAIN}")
        await bob.send(
            f"<presence xmlns='jabber:client' to='{ROOM}/bob'><x xmlns='{muc.NS}'/></presence>"
        )
        shown = fed.kit.hub.router.groups._shown_to[JID.parse(ROOM)][JID.parse(FED)]
        assert JID.parse(bob.jid) in shown  # it saw alice enter
        await bob.send(f"<presence xmlns='jabber:client' to='{ROOM}/bob' type='unavailable'/>")
        await fed.kit.hub.ctx.drain_tasks()
        shown = fed.kit.hub.router.groups._shown_to[JID.parse(ROOM)][JID.parse(FED)]
        assert JID.parse(bob.jid) not in shown
        assert shown  # the owner's session still is


async def test_an_occupant_its_server_cannot_be_reached_for_leaves() -> None:
    async with world() as fed:
        await member(fed)
        await fed_enters(fed)
        fed.home.take()
        # its client refusing something is no bounce: it stays
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FULL}' to='{ROOM}/owner' type='error' "
            f"id='c'><error type='modify'><bad-request xmlns='{STANZAS}'/></error></message>"
        )
        await fed.kit.hub.ctx.drain_tasks()
        assert fed.home.stanzas() == []
        # its server bounces a stanza of the room
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FULL}' to='{ROOM}/owner' type='error' "
            f"id='e'><error type='cancel'><recipient-unavailable xmlns='{STANZAS}'/></error>"
            "</message>"
        )
        await fed.kit.hub.ctx.drain_tasks()
        (left,) = [s for s in fed.home.stanzas() if isinstance(s, Presence)]
        assert left.type is PresenceType.UNAVAILABLE
        out(fed)
        # no link to its server: the room's next stanza for it fails, and it leaves
        await fed_enters(fed)
        fed.home.take()
        assert isinstance(fed.s2s, FailingS2S)
        fed.s2s.failing = True
        await say(fed.home, "anyone?")
        await fed.kit.hub.ctx.drain_tasks()
        (gone,) = [s for s in fed.home.stanzas() if isinstance(s, Presence)]
        assert gone.type is PresenceType.UNAVAILABLE
        assert str(gone.from_) == f"{ROOM}/alice"
        # a stanza of the room that the s2s link never sent (bounced by the transport)
        fed.s2s.failing = False
        await fed_enters(fed)
        fed.home.take()
        fed.kit.hub.federation.bounce(
            Message(JID.parse(FULL), JID.parse(f"{ROOM}/owner"), "x", None, ()), "lost"
        )
        await fed.kit.hub.ctx.drain_tasks()
        (lost,) = [s for s in fed.home.stanzas() if isinstance(s, Presence)]
        assert lost.type is PresenceType.UNAVAILABLE


async def test_a_federated_user_on_another_server_is_no_member_and_plug_and_play_cannot_add() -> (
    None
):
    async with world() as fed:
        tp = await user(fed.kit, TP)
        await admin_set(fed.home, f"<item affiliation='admin' jid='{TP}'/>")
        await tp.send(
            f"<presence xmlns='jabber:client' to='{ROOM}/tp'><x xmlns='{muc.NS}'/></presence>"
        )
        tp.take()
        # third parties do not add third parties (the same decision as between two providers)
        await invite(tp, FED)
        (refused,) = [s for s in tp.stanzas() if isinstance(s, Message)]
        assert error_condition(refused) == "service-unavailable"
        assert out(fed) == []
        # an address on a server no onboarded provider federates from
        answer = await admin_set(fed.home, f"<item affiliation='member' jid='x@not-{SERVER}'/>")
        assert error_condition(answer) == "remote-server-not-found"


async def test_what_a_federated_member_names_by_alias_reaches_the_room_as_the_room_alias() -> None:
    """A per-provider alias a federated member writes into what it sends a room becomes the
    user's alias in that room: the plug-and-play co-member never sees the number."""
    async with world() as fed:
        await member(fed)
        await admin_set(fed.home, f"<item affiliation='member' jid='{TP}'/>")
        tp = await user(fed.kit, TP)
        await tp.send(
            f"<presence xmlns='jabber:client' to='{ROOM}/tp'><x xmlns='{muc.NS}'/></presence>"
        )
        await fed_enters(fed)
        tp.take()
        await fed.inbound(
            f"<message xmlns='jabber:client' from='{FULL}' to='{ROOM}' type='groupchat' "
            f"id='n'><body>hi</body><mention xmlns='urn:example:0' jid='{fed.alias()}'/>"
            "</message>"
        )
        (heard,) = [s for s in tp.stanzas() if isinstance(s, Message)]
        xml = to_xml(heard)
        assert f'jid="{room_alias(fed)}"' in xml
        assert PHONE not in xml


async def test_in_a_cluster_a_room_answers_a_federated_member_over_its_own_s2s_links() -> None:
    """The room lives on node n0; the federated user's stanzas come in over n1's s2s link
    (forwarded to the room's home): what the room sends it and answers it leave over n0's."""

    async def enlisted_account(jid: str) -> Enlisted | None:
        return Enlisted(PROVIDER, identity_key(jid)) if jid == FED else None

    links = [FakeS2S(), FakeS2S()]
    async with running_cluster(enlisted_account=enlisted_account, federation_ports=links) as ck:
        for kit in ck.kits:
            kit.operator.provider_changed(federated_provider())
        room = room_on("n0", {"n0", "n1"})
        owner = await ck.kits[0].connect(await ck.kits[0].account("owner"), "r")
        await set_settings(owner, enabled="true")  # third parties allowed
        owner.take()
        # enlistment creates the federated user's account row (shared storage)
        await ck.kits[0].hub.ctx.storage.accounts.create(FED, CREDS, ck.kits[0].clock())
        await cluster_create(ck, owner, room)
        answers = await cluster_send(
            ck,
            owner,
            f"<iq xmlns='jabber:client' type='set' id='m' to='{room}'>"
            f"<query xmlns='{muc.NS_ADMIN}'><item affiliation='member' jid='{FED}'/></query></iq>",
        )
        (made,) = [s for s in answers if isinstance(s, Iq)]
        assert isinstance(made, Iq)
        assert made.type is IqType.RESULT, to_xml(made)

        async def inbound(xml: str) -> list[Stanza]:
            await ck.kits[1].hub.route_federated(PROVIDER, parse_stanza(parse_fragment(xml)))
            await ck.settle()
            assert links[1].take() == []  # nothing leaves through the node it came in by
            return links[0].take()

        got = await inbound(
            f"<presence xmlns='jabber:client' from='{FULL}' to='{room}/alice'>"
            f"<x xmlns='{muc.NS}'/></presence>"
        )
        assert any(isinstance(s, Presence) and 110 in codes(s) for s in got), [
            to_xml(s) for s in got
        ]
        (pong,) = await inbound(
            f"<iq xmlns='jabber:client' from='{FULL}' to='{room}/alice' type='get' id='p'>"
            f"<ping xmlns='{ns.PING}'/></iq>"
        )
        assert isinstance(pong, Iq)
        assert pong.type is IqType.RESULT
        owner.take()
        await cluster_send(
            ck,
            owner,
            f"<message xmlns='jabber:client' type='groupchat' to='{room}' id='g'>"
            "<body>to every node</body></message>",
        )
        assert [m.body for m in links[0].take() if isinstance(m, Message)] == ["to every node"]
