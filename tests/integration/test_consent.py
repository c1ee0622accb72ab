"""The consent and abuse rules of issue 5 end to end, over loopback TLS: an SDK gatekeeper user
(``alice@hub.test``) and an SDK third-party user of an approved provider, enlisted through the
Enlistment API and logged in with OAUTHBEARER. Each rule is checked from both sides where it
applies; the oracle test compares the hub's answers byte for byte with a raw XML client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import httpx
import pytest
import slixmpp

from interlink.app import HubServer
from interlink.client import InterlinkClient, TextMessage
from interlink.client.client import ClientError
from interlink.client.consent import ConsentError, marker_of
from interlink.client.enlist import identity_thumbprint
from interlink.client.events import ChatState, ClientEvent, InteropMarker, Receipt
from interlink.xmpp.ext import interop
from interlink.xmpp.jid import JID
from interlink.xmpp.parser import ElementReceived
from tests.integration.kit import (
    DOMAIN,
    TIMEOUT,
    Certs,
    RawClient,
    enlisted_client,
    onboard_provider,
    running_hub,
)
from tests.interop.enlistkit import ThirdParty

TOKEN = "operator-token-for-tests-0123456789"
PROVIDER = "examplechat"
INTEROP_DOMAIN = f"{PROVIDER}.interop.{DOMAIN}"
ALICE = f"alice@{DOMAIN}"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
STANZAS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"
DEVICES = "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:omemo:2:devices'/></pubsub>"


@dataclass(frozen=True)
class StanzaErrorSeen:
    sender: str
    condition: str
    text: str


@dataclass
class Side:
    """One SDK user, with the stanza errors and plain (unencrypted) messages it receives."""

    client: InterlinkClient
    jid: str  # bare
    errors: asyncio.Queue[StanzaErrorSeen] = field(default_factory=asyncio.Queue)
    plain: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)

    def watch(self) -> None:
        xmpp = self.client._xmpp
        assert xmpp is not None

        def on_error(msg: Any) -> None:
            # Read the XML: slixmpp's error plugin knows only RFC 3920's conditions (no
            # policy-violation).
            err = msg.xml.find("{jabber:client}error")
            conditions = [] if err is None else [c for c in err if c.tag.startswith(STANZAS)]
            condition = next(
                (c.tag[len(STANZAS) :] for c in conditions if c.tag != STANZAS + "text"), ""
            )
            text = next((c.text or "" for c in conditions if c.tag == STANZAS + "text"), "")
            self.errors.put_nowait(StanzaErrorSeen(msg["from"].bare, condition, text))

        def on_message(msg: Any) -> None:
            if (
                msg["type"] in ("chat", "normal")
                and msg["body"]
                and msg.xml.find("{urn:xmpp:omemo:2}encrypted") is None
            ):
                self.plain.put_nowait(msg)

        xmpp.add_event_handler("message_error", on_error)
        xmpp.add_event_handler("message", on_message)

    def send_plain(self, to: str, body: str, extra: Element | None = None) -> None:
        """A message without end-to-end encryption (the hub's rules do not depend on it)."""
        xmpp = self.client._xmpp
        assert xmpp is not None
        msg = xmpp.make_message(mto=slixmpp.JID(to), mbody=body, mtype="chat")
        if extra is not None:
            msg.xml.append(extra)
        msg.send()

    async def next_error(self) -> StanzaErrorSeen:
        return await asyncio.wait_for(self.errors.get(), TIMEOUT)

    async def next_plain(self) -> Any:
        return await asyncio.wait_for(self.plain.get(), TIMEOUT)

    async def next_of(self, kind: type[Any]) -> Any:
        """The next event of ``kind``, skipping others (key changes, device lists, ...)."""
        while True:
            event = await self.client.next_event(TIMEOUT)
            if isinstance(event, kind):
                return event

    async def next_content(self) -> ClientEvent:
        """The next text message or receipt (what tells us the order things arrived in)."""
        while True:
            event = await self.client.next_event(TIMEOUT)
            if isinstance(event, TextMessage | Receipt):
                return event


@dataclass
class World:
    server: HubServer
    certs: Certs
    tmp: Path
    base: str
    party: ThirdParty
    alice: Side
    tp: Side
    clients: list[InterlinkClient] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.ports["c2s-starttls"]

    async def admin(self, path: str) -> None:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            base_url=self.base, verify=self.certs.client_context()
        ) as http:
            answer = await http.post(path, headers=auth, timeout=TIMEOUT)
            assert answer.status_code == 200, answer.text

    async def third_party(self, name: str, subject: str) -> Side:
        """Enlist and connect one more user of the provider."""
        client = await enlisted_client(
            self.party, self.tmp / name, self.base, self.port, self.certs, subject=subject
        )
        self.clients.append(client)
        await client.connect()
        side = Side(client, client.bare)
        side.watch()
        return side

    async def gatekeeper(self, local: str) -> Side:
        client = InterlinkClient(
            f"{local}@{DOMAIN}/phone",
            "pw",
            data_dir=self.tmp / local,
            port=self.port,
            ca_file=self.certs.ca,
        )
        self.clients.append(client)
        await client.connect()
        side = Side(client, f"{local}@{DOMAIN}")
        side.watch()
        return side


@asynccontextmanager
async def world(
    tmp: Path, *, opted_in: bool = True, **sections: dict[str, Any]
) -> AsyncIterator[World]:
    async with running_hub(
        tmp, accounts=("alice", "carol", "dave"), admin={"token": TOKEN}, **sections
    ) as (server, certs):
        base = f"https://127.0.0.1:{server.ports['http']}"
        party = ThirdParty()
        await onboard_provider(base, certs.ca, TOKEN, party.provider_body())
        w = World(server, certs, tmp, base, party, None, None)  # type: ignore[arg-type]
        try:
            w.tp = await w.third_party("tp", "user-42")
            w.alice = await w.gatekeeper("alice")
            if opted_in:
                settings = await w.alice.client.set_interop_settings(enabled=True)
                assert settings.enabled
            yield w
        finally:
            for client in w.clients:
                await client.close()


async def converse(w: World) -> None:
    """A conversation both ways: the third party writes, alice accepts and answers."""
    await w.tp.client.send_text(ALICE, "hello")
    first = await w.alice.next_of(TextMessage)
    assert first.text == "hello"
    await w.alice.client.accept_request(w.tp.jid)
    await w.alice.client.send_text(w.tp.jid, "welcome")
    assert (await w.tp.next_of(TextMessage)).text == "welcome"


# -- not opted in ----------------------------------------------------------------------------------
async def test_not_opted_in_refuses_both_ways(tmp_path: Path) -> None:
    async with world(tmp_path, opted_in=False) as w:
        assert not (await w.alice.client.interop_settings()).enabled
        # The third party cannot even fetch alice's keys, and a plain message is refused with
        # the generic answer (no text).
        with pytest.raises(ClientError):
            await w.tp.client.send_text(ALICE, "hello?")
        w.tp.send_plain(ALICE, "hello?")
        refused = await w.tp.next_error()
        assert (refused.sender, refused.condition, refused.text) == (
            ALICE,
            "service-unavailable",
            "",
        )
        # Alice is told that it is her own setting.
        w.alice.send_plain(w.tp.jid, "hi")
        own = await w.alice.next_error()
        assert own.condition == "policy-violation"
        assert "turned off" in own.text
        with pytest.raises(ClientError):
            await w.alice.client.send_text(w.tp.jid, "hi")
        # Opting in makes both directions work in the same sessions.
        await w.alice.client.set_interop_settings(enabled=True)
        await w.tp.client.send_text(ALICE, "now?")
        assert (await w.alice.next_of(TextMessage)).text == "now?"


# -- provider not allowed --------------------------------------------------------------------------
async def test_opted_in_but_provider_not_allowed(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        assert await w.alice.client.approved_providers() == {PROVIDER: "Example Chat"}
        only_other = await w.alice.client.set_interop_settings(providers=["otherchat"])
        assert only_other.providers == frozenset({"otherchat"})
        w.tp.send_plain(ALICE, "hello?")
        refused = await w.tp.next_error()
        assert (refused.condition, refused.text) == ("service-unavailable", "")
        w.alice.send_plain(w.tp.jid, "hi")
        own = await w.alice.next_error()
        assert own.condition == "policy-violation"
        assert PROVIDER in own.text
        with pytest.raises(ClientError):
            await w.tp.client.send_text(ALICE, "hello?")
        await w.alice.client.set_interop_settings(providers=[PROVIDER, "otherchat"])
        await w.tp.client.send_text(ALICE, "allowed now")
        assert (await w.alice.next_of(TextMessage)).text == "allowed now"


async def test_sdk_reports_the_hubs_policy_violation_condition(tmp_path: Path) -> None:
    async with world(tmp_path, policy={"max_allowed_providers": 2}) as w:
        allowed = await w.alice.client.set_interop_settings(providers=["a", "b"])
        assert allowed.providers == frozenset({"a", "b"})
        with pytest.raises(ConsentError) as refused:
            await w.alice.client.set_interop_settings(providers=["a", "b", "c"])
        assert refused.value.condition == "policy-violation", (
            "BUG client/consent.py query(): slixmpp's IqError cannot be built for an iq error "
            "whose condition is not in RFC 3920's list (policy-violation), so the hub's answer is "
            f"lost and the SDK reports {refused.value} after its timeout"
        )
        assert "at most 2" in refused.value.text


# -- suspension ------------------------------------------------------------------------------------
async def test_provider_suspended_mid_conversation(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await converse(w)
        await w.admin(f"/admin/v1/providers/{PROVIDER}/suspend")
        # Alice's next message is refused, saying why; the third party's session is gone.
        await w.alice.client.send_text(w.tp.jid, "still there?")
        refused = await w.alice.next_error()
        assert refused.sender == w.tp.jid
        assert refused.condition == "service-unavailable"
        assert "suspended" in refused.text
        assert w.server.hub is not None
        assert w.server.hub.sessions == 1  # alice only
        assert await w.alice.client.approved_providers() == {}
        # Approved again: the users can log in and talk again.
        await w.admin(f"/admin/v1/providers/{PROVIDER}/approve")
        again = await w.third_party("tp-again", "user-42")
        assert again.jid == w.tp.jid
        await again.client.send_text(ALICE, "back")
        assert (await w.alice.next_of(TextMessage)).text == "back"


# -- blocking --------------------------------------------------------------------------------------
async def test_block_and_unblock_a_third_party_user(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await converse(w)
        await w.alice.client.block(w.tp.jid)
        assert await w.alice.client.blocklist() == [w.tp.jid]
        await w.tp.client.send_text(ALICE, "are you there?")
        refused = await w.tp.next_error()
        assert (refused.condition, refused.text) == ("service-unavailable", "")
        await w.alice.client.send_text(w.tp.jid, "oops")
        own = await w.alice.next_error()
        assert own.condition == "not-acceptable"  # XEP-0191 §3.6: her own block
        await w.alice.client.unblock(w.tp.jid)
        assert await w.alice.client.blocklist() == []
        await w.tp.client.send_text(ALICE, "again")
        assert (await w.alice.next_of(TextMessage)).text == "again"
        await w.alice.client.send_text(w.tp.jid, "yes")
        assert (await w.tp.next_of(TextMessage)).text == "yes"


async def test_block_and_unblock_a_whole_provider(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        other = await w.third_party("tp2", "user-43")
        await w.alice.client.block(INTEROP_DOMAIN)
        assert await w.alice.client.blocklist() == [INTEROP_DOMAIN]
        for side in (w.tp, other):
            side.send_plain(ALICE, "hello?")
            refused = await side.next_error()
            assert (refused.condition, refused.text) == ("service-unavailable", "")
        w.alice.send_plain(other.jid, "hi")
        assert (await w.alice.next_error()).condition == "not-acceptable"
        await w.alice.client.unblock(INTEROP_DOMAIN)
        await other.client.send_text(ALICE, "unblocked")
        got = await w.alice.next_of(TextMessage)
        assert got.text == "unblocked"
        assert got.sender.startswith(other.jid)


# -- message requests ------------------------------------------------------------------------------
async def test_message_request_accepted_then_replies_and_receipts_flow(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        first_id = await w.tp.client.send_text(ALICE, "hello, it's me")
        first = await w.alice.next_of(TextMessage)
        assert first.text == "hello, it's me"
        assert first.interop == InteropMarker(
            provider=PROVIDER,
            provider_name="Example Chat",
            user="@alice:example.chat",  # the provider-attested user-visible id
            inbox="separate",
            request=True,
        )
        (pending,) = await w.alice.client.message_requests()
        assert (pending.jid, pending.messages) == (w.tp.jid, 1)
        assert pending.marker is not None
        assert pending.marker.request
        # No receipt went back for the request: the first thing the third party gets after
        # acceptance is the reply, then the receipt for it goes back to alice.
        await w.alice.client.accept_request(w.tp.jid)
        assert await w.alice.client.message_requests() == []
        reply_id = await w.alice.client.send_text(w.tp.jid, "hi!")
        got = await w.tp.next_content()
        assert isinstance(got, TextMessage), f"a receipt for {first_id} went back early: {got}"
        assert got.text == "hi!"
        assert got.interop is None  # only gatekeeper users get markers
        receipt = await w.alice.next_of(Receipt)
        assert receipt.message_id == reply_id
        assert receipt.interop is not None
        assert not receipt.interop.request
        # Now alice's receipts flow too, and the marker has no request flag.
        second_id = await w.tp.client.send_text(ALICE, "great")
        second = await w.alice.next_of(TextMessage)
        assert second.interop is not None
        assert not second.interop.request
        assert (await w.tp.next_of(Receipt)).message_id == second_id
        # Typing is marked as well.
        await w.tp.client.send_chat_state(ALICE, "composing")
        state = await w.alice.next_of(ChatState)
        assert state.state == "composing"
        assert state.interop is not None


async def test_message_request_blocked_with_a_report(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.tp.client.send_text(ALICE, "buy now")
        spam = await w.alice.next_of(TextMessage)
        assert spam.interop is not None
        assert spam.interop.request
        await w.alice.client.block(w.tp.jid, report="spam", text="unwanted", attach=[spam])
        assert await w.alice.client.message_requests() == []
        await w.tp.client.send_text(ALICE, "buy now!!")
        refused = await w.tp.next_error()
        assert (refused.condition, refused.text) == ("service-unavailable", "")
        assert w.server.storage is not None
        (report,) = await w.server.storage.policy.reports(10)
        assert (report.reporter, report.reported, report.provider_id) == (
            ALICE,
            w.tp.jid,
            PROVIDER,
        )
        assert [m.body for m in report.messages] == ["buy now"]


async def test_message_request_over_its_limit(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        for i in range(3):
            await w.tp.client.send_text(ALICE, f"request {i}")
            got = await w.alice.next_of(TextMessage)
            assert got.text == f"request {i}"
            assert got.interop is not None
            assert got.interop.request
        await w.tp.client.send_text(ALICE, "request 3")
        refused = await w.tp.next_error()
        assert refused.condition == "policy-violation"
        assert "3" in refused.text
        (pending,) = await w.alice.client.message_requests()
        assert pending.messages == 3
        # Alice never got the fourth: after accepting, the next text she gets is a new one.
        await w.alice.client.accept_request(w.tp.jid)
        await w.tp.client.send_text(ALICE, "after accepting")
        assert (await w.alice.next_of(TextMessage)).text == "after accepting"


# -- turning the feature off -----------------------------------------------------------------------
async def test_turning_off_mid_conversation_stops_both_ways_at_once(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await converse(w)
        await w.alice.client.set_interop_settings(enabled=False)
        await w.tp.client.send_text(ALICE, "hello?")
        refused = await w.tp.next_error()
        assert (refused.condition, refused.text) == ("service-unavailable", "")
        await w.alice.client.send_text(w.tp.jid, "bye")
        own = await w.alice.next_error()
        assert own.condition == "policy-violation"
        assert "turned off" in own.text
        # Turned on again, the conversation resumes (it was accepted before).
        await w.alice.client.set_interop_settings(enabled=True)
        await w.tp.client.send_text(ALICE, "back")
        back = await w.alice.next_of(TextMessage)
        assert back.text == "back"
        assert back.interop is not None
        assert not back.interop.request


# -- the marker ------------------------------------------------------------------------------------
async def test_a_third_party_cannot_forge_the_marker(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        await w.alice.client.accept_request(w.tp.jid)
        forged = Element(
            interop.MARKER,
            {
                "provider": "yourbank",
                "provider-name": "Your Bank",
                "user": "support",
                "inbox": "combined",
            },
        )
        w.tp.send_plain(ALICE, "please confirm your PIN", forged)
        got = await w.alice.next_plain()
        marks = got.xml.findall(interop.MARKER)
        assert len(marks) == 1
        assert marks[0].attrib == {
            "provider": PROVIDER,
            "provider-name": "Example Chat",
            "user": "@alice:example.chat",
            "inbox": "separate",
        }
        seen = marker_of(got.xml, got["from"].bare, ALICE)
        assert seen is not None
        assert seen.provider == PROVIDER


# -- third party to third party --------------------------------------------------------------------
async def test_third_party_to_third_party_is_refused(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        other = await w.third_party("tp2", "user-43")
        w.tp.send_plain(other.jid, "hello neighbour")
        refused = await w.tp.next_error()
        assert (refused.sender, refused.condition, refused.text) == (
            other.jid,
            "service-unavailable",
            "",
        )
        with pytest.raises(ClientError):
            await w.tp.client.send_text(other.jid, "hello neighbour")


# -- rate limits -----------------------------------------------------------------------------------
async def test_rate_limit_per_sender_per_minute(tmp_path: Path) -> None:
    limit = 4
    async with world(tmp_path, policy={"messages_per_minute": limit}) as w:
        await w.alice.client.accept_request(w.tp.jid)  # no request limit in the way
        for i in range(limit):
            w.tp.send_plain(ALICE, f"tp {i}")
            assert (await w.alice.next_plain())["body"] == f"tp {i}"
        w.tp.send_plain(ALICE, "one too many")
        refused = await w.tp.next_error()
        assert refused.condition == "policy-violation"
        assert "rate limit" in refused.text
        # Alice's own bucket: the same boundary.
        for i in range(limit):
            w.alice.send_plain(w.tp.jid, f"alice {i}")
            assert (await w.tp.next_plain())["body"] == f"alice {i}"
        w.alice.send_plain(w.tp.jid, "one too many")
        own = await w.alice.next_error()
        assert own.condition == "policy-violation"
        assert "rate limit" in own.text
        assert w.server.hub is not None
        assert w.server.hub.ctx.refusals["rate-sender"] == 2


# -- the oracle test -------------------------------------------------------------------------------
async def oauthbearer_login(raw: RawClient, token: str, resource: str = "raw") -> str:
    """On a direct TLS connection: OAUTHBEARER, restart, bind. Returns the bound JID."""
    await raw.open_stream()
    gs2 = base64.b64encode(b"n,,\x01auth=Bearer " + token.encode() + b"\x01\x01").decode()
    await raw.send(f"<auth xmlns='{SASL}' mechanism='OAUTHBEARER'>{gs2}</auth>".encode())
    await raw.read_until("success")
    raw.restart()
    await raw.open_stream()
    await raw.send(
        b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        + f"<resource>{resource}</resource></bind></iq>".encode()
    )
    result = await raw.read_until("iq")
    assert result.get("type") == "result", result.attrib
    return result[0][0].text or ""


async def answer_bytes(raw: RawClient, stanza: str) -> bytes:
    """Send ``stanza`` and return the exact bytes of the answer (one stanza)."""
    await raw.send(stanza.encode())
    got = b""
    while True:
        chunk = await asyncio.wait_for(raw.reader.read(65536), TIMEOUT)
        assert chunk, "the hub closed the stream"
        got += chunk
        if any(isinstance(ev, ElementReceived) for ev in raw.parser.feed(chunk)):
            return got


async def gatekeeper_raw(server: HubServer, certs: Certs, local: str, *iqs: str) -> None:
    """Log ``local`` in with a raw client and send it these iqs (settings, blocks)."""
    raw = await RawClient.open(server.ports["c2s-direct-tls"], certs.client_context())
    try:
        await raw.plain_login(local, "pw")
        for i, payload in enumerate(iqs):
            await raw.send(f"<iq type='set' id='s{i}'>{payload}</iq>".encode())
            answer = await raw.read_until("iq")
            assert answer.get("type") == "result", answer.attrib
    finally:
        await raw.close()


class RecordingRepository:
    """The policy repository, recording each call with the addressed account blanked out."""

    def __init__(self, inner: Any, addressed: list[str]) -> None:
        self._inner = inner
        self.addressed = addressed
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._inner, name)

        async def recorded(*args: object) -> Any:
            self.calls.append(
                (name, tuple("<addressed>" if a in self.addressed else a for a in args))
            )
            return await method(*args)

        return recorded


async def test_no_oracle_of_existence_opt_in_or_block(tmp_path: Path) -> None:
    async with world(tmp_path, opted_in=False) as w:
        server, certs = w.server, w.certs
        # carol exists and has not opted in; dave opted in and blocked the third party.
        await gatekeeper_raw(
            server,
            certs,
            "dave",
            f"<settings xmlns='{interop.NS}' enabled='true'/>",
            f"<block xmlns='urn:xmpp:blocking'><item jid='{w.tp.jid}'/></block>",
        )
        thumbprint = await identity_thumbprint(tmp_path / "tp")
        raw = await RawClient.open(server.ports["c2s-direct-tls"], certs.client_context())
        try:
            bound = await oauthbearer_login(
                raw, w.party.token("user-42", aud=DOMAIN, cnf={"jkt": thumbprint})
            )
            assert bound.startswith(w.tp.jid + "/")
            probes = {
                "message": "<message to='{to}' id='same' type='chat'><body>hi</body></message>",
                "message-to-resource": (
                    "<message to='{to}/phone' id='same' type='chat'><body>hi</body></message>"
                ),
                "pep": "<iq type='get' id='same' to='{to}'>" + DEVICES + "</iq>",
                "disco": (
                    "<iq type='get' id='same' to='{to}'>"
                    "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
                ),
                "subscribe-then-ping": (
                    "<presence to='{to}' type='subscribe'/>"
                    f"<iq type='get' id='same' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>"
                ),
            }
            targets = {
                "nonexistent": f"nobody@{DOMAIN}",
                "not opted in": f"carol@{DOMAIN}",
                "not opted in, online": ALICE,
                "blocked": f"dave@{DOMAIN}",
            }
            for kind, probe in probes.items():
                answers = {}
                for name, to in targets.items():
                    got = await answer_bytes(raw, probe.format(to=to))
                    answers[name] = got.replace(to.encode(), b"{addressed}")
                assert len(set(answers.values())) == 1, f"{kind}: {answers}"
                if kind != "subscribe-then-ping":
                    assert b'type="error"' in answers["nonexistent"]
                    assert b"service-unavailable" in answers["nonexistent"]
                    assert b"<text" not in answers["nonexistent"]

            # The same code path: the same repository calls, in the same order, for a fresh
            # nonexistent account, one that has not opted in and one that blocked the sender
            # (their cached lookups dropped first).
            assert server.hub is not None
            policy = server.hub.router.policy
            fresh = {
                "nonexistent": f"nobody2@{DOMAIN}",
                "not opted in": ALICE,
                "blocked": f"dave@{DOMAIN}",
            }
            for to in fresh.values():
                policy.forget(JID.parse(to))
            recorder = RecordingRepository(policy._repo, list(fresh.values()))
            policy._repo = recorder  # type: ignore[assignment]
            try:
                traces: dict[str, list[tuple[str, tuple[object, ...]]]] = {}
                for name, to in fresh.items():
                    recorder.calls.clear()
                    for probe in (probes["message"], probes["pep"]):
                        await answer_bytes(raw, probe.format(to=to))
                    traces[name] = list(recorder.calls)
            finally:
                policy._repo = recorder._inner
            assert traces["nonexistent"] == traces["not opted in"] == traces["blocked"], traces
            assert [name for name, _ in traces["nonexistent"]][:2] == ["reach", "conversation"]
        finally:
            with contextlib.suppress(Exception):
                await raw.close()
