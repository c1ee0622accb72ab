"""End-to-end encryption through the hub with the SDK: OMEMO 2 with SCE, and the hub never sees
what people write."""

from __future__ import annotations

import asyncio
from pathlib import Path

from interlink.client import InterlinkClient, TextMessage
from interlink.client.client import FALLBACK_BODY
from interlink.hub.session import Session
from interlink.xmpp.stanza import Stanza, to_xml
from tests.integration.kit import DOMAIN, running_hub


async def next_text(client: InterlinkClient, wait: float = 10.0) -> TextMessage:
    while True:
        event = await client.next_event(wait)
        if isinstance(event, TextMessage):
            return event


async def test_two_sdk_users_exchange_encrypted_text_and_the_hub_sees_no_plaintext(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        assert server.hub is not None
        routed: list[str] = []
        original = server.hub.router.route

        def recording_route(session: Session, stanza: Stanza):  # type: ignore[no-untyped-def]
            routed.append(to_xml(stanza))
            return original(session, stanza)

        server.hub.router.route = recording_route  # type: ignore[method-assign]
        port = server.ports["c2s-starttls"]
        alice = InterlinkClient(
            f"alice@{DOMAIN}/phone", "pw", data_dir=tmp_path / "alice", port=port, ca_file=certs.ca
        )
        bob = InterlinkClient(
            f"bob@{DOMAIN}/laptop", "pw", data_dir=tmp_path / "bob", port=port, ca_file=certs.ca
        )
        await alice.connect()
        await bob.connect()
        try:
            secrets_said = ["the eagle lands at noon", "réponse: 42 ☃", "third message"]
            await alice.send_text(f"bob@{DOMAIN}", secrets_said[0])
            got = await next_text(bob)
            assert got.text == secrets_said[0]
            assert got.sender == f"alice@{DOMAIN}/phone"
            assert got.namespace == "urn:xmpp:omemo:2"
            assert not got.flagged
            await bob.send_text(f"alice@{DOMAIN}", secrets_said[1])
            assert (await next_text(alice)).text == secrets_said[1]
            await alice.send_text(f"bob@{DOMAIN}", secrets_said[2])
            assert (await next_text(bob)).text == secrets_said[2]
            everything = "\n".join(routed)
            assert (
                "urn:xmpp:omemo:2}encrypted" in everything
                or 'encrypted xmlns="urn:xmpp:omemo:2"' in everything
            )
            for text in secrets_said:
                assert text not in everything
                assert text.encode().hex() not in everything
            bodies = [line for line in routed if "<body>" in line]
            assert bodies
            assert all(FALLBACK_BODY in line for line in bodies)
        finally:
            await alice.close()
            await bob.close()


async def test_offline_recipient_decrypts_after_reconnecting_with_its_saved_keys(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = InterlinkClient(
            f"alice@{DOMAIN}/phone", "pw", data_dir=tmp_path / "alice", port=port, ca_file=certs.ca
        )
        bob = InterlinkClient(
            f"bob@{DOMAIN}/laptop", "pw", data_dir=tmp_path / "bob", port=port, ca_file=certs.ca
        )
        await bob.connect()  # publishes Bob's keys
        await bob.close()
        await alice.connect()
        try:
            await alice.send_text(f"bob@{DOMAIN}", "while you were away")
            await asyncio.sleep(0.3)
            bob = InterlinkClient(
                f"bob@{DOMAIN}/laptop", "pw", data_dir=tmp_path / "bob", port=port, ca_file=certs.ca
            )
            await bob.connect()  # same data dir: same device, same keys
            assert (await next_text(bob)).text == "while you were away"
        finally:
            await alice.close()
            await bob.close()
