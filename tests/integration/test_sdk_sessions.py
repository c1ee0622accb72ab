"""Two SDK users who write first at the same moment (each starts an OMEMO session, each replaces
it by the other's): the session is repaired (``interlink.client.healing``) and every message
after the repair is read both ways, instead of every later message failing for good."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from interlink.client import DecryptionFailed, InterlinkClient, TextMessage
from tests.integration.kit import DOMAIN, TIMEOUT, running_hub

ROUNDS = 4  # a repair lands within one round trip; texts sent before it may be lost


async def texts_until(client: InterlinkClient, wanted: set[str]) -> tuple[set[str], int]:
    """The texts read until every one of ``wanted`` was (or TIMEOUT), and how many messages
    could not be read meanwhile."""
    got: set[str] = set()
    failed = 0
    deadline = time.monotonic() + TIMEOUT
    while not wanted <= got and time.monotonic() < deadline:
        try:
            event = await client.next_event(max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        if isinstance(event, TextMessage):
            got.add(event.text)
        elif isinstance(event, DecryptionFailed):
            failed += 1
    return got, failed


async def test_first_messages_written_at_once_leave_a_session_both_sides_can_read(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice, bob = (
            InterlinkClient(
                f"{name}@{DOMAIN}/{name[0]}",
                "pw",
                data_dir=tmp_path / name,
                port=port,
                ca_file=certs.ca,
            )
            for name in ("alice", "bob")
        )
        await alice.connect()
        await bob.connect()
        try:
            async with asyncio.timeout(TIMEOUT):
                await alice.caught_up()
                await bob.caught_up()
            await asyncio.gather(
                alice.send_text(f"bob@{DOMAIN}", "a1"), bob.send_text(f"alice@{DOMAIN}", "b1")
            )
            assert (await texts_until(alice, {"b1"}))[0] == {"b1"}
            assert (await texts_until(bob, {"a1"}))[0] == {"a1"}
            # Without the repair every later message fails both ways. With it, from some
            # round on (the receipts of a1/b1 are lost on the crossed sessions), all arrive.
            for round_ in range(ROUNDS):
                a, b = f"a{round_ + 2}", f"b{round_ + 2}"
                await alice.send_text(f"bob@{DOMAIN}", a)
                await bob.send_text(f"alice@{DOMAIN}", b)
                got_b, _ = await texts_until(bob, {a})
                got_a, _ = await texts_until(alice, {b})
                if a in got_b and b in got_a:
                    break
            else:
                raise AssertionError(f"no round of {ROUNDS} was read both ways")
            for n in range(3):  # and every message after that
                await alice.send_text(f"bob@{DOMAIN}", f"after {n}")
                await bob.send_text(f"alice@{DOMAIN}", f"after {n}")
            wanted = {f"after {n}" for n in range(3)}
            for client in (alice, bob):
                got, failed = await texts_until(client, wanted)
                assert (got, failed) == (wanted, 0)
        finally:
            await alice.close()
            await bob.close()
