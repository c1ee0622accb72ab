"""Bad encrypted input reaches an SDK user: each gives a clear DecryptionFailed event, the
session state stays intact and later messages still decrypt."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID

from interlink.client import DecryptionFailed, EncryptionProblem, InterlinkClient, TextMessage
from interlink.client.client import ClientError
from tests.integration.kit import DOMAIN, Xmpp, next_of, record_routed, running_hub


def strip_from(xml: str) -> str:
    return re.sub(r' from="[^"]*"', "", xml, count=1)


def flip_payload(xml: str) -> str:
    def flip(m: re.Match[str]) -> str:
        text = m.group(1)
        swapped = ("B" if text[0] != "B" else "C") + text[1:]
        return f"<payload>{swapped}</payload>"

    return re.sub(r"<payload>([^<]+)</payload>", flip, xml, count=1)


CASES: list[tuple[str, Callable[[str], str]]] = [
    ("replayed message", lambda xml: xml),
    ("tampered ciphertext", flip_payload),
    ("unknown device id", lambda xml: re.sub(r'sid="\d+"', 'sid="123456"', xml, count=1)),
    ("message for a removed device", lambda xml: re.sub(r'rid="\d+"', 'rid="654321"', xml)),
    (
        "malformed encrypted element",
        lambda xml: re.sub(r"<header .*</header>", '<header sid="x"/>', xml, flags=re.S),
    ),
]


@pytest.mark.parametrize(("name", "mangle"), CASES, ids=[c[0] for c in CASES])
async def test_bad_encrypted_input(tmp_path: Path, name: str, mangle: Callable[[str], str]) -> None:
    async with running_hub(tmp_path) as (server, certs):
        routed = record_routed(server)
        port = server.ports["c2s-starttls"]
        alice = InterlinkClient(
            f"alice@{DOMAIN}/phone", "pw", data_dir=tmp_path / "a", port=port, ca_file=certs.ca
        )
        bob = InterlinkClient(
            f"bob@{DOMAIN}/b", "pw", data_dir=tmp_path / "b", port=port, ca_file=certs.ca
        )
        evil = Xmpp(f"bob@{DOMAIN}/evil", "pw", certs)
        await alice.connect()
        await bob.connect()
        await evil.login(port)
        try:
            await bob.send_text(f"alice@{DOMAIN}", "original")
            first = await next_of(alice, TextMessage)
            assert isinstance(first, TextMessage)
            assert first.text == "original"
            captured = next(
                x
                for x in routed
                if x.startswith("<message") and 'encrypted xmlns="urn:xmpp:omemo:2"' in x
            )
            evil.client.send_raw(mangle(strip_from(captured)))
            failed = await next_of(alice, DecryptionFailed)
            assert isinstance(failed, DecryptionFailed)
            assert failed.sender.startswith(f"bob@{DOMAIN}/")
            assert failed.reason  # says what went wrong
            await bob.send_text(f"alice@{DOMAIN}", f"after the {name}")
            later = await next_of(alice, TextMessage)
            assert isinstance(later, TextMessage)
            assert later.text == f"after the {name}"
            await alice.send_text(f"bob@{DOMAIN}", "and back")
            back = await next_of(bob, TextMessage)
            assert isinstance(back, TextMessage)
            assert back.text == "and back"
        finally:
            await evil.close()
            await alice.close()
            await bob.close()


async def test_a_bundle_with_an_invalid_signature_is_refused(tmp_path: Path) -> None:
    async with running_hub(tmp_path, accounts=("alice", "bob", "carol")) as (server, certs):
        port = server.ports["c2s-starttls"]
        alice = InterlinkClient(
            f"alice@{DOMAIN}/phone", "pw", data_dir=tmp_path / "a", port=port, ca_file=certs.ca
        )
        bob = InterlinkClient(
            f"bob@{DOMAIN}/b", "pw", data_dir=tmp_path / "b", port=port, ca_file=certs.ca
        )
        carol = InterlinkClient(
            f"carol@{DOMAIN}/c", "pw", data_dir=tmp_path / "c", port=port, ca_file=certs.ca
        )
        for c in (alice, bob, carol):
            await c.connect()
        tamper = Xmpp(f"carol@{DOMAIN}/tamper", "pw", certs)
        await tamper.login(port)
        try:
            assert carol.manager is not None
            this, _ = await carol.manager.get_own_device_information()
            await corrupt_bundle_signature(tamper, this.device_id)
            with pytest.raises(ClientError, match="cannot encrypt"):
                await alice.send_text(f"carol@{DOMAIN}", "you should not read this")
            problem = await next_of(alice, EncryptionProblem)
            assert isinstance(problem, EncryptionProblem)
            assert problem.peer == f"carol@{DOMAIN}"
            assert problem.reason
            # Alice's state is intact: she still talks to Bob.
            await alice.send_text(f"bob@{DOMAIN}", "still fine")
            got = await next_of(bob, TextMessage)
            assert isinstance(got, TextMessage)
            assert got.text == "still fine"
        finally:
            await tamper.close()
            for c in (alice, bob, carol):
                await c.close()


async def corrupt_bundle_signature(client: Xmpp, device_id: int) -> None:
    """Flip a bit of the signed prekey's signature in a published OMEMO 2 bundle."""
    for plugin in ("xep_0004", "xep_0060"):
        client.client.register_plugin(plugin)
    pubsub: Any = client.client.plugin["xep_0060"]
    own = JID(f"carol@{DOMAIN}")
    node = "urn:xmpp:omemo:2:bundles"
    result = await pubsub.get_items(own, node, item_ids=[str(device_id)], timeout=10)
    bundle = result["pubsub"]["items"]["item"]["payload"]
    spks = bundle.find("{urn:xmpp:omemo:2}spks")
    raw = bytearray(base64.b64decode(spks.text))
    raw[0] ^= 0xFF
    spks.text = base64.b64encode(bytes(raw)).decode()
    await pubsub.publish(own, node, id=str(device_id), payload=bundle, timeout=10)
