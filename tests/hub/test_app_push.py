"""XEP-0357 push for the hub's own accounts, as a service: registrations through iqs, one
content-free notification per stored message and registration, what an answer does. The app
server is a fake link; storage is SQLite in memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any
from xml.etree.ElementTree import Element, tostring

import pytest

from interlink.errors import StanzaError, StanzaErrorCondition
from interlink.hub.app_push import AppPushSettings, AppServerPush
from interlink.hub.session import Session
from interlink.storage.push_registrations import PushRegistration
from interlink.storage.sqlite import open_sqlite
from interlink.storage.sqlite.engine import SqliteStorage
from interlink.xmpp import ns
from interlink.xmpp.ext import push
from interlink.xmpp.jid import JID
from interlink.xmpp.sasl import derive_credentials
from interlink.xmpp.stanza import Iq, IqType, Message, MessageType, error_element
from tests.hubkit import FakePort

BOB = JID.parse("bob@hub.test/phone")
APP = "push.app.test"
CLIENT = "{jabber:client}"


class FakeLink:
    """The app server: records each request and answers with ``answer`` (None: silence)."""

    def __init__(self) -> None:
        self.requests: list[Iq] = []
        self.answer: str | None = "result"  # "result", an error type, or None
        self.gate: asyncio.Event | None = None  # when set: answers wait for it

    def reaches(self, domain: str) -> bool:
        return domain == APP

    async def request(self, iq: Iq, reply_within: float) -> Iq | None:
        self.requests.append(iq)
        if self.gate is not None:
            await self.gate.wait()
        if self.answer is None:
            return None
        if self.answer == "result":
            return Iq(iq.from_, iq.to, iq.id, None, (), IqType.RESULT)
        error = StanzaError(StanzaErrorCondition.ITEM_NOT_FOUND)
        el = error_element(error)
        el.set("type", self.answer)
        return Iq(iq.from_, iq.to, iq.id, None, (el,), IqType.ERROR)


@pytest.fixture
async def storage() -> AsyncIterator[SqliteStorage]:
    s = await open_sqlite(":memory:")
    await s.accounts.create("bob@hub.test", derive_credentials("pw", 4096), 0.0)
    yield s
    await s.close()


_TASKS: set[asyncio.Task[None]] = set()


def spawn(coro: Coroutine[Any, Any, None], name: str) -> None:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


def service(
    storage: SqliteStorage, link: FakeLink, limit: int = 3, in_flight: int = 100
) -> AppServerPush:
    return AppServerPush(
        storage.push_registrations,
        link,
        AppPushSettings(max_registrations=limit, max_in_flight=in_flight),
        lambda: 100.0,
        lambda jid: jid.domain == "hub.test",
        spawn,
    )


def enable_iq(node: str, jid: str = APP, form: Element | None = None) -> Iq:
    el = Element(push.ENABLE, {"jid": jid, "node": node})
    if form is not None:
        el.append(form)
    return Iq(None, BOB, "e", None, (el,), IqType.SET)


async def answered(svc: AppServerPush, iq: Iq) -> Element:
    port = FakePort()
    await svc.handle_iq(Session(BOB, port), iq)
    (reply,) = port.take()
    return reply


async def test_enable_then_one_notification_per_message(storage: SqliteStorage) -> None:
    link = FakeLink()
    svc = service(storage, link)
    assert (await answered(svc, enable_iq("n1"))).get("type") == "result"
    assert (await answered(svc, enable_iq("n2"))).get("type") == "result"
    assert await svc.notify(BOB.bare) == 2
    assert [r.to for r in link.requests] == [JID.parse(APP)] * 2
    assert {r.from_ for r in link.requests} == {BOB.bare}
    pubsub = link.requests[0].payload[0]
    assert pubsub.tag == ns.qname(ns.PUBSUB, "pubsub")
    assert b"body" not in tostring(pubsub)


async def test_an_error_answer_removes_the_registration_but_wait_keeps_it(
    storage: SqliteStorage,
) -> None:
    link = FakeLink()
    svc = service(storage, link)
    await answered(svc, enable_iq("n1"))
    link.answer = "wait"
    assert await svc.notify(BOB.bare) == 0
    assert len(await storage.push_registrations.for_account("bob@hub.test")) == 1
    link.answer = None  # silence keeps it too
    assert await svc.notify(BOB.bare) == 0
    assert len(await storage.push_registrations.for_account("bob@hub.test")) == 1
    link.answer = "cancel"
    assert await svc.notify(BOB.bare) == 0
    assert await storage.push_registrations.for_account("bob@hub.test") == []
    assert (svc.stats.sent, svc.stats.failed, svc.stats.disabled) == (0, 2, 1)


@pytest.mark.parametrize(
    ("iq", "condition"),
    [
        (enable_iq("n", jid="push.elsewhere"), StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND),
        (enable_iq("n", jid="@@"), StanzaErrorCondition.JID_MALFORMED),
        (
            Iq(None, BOB, "e", None, (Element(push.ENABLE, {"jid": APP}),), IqType.SET),
            StanzaErrorCondition.BAD_REQUEST,
        ),
        (
            enable_iq("n", form=Element("{jabber:x:data}x", {"type": "form"})),
            StanzaErrorCondition.BAD_REQUEST,
        ),
        (
            Iq(
                None, BOB, "e", None, (Element(push.ENABLE, {"jid": APP, "node": "n"}),), IqType.GET
            ),
            StanzaErrorCondition.BAD_REQUEST,
        ),
    ],
)
async def test_bad_enables(storage: SqliteStorage, iq: Iq, condition: StanzaErrorCondition) -> None:
    with pytest.raises(StanzaError) as refused:
        await answered(service(storage, FakeLink()), iq)
    assert refused.value.condition is condition


async def test_the_registration_limit_at_its_boundary(storage: SqliteStorage) -> None:
    svc = service(storage, FakeLink(), limit=2)
    await answered(svc, enable_iq("1"))
    await answered(svc, enable_iq("2"))
    with pytest.raises(StanzaError) as refused:
        await answered(svc, enable_iq("3"))
    assert refused.value.condition is StanzaErrorCondition.RESOURCE_CONSTRAINT


async def test_third_party_accounts_are_not_allowed(storage: SqliteStorage) -> None:
    svc = AppServerPush(
        storage.push_registrations,
        FakeLink(),
        AppPushSettings(),
        lambda: 0.0,
        lambda _: False,
        spawn,
    )
    with pytest.raises(StanzaError) as refused:
        await answered(svc, enable_iq("n"))
    assert refused.value.condition is StanzaErrorCondition.NOT_ALLOWED


def test_only_messages_with_a_body_or_omemo_wake_a_device() -> None:
    def msg(*children: Element, type_: MessageType = MessageType.CHAT) -> Message:
        return Message(BOB, None, "m", None, children, type_)

    assert push.wakes_device(msg(Element(f"{CLIENT}body")))
    assert push.wakes_device(msg(Element("{urn:xmpp:omemo:2}encrypted")))
    assert not push.wakes_device(msg(Element("{http://jabber.org/protocol/chatstates}active")))
    assert not push.wakes_device(msg(Element("{urn:xmpp:receipts}received")))
    assert not push.wakes_device(msg(Element(f"{CLIENT}body"), type_=MessageType.HEADLINE))


def count_of(request: Iq) -> str | None:
    form = request.payload[0].find(
        f"{{{ns.PUBSUB}}}publish/{{{ns.PUBSUB}}}item/{{{push.NS}}}notification/{{jabber:x:data}}x"
    )
    assert form is not None
    return {f.get("var"): f.findtext("{jabber:x:data}value") for f in form}["message-count"]


async def settled(link: FakeLink, requests: int) -> None:
    for _ in range(200):
        if len(link.requests) >= requests:
            return
        await asyncio.sleep(0.005)


async def test_a_prompt_app_server_gets_one_push_per_message(storage: SqliteStorage) -> None:
    link = FakeLink()
    svc = service(storage, link)
    await answered(svc, enable_iq("n1"))
    msg = Message(BOB.bare, None, "m", None, (), MessageType.CHAT)
    for _ in range(3):
        svc.message_stored(BOB.bare, msg)
        await svc.close()  # answered before the next message
    assert [count_of(r) for r in link.requests] == ["1", "1", "1"]


async def test_messages_stored_while_a_push_is_in_flight_are_coalesced(
    storage: SqliteStorage,
) -> None:
    link = FakeLink()
    link.gate = asyncio.Event()
    svc = service(storage, link)
    await answered(svc, enable_iq("n1"))
    msg = Message(BOB.bare, None, "m", None, (), MessageType.CHAT)
    for _ in range(50):
        svc.message_stored(BOB.bare, msg)
    await settled(link, 1)
    assert len(link.requests) == 1  # one in flight, the other 49 wait as one count
    link.gate.set()
    await svc.close()
    assert [count_of(r) for r in link.requests] == ["1", "49"]  # every message counted once
    assert svc.stats.sent == 2


async def test_in_flight_pushes_are_capped_at_the_boundary(storage: SqliteStorage) -> None:
    link = FakeLink()
    link.gate = asyncio.Event()
    svc = service(storage, link, in_flight=2)
    accounts = [JID.parse(f"u{i}@hub.test") for i in range(3)]
    for account in accounts:
        await storage.accounts.create(str(account), derive_credentials("pw", 4096), 0.0)
        reg = PushRegistration(str(account), APP, "n", "", 0.0)
        assert await storage.push_registrations.register(reg, max_per_account=3)
        svc.message_stored(account, Message(account, None, "m", None, (), MessageType.CHAT))
    await settled(link, 3)
    assert (len(link.requests), svc.in_flight) == (2, 2)  # the cap: the third waits its turn
    link.gate.set()
    await svc.close()
    assert sorted(str(r.from_) for r in link.requests) == sorted(str(a) for a in accounts)
    assert svc.in_flight == 0


async def test_a_failing_registration_lookup_is_logged_not_lost(
    storage: SqliteStorage, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        async def for_account(self, account: str) -> list[PushRegistration]:
            raise RuntimeError("disk gone")

    svc = service(storage, FakeLink())
    svc._repo = Broken()  # type: ignore[assignment]
    svc.message_stored(BOB.bare, Message(BOB.bare, None, "m", None, (), MessageType.CHAT))
    await svc.close()
    assert "push registrations could not be read" in caplog.text
    assert svc.stats.failed == 1


async def test_a_push_that_cannot_be_started_is_counted_and_never_hangs_close(
    storage: SqliteStorage,
) -> None:
    def refuse(coro: Coroutine[Any, Any, None], name: str) -> None:
        raise RuntimeError("shutting down")

    svc = AppServerPush(
        storage.push_registrations,
        FakeLink(),
        AppPushSettings(),
        lambda: 0.0,
        lambda _: True,
        refuse,
    )
    svc.message_stored(BOB.bare, Message(BOB.bare, None, "m", None, (), MessageType.CHAT))
    await asyncio.wait_for(svc.close(), 1.0)
    assert (svc.stats.failed, svc.in_flight) == (1, 0)
