"""Discovery by phone number and abuse reports, through the real hub and the reference provider
kit (issue 5): found / not found / rate-limited, and a report reaching the operator's list
(``interlink reports``) and the provider's callback without the reporter's identity."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import ANY

import httpx
import pytest
from typer.testing import CliRunner

from interlink.app import HubServer
from interlink.cli.main import app as cli
from interlink.client import InterlinkClient
from interlink.client.enlist import (
    EnlistmentFailed,
    discover,
)
from interlink.provider.store import KitStore
from tests.integration.kit import DOMAIN, Certs, hub_with_kit, next_text, sdk_client

PHONE = "+4915112345678"


@dataclass
class World:
    server: HubServer
    certs: Certs
    hub_url: str
    kit: KitStore
    token: Callable[[], Awaitable[str]]  # fresh tokens for the kit user "bob"
    bob_jid: str
    tmp: Path


@asynccontextmanager
async def world(tmp: Path, **policy: int) -> AsyncIterator[World]:
    async with hub_with_kit(tmp, features=("messaging",), policy=dict(policy)) as setup:
        bob_jid, token = await setup.enlist(tmp / "bob")
        yield World(setup.server, setup.certs, setup.hub_url, setup.kit, token, bob_jid, tmp)


async def alice(w: World) -> InterlinkClient:
    """The gatekeeper user, connected."""
    client = sdk_client(
        w.tmp, f"alice@{DOMAIN}/phone", w.server.ports["c2s-starttls"], w.certs, "alice"
    )
    await client.connect()
    return client


async def kit_user(w: World) -> InterlinkClient:
    """The kit's user, connected."""
    client = InterlinkClient(
        f"{w.bob_jid}/app",
        "",
        data_dir=w.tmp / "bob",
        port=w.server.ports["c2s-starttls"],
        ca_file=w.certs.ca,
        token_provider=w.token,
    )
    await client.connect()
    return client


async def lookup(w: World, phone: str = PHONE) -> str | None:
    return await discover(w.hub_url, await w.token(), phone, ca_file=w.certs.ca)


async def test_discovery_found_only_when_opted_in_discoverable_and_allowed(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        assert w.server.storage is not None
        await w.server.storage.policy.set_phone(f"alice@{DOMAIN}", PHONE)
        client = await alice(w)
        try:
            # Every way of not being reachable answers exactly like a number nobody has.
            assert await lookup(w, "+4915199999999") is None  # nobody has it
            assert await lookup(w) is None  # not opted in
            await client.set_interop_settings(enabled=True)
            assert await lookup(w) is None  # opted in, not discoverable
            await client.set_interop_settings(discoverable=True, providers=["other"])
            assert await lookup(w) is None  # provider not allowed
            await client.set_interop_settings(providers="all")
            assert await lookup(w, "+49 151 1234-5678") == f"alice@{DOMAIN}"
            await client.block(w.bob_jid)
            assert await lookup(w) is None  # the caller is blocked
            await client.unblock()
            assert await lookup(w) == f"alice@{DOMAIN}"
            await client.set_interop_settings(discoverable=False)
            # The raw answers: the same not-found document; clear errors for bad requests.
            async with httpx.AsyncClient(base_url=w.hub_url, verify=str(w.certs.ca)) as http:

                async def post(phone: str, token: str | None) -> httpx.Response:
                    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
                    return await http.post("/v1/discovery", json={"phone": phone}, headers=headers)

                nobody = await post("+4915199999999", await w.token())
                hidden = await post(PHONE, await w.token())
                assert nobody.status_code == hidden.status_code == 404
                assert nobody.content == hidden.content
                assert nobody.headers["content-type"] == "application/problem+json"
                bad = await post("0151 12345678", await w.token())
                assert bad.status_code == 400
                assert bad.json()["type"] == "urn:interlink:problem:bad-phone"
                assert (await post(PHONE, None)).status_code == 401
                assert (await post(PHONE, "not-a-jwt")).status_code == 401
        finally:
            await client.close()


async def test_discovery_is_rate_limited_per_user(tmp_path: Path) -> None:
    async with world(tmp_path, discovery_per_user_per_hour=3) as w:
        for _ in range(3):
            assert await lookup(w, "+4915199999999") is None
        with pytest.raises(EnlistmentFailed) as refused:
            await lookup(w, "+4915199999999")
        assert refused.value.status == 429
        retry_after = refused.value.problem["retry_after"]
        assert isinstance(retry_after, int)
        assert 1 <= retry_after <= 1200


async def test_report_reaches_the_operator_and_the_provider(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        gatekeeper = await alice(w)
        bob = await kit_user(w)
        try:
            await gatekeeper.set_interop_settings(enabled=True)
            await bob.send_text(f"alice@{DOMAIN}", "buy cheap watches")
            spam = await next_text(gatekeeper)
            assert spam.interop is not None
            assert spam.interop.request
            await gatekeeper.block(
                w.bob_jid, report="spam", text="unsolicited advertising", attach=[spam]
            )
            assert await gatekeeper.blocklist() == [w.bob_jid]
            for _ in range(100):
                if await w.kit.reports():
                    break
                await asyncio.sleep(0.05)
        finally:
            await bob.close()
            await gatekeeper.close()
        forwarded = await w.kit.reports()
        assert len(forwarded) == 1
        claims = forwarded[0]
        bob_user = await w.kit.check_password("bob", "bob-secret")
        assert bob_user is not None
        assert claims["sub"] == bob_user.subject  # the provider's own id for its user
        assert claims["reason"] == "urn:xmpp:reporting:spam"
        assert claims["text"] == "unsolicited advertising"
        assert spam.sent_at is not None  # the sender's time, from the encrypted envelope
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(spam.sent_at))
        assert claims["messages"] == [
            {"id": spam.message_id, "at": stamp, "body": "buy cheap watches"}
        ]
        assert "alice" not in json.dumps(claims)  # the reporter's identity is not shared
        data_dir = str(w.tmp / "data")
        listed = await asyncio.to_thread(
            CliRunner().invoke, cli, ["reports", "list", "--data-dir", data_dir]
        )
        assert listed.exit_code == 0, listed.output
        assert f"alice@{DOMAIN}\t{w.bob_jid}\tspam\t1 messages\tforwarded" in listed.output
        report_id = listed.output.split("\t", 1)[0]
        shown = await asyncio.to_thread(
            CliRunner().invoke, cli, ["reports", "show", report_id, "--data-dir", data_dir]
        )
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.output)["messages"][0]["body"] == "buy cheap watches"


async def test_a_room_message_report_reaches_the_members_provider(tmp_path: Path) -> None:
    from interlink.client.events import GroupMessage

    room = f"team@groups.{DOMAIN}"
    async with world(tmp_path) as w:
        gatekeeper = await alice(w)
        bob = await kit_user(w)
        try:
            await gatekeeper.set_interop_settings(enabled=True)
            await gatekeeper.create_group(room, "alice")
            await gatekeeper.add_group_member(room, w.bob_jid)
            await bob.join_group(room, "bob")
            await bob.send_group_text(room, "buy cheap watches in the group")
            while not isinstance(event := await gatekeeper.next_event(15), GroupMessage):
                pass
            assert event.interop is not None
            await gatekeeper.report_group_member(
                room, "bob", report="spam", text="group spam", attach=[event]
            )
            for _ in range(100):
                if await w.kit.reports():
                    break
                await asyncio.sleep(0.05)
        finally:
            await bob.close()
            await gatekeeper.close()
        forwarded = await w.kit.reports()
        assert len(forwarded) == 1
        claims = forwarded[0]
        bob_user = await w.kit.check_password("bob", "bob-secret")
        assert bob_user is not None
        assert claims["sub"] == bob_user.subject
        assert (claims["reason"], claims["text"]) == ("urn:xmpp:reporting:spam", "group spam")
        assert claims["messages"] == [
            {"id": event.message_id, "at": ANY, "body": "buy cheap watches in the group"}
        ]
        assert "alice" not in json.dumps(claims)  # no reporter at all: not her account ...
        assert w.server.hub is not None
        her_alias = w.server.hub.router.federation.aliases.room_alias("alice", "team", DOMAIN)
        assert her_alias not in json.dumps(claims)  # ... nor her alias in the room ...
        assert f"groups.{DOMAIN}" not in json.dumps(claims)  # ... nor the room
