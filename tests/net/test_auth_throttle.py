"""The driver applies the SASL throttle: a throttled attempt is refused before any credentials
are looked up, with the same bytes whether or not the account exists."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from dataclasses import replace

import pytest

from interlink.hub.auth_throttle import Backoff, ThrottleLimits
from interlink.hub.context import HubSettings
from interlink.net.driver import ConnectionGate, DriverLimits, StreamDriver
from interlink.xmpp.stream import ServerStream
from tests.hubkit import HubKit, running_hub
from tests.net.test_driver import FakeLink, output
from tests.streamkit import CONFIG, OPEN, SASL

SETTINGS = HubSettings(
    auth_throttle=ThrottleLimits(
        pair=Backoff(1, 2.0, 8.0), source=Backoff(3, 2.0, 8.0), account=Backoff(3, 2.0, 8.0)
    )
)


async def attempt(kit: HubKit, peer: str, auth: str) -> bytes:
    """One stream from ``peer`` with one ``<auth/>``; what the hub answered to it."""
    link = FakeLink()
    config = replace(CONFIG, oauthbearer=True)
    stream = ServerStream(config, now=asyncio.get_running_loop().time(), secure=True)
    driver = StreamDriver(kit.hub, stream, link, ConnectionGate(10), DriverLimits(), peer)
    driver.feed(OPEN)
    link.written.clear()
    pending = driver.feed(auth.encode())
    if pending is not None:
        await pending
    driver.connection_lost()
    return output(link)


def plain(user: str, password: str) -> str:
    data = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return f"<auth xmlns='{SASL}' mechanism='PLAIN'>{data}</auth>"


def bearer(token: str) -> str:
    data = base64.b64encode(f"n,,\x01auth=Bearer {token}\x01\x01".encode()).decode()
    return f"<auth xmlns='{SASL}' mechanism='OAUTHBEARER'>{data}</auth>"


async def test_throttled_attempts_look_the_same_for_real_and_unknown_accounts() -> None:
    async with running_hub(SETTINGS) as kit:
        await kit.account("alice")
        answers = {}
        for user, peer in (("alice", "10.0.0.1:4000"), ("mallory", "10.0.0.2:4000")):
            first = await attempt(kit, peer, plain(user, "guess"))
            assert b"<not-authorized/>" in first
            second = await attempt(kit, peer, plain(user, "pw" if user == "alice" else "x"))
            answers[user] = second
        assert answers["alice"] == answers["mallory"]
        assert (
            answers["alice"]
            == (
                f'<failure xmlns="{SASL}"><temporary-auth-failure/><text xml:lang="en">'
                "too many failed attempts; try again in 2 s</text></failure>"
            ).encode()
        )
        kit.clock.now += 2.0  # once the wait is over, the right password is accepted
        assert b"<success" in await attempt(kit, "10.0.0.1:4001", plain("alice", "pw"))


async def test_another_source_and_a_trusted_source_log_in_while_one_guesses() -> None:
    async with running_hub(SETTINGS) as kit:
        await kit.account("alice")
        assert b"<success" in await attempt(kit, "192.0.2.7:1", plain("alice", "pw"))
        for i in range(3):  # three guessers, one failure each: the account is at its free count
            await attempt(kit, f"10.0.0.{i}:1", plain("alice", "guess"))
        refused = await attempt(kit, "10.0.9.9:1", plain("alice", "pw"))
        assert b"temporary-auth-failure" in refused  # a new place waits ...
        assert b"<success" in await attempt(kit, "192.0.2.7:2", plain("alice", "pw"))  # not this


async def test_bearer_token_failures_count_per_source() -> None:
    async with running_hub(SETTINGS) as kit:
        for _ in range(3):
            assert b"not-authorized" in await attempt(kit, "2001:db8::1:1", bearer("forged"))
        # the same /64 is the same source (peers are written "address:port", as c2s does)
        again = await attempt(kit, "2001:db8::2:1", bearer("forged"))
        assert b"temporary-auth-failure" in again
        assert re.search(rb"try again in \d+ s", again)
        other = await attempt(kit, "2001:db8:0:1::1:1", bearer("forged"))
        assert b"not-authorized" in other
        assert kit.hub.auth_throttle.failures == 4
        assert kit.hub.auth_throttle.throttled == 1


async def test_failures_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    async with running_hub(SETTINGS) as kit:
        await kit.account("alice")
        with caplog.at_level(logging.INFO, logger="interlink.hub"):
            await attempt(kit, "10.0.0.1:1", plain("alice", "guess"))
            await attempt(kit, "10.0.0.1:1", plain("alice", "guess"))  # throttled
        failed = [r for r in caplog.records if r.getMessage() == "authentication failed"]
        assert len(failed) == 1
        assert failed[0].levelno == logging.WARNING  # the pair's free failure is spent
        assert getattr(failed[0], "source", None) == "10.0.0.1"
        assert getattr(failed[0], "user", None) == "alice@hub.test"
        assert kit.hub.auth_throttle.failures == 1
        assert kit.hub.auth_throttle.throttled == 1


def scram_first(user: str) -> str:
    data = base64.b64encode(f"n,,n={user},r=abcdefgh".encode()).decode()
    return f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{data}</auth>"


async def test_scram_is_refused_before_the_challenge_alike_for_any_account() -> None:
    """A throttled SCRAM attempt is refused at its first message, before any salt is sent, with
    the same bytes for a real and an unknown account; an abandoned exchange counted."""
    async with running_hub(SETTINGS) as kit:
        await kit.account("alice")
        answers = {}
        for user, peer in (("alice", "10.0.0.1:4000"), ("mallory", "10.0.0.2:4000")):
            first = await attempt(kit, peer, scram_first(user))
            assert b"<challenge" in first  # the exchange is abandoned: counted as failed
            answers[user] = await attempt(kit, peer, scram_first(user))
        assert answers["alice"] == answers["mallory"]
        assert b"<temporary-auth-failure/>" in answers["alice"]
        assert b"<challenge" not in answers["alice"]
