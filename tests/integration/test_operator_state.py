"""One source of truth for operator state: what the command line changes in a running hub's
data directory takes effect on live sessions at once (the hub follows the change feed)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from interlink.app import HubServer
from interlink.xmpp.jid import JID
from interlink.xmpp.sasl import derive_credentials
from tests.integration.kit import (
    DOMAIN,
    TIMEOUT,
    Xmpp,
    enlisted_client,
    onboard_provider,
    running_hub,
)
from tests.interop.enlistkit import ThirdParty

TOKEN = "operator-token-for-tests-0123456789"
FEED = {"token": TOKEN, "change_feed_interval": 0.1}


async def cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interlink",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def sessions_end(server: HubServer, jid: str) -> float:
    """Seconds until ``jid`` has no session left (fails after TIMEOUT)."""
    assert server.hub is not None
    started = time.monotonic()
    bare = JID.parse(jid).bare
    while list(server.hub.ctx.sessions.sessions(bare)):
        assert time.monotonic() - started < TIMEOUT, f"{jid} still has sessions"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_provider_suspended_through_the_cli_ends_its_users_sessions(tmp_path: Path) -> None:
    async with running_hub(tmp_path, admin=FEED) as (server, certs):
        base = f"https://127.0.0.1:{server.ports['http']}"
        party = ThirdParty()
        await onboard_provider(base, certs.ca, TOKEN, party.provider_body())
        device = tmp_path / "third-party"
        tp = await enlisted_client(party, device, base, server.ports["c2s-starttls"], certs)
        await tp.connect()
        try:
            assert server.hub is not None
            assert list(server.hub.ctx.sessions.sessions(JID.parse(tp.bare)))
            data_dir = str(server.settings.hub.data_dir)
            code, out = await cli("provider", "suspend", party.provider_id, "--data-dir", data_dir)
            assert code == 0, out
            await sessions_end(server, tp.bare)
            # And the routing path knows at once: the provider's users are unreachable.
            assert server.addressing is not None
            assert not server.addressing.approved(party.provider_id, DOMAIN)
            # Approved again from the command line, it is reachable again.
            code, out = await cli("provider", "approve", party.provider_id, "--data-dir", data_dir)
            assert code == 0, out
            for _ in range(100):
                if server.addressing.approved(party.provider_id, DOMAIN):
                    break
                await asyncio.sleep(0.05)
            assert server.addressing.approved(party.provider_id, DOMAIN)
        finally:
            await tp.close()


async def test_account_removed_through_the_cli_ends_its_sessions(tmp_path: Path) -> None:
    async with running_hub(tmp_path, admin=FEED) as (server, certs):
        alice = Xmpp(f"alice@{DOMAIN}/a", "pw", certs)
        ended = asyncio.Event()
        alice.client.add_event_handler("disconnected", lambda _: ended.set())
        await alice.login(server.ports["c2s-starttls"])
        try:
            data_dir = str(server.settings.hub.data_dir)
            code, out = await cli("user", "remove", f"alice@{DOMAIN}", "--data-dir", data_dir)
            assert (code, out) == (0, f"removed alice@{DOMAIN}\n")
            await sessions_end(server, f"alice@{DOMAIN}")
            await asyncio.wait_for(ended.wait(), TIMEOUT)
        finally:
            await alice.close()


async def test_a_data_dir_that_holds_no_hub_is_an_error(tmp_path: Path) -> None:
    code, out = await cli("user", "list", "--data-dir", str(tmp_path / "typo"))
    assert code == 2
    assert "holds no Interlink hub" in out
    assert not (tmp_path / "typo").exists()


async def test_a_removed_accounts_block_list_does_not_pass_to_the_next_holder(
    tmp_path: Path,
) -> None:
    """Review finding: applying ``account-removed`` forgets the reach cache and ends sessions,
    but the in-memory block list (``BlockLists``, loaded at start) keeps the removed account's
    items (``BlockLists.forget`` is never called). The rows are gone (ON DELETE CASCADE), so an
    account created again under the same address (phone numbers are recycled) shows and
    enforces the previous holder's block list until the hub restarts."""
    async with running_hub(tmp_path, admin=FEED) as (server, _certs):
        assert server.hub is not None
        assert server.storage is not None
        blocks = server.hub.router.policy.blocks
        alice = JID.parse(f"alice@{DOMAIN}")
        await blocks.block(alice, [JID.parse(f"bob@{DOMAIN}")], time.time())
        assert blocks.items(alice) == [f"bob@{DOMAIN}"]
        await server.storage.accounts.delete(str(alice))  # what `interlink user remove` does
        await asyncio.sleep(0.5)  # the hub follows the feed every 0.1 s
        await server.storage.accounts.create(str(alice), derive_credentials("pw", 4096), 1.0)
        assert await server.storage.policy.blocklists() == {}
        assert blocks.items(alice) == []
        assert not blocks.blocks(alice, JID.parse(f"bob@{DOMAIN}"))


async def test_a_removed_accounts_archive_prefs_and_commands_do_not_pass_on(
    tmp_path: Path,
) -> None:
    """Review finding: after ``account-removed`` the archive's cached preferences (cached for
    ``archive.prefs_cache_ttl``) and the account's open ad-hoc command sessions stayed, so an
    account created again under the address (a recycled phone number) was archived by the
    previous holder's preferences and could continue its half-done commands."""
    from interlink.errors import StanzaError
    from interlink.hub.archive import Decision
    from interlink.xmpp.ext.mam import Default, Prefs

    async with running_hub(tmp_path, admin=FEED) as (server, _certs):
        assert server.hub is not None
        assert server.storage is not None
        assert server.adhoc is not None
        archive = server.hub.router.archive
        commands = server.adhoc.sessions
        alice, bob = JID.parse(f"alice@{DOMAIN}"), JID.parse(f"bob@{DOMAIN}")
        await server.storage.archive.set_prefs(str(alice), Prefs(Default.NEVER))
        assert not await archive.resolve(alice, bob)  # now cached: never
        assert archive.decide(alice, bob) is Decision.SKIP
        opened = commands.open(alice, "urn:example:cmd", time.time())
        assert commands.live(alice) == 1
        await server.storage.accounts.delete(str(alice))  # what `interlink user remove` does
        await asyncio.sleep(0.5)  # the hub follows the feed every 0.1 s
        await server.storage.accounts.create(str(alice), derive_credentials("pw", 4096), 1.0)
        assert await server.storage.archive.get_prefs(str(alice)) is None
        assert archive.decide(alice, bob) is Decision.LOOKUP  # nothing cached any more
        assert await archive.resolve(alice, bob)  # the default (always), not the old "never"
        assert commands.live(alice) == 0
        with pytest.raises(StanzaError, match="no such command session"):
            commands.find(alice, "urn:example:cmd", opened.id, time.time())
