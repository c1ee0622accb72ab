"""A stream relayed by a provider's proxy carries only that provider's accounts: a password
login for any other account fails without its credentials being looked at, and a token login
for one ends the stream with ``<not-authorized/>``; its claimed address earns no trusted pair."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from interlink.hub.auth_throttle import AuthAttempt
from interlink.net.driver import ConnectionGate, DriverLimits, StreamDriver
from interlink.xmpp.stream import ServerStream
from tests.hubkit import CREDS, DOMAIN, HubKit, running_hub
from tests.net.test_auth_throttle import SETTINGS, bearer, plain
from tests.net.test_driver import FakeLink, output
from tests.streamkit import CONFIG, OPEN

CAROL = f"carol@examplechat.interop.{DOMAIN}"  # a user of the provider whose proxy relays
DAVE = f"dave@otherchat.interop.{DOMAIN}"  # another provider's user


async def relayed(kit: HubKit, auth: str, relayed_by: str | None = "examplechat") -> bytes:
    link = FakeLink()
    stream = ServerStream(
        replace(CONFIG, oauthbearer=True), now=asyncio.get_running_loop().time(), secure=True
    )
    driver = StreamDriver(
        kit.hub,
        stream,
        link,
        ConnectionGate(10),
        DriverLimits(),
        "192.0.2.7:4000",
        relayed_by=relayed_by,
    )
    driver.feed(OPEN)
    link.written.clear()
    pending = driver.feed(auth.encode())
    if pending is not None:
        await pending
    driver.connection_lost()
    return output(link)


async def test_a_proxy_carries_its_providers_password_logins_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_hub(SETTINGS) as kit:
        await kit.account("alice")
        for jid in (CAROL, DAVE):
            await kit.hub.ctx.storage.accounts.create(jid, CREDS, kit.clock())
        lookups: list[str] = []
        look_up = kit.hub.credentials

        async def counted(username: str, host: str | None = None) -> object:
            lookups.append(username)
            return await look_up(username, host)

        kit.hub.credentials = counted  # type: ignore[assignment,method-assign]
        caplog.set_level(logging.WARNING, "interlink")
        assert b"<success" in await relayed(kit, plain(CAROL, "pw"))
        # the right passwords of a gatekeeper user and of another provider's user, refused
        # like wrong ones and never checked
        for user in ("alice", f"alice@{DOMAIN}", DAVE):
            kit.clock.now += 10.0  # past the pair back-off: each is refused on its own account
            assert b"<not-authorized/>" in await relayed(kit, plain(user, "pw"))
        assert lookups == [CAROL]
        refusals = [r for r in caplog.records if r.getMessage().startswith("proxied login")]
        assert len(refusals) == 3
        assert {getattr(r, "provider", None) for r in refusals} == {"examplechat"}
        # the same logins on a direct stream are accepted
        kit.clock.now += 10.0
        assert b"<success" in await relayed(kit, plain("alice", "pw"), relayed_by=None)


async def test_a_token_login_for_another_account_ends_the_relayed_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running_hub(SETTINGS) as kit:

        async def verified(token: str, host: str | None = None) -> str:
            return token  # the fake token names its account

        monkeypatch.setattr(kit.hub, "verify_bearer", verified)
        ok = await relayed(kit, bearer(CAROL))
        assert b"<success" in ok
        assert b"stream:error" not in ok
        for account in (f"alice@{DOMAIN}", DAVE):
            answer = await relayed(kit, bearer(account))
            assert b"<not-authorized" in answer
            assert b"stream:error" in answer
            assert b"relays only examplechat's accounts" in answer


async def test_a_relayed_success_earns_no_trusted_pair() -> None:
    async with running_hub(SETTINGS) as kit:
        await kit.hub.ctx.storage.accounts.create(CAROL, CREDS, kit.clock())
        assert b"<success" in await relayed(kit, plain(CAROL, "pw"))
        attempt = kit.hub.begin_login("192.0.2.7", CAROL, DOMAIN)
        assert isinstance(attempt, AuthAttempt)
        throttle = kit.hub.auth_throttle
        assert not throttle._is_trusted(f"{attempt.account}\x00192.0.2.7", kit.clock())
