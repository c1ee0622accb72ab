"""The metadata ledger's federation model (tests/integration/test_metadata_ledger.py): a stock
Prosody (tests/integration/prosodykit.py) as a federated provider's server, with a TCP tap on each
s2s direction and on the provider's HTTP endpoint, and a conversation between its user and a
gatekeeper user of the SDK (:func:`federated`)."""

from __future__ import annotations

import asyncio
import re
import ssl
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import slixmpp
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from interlink.app import HubServer
from interlink.client import InterlinkClient, TextMessage
from interlink.client.errors import ClientError
from interlink.client.media import parse_aesgcm
from tests.integration.federationkit import (
    DOMAIN,
    HOME,
    PEER,
    PROVIDER,
    enlist,
    federating_hub,
    onboard,
    open_nodes,
)
from tests.integration.kit import Certs, Xmpp, next_of
from tests.integration.ledgerkit import (
    PEER_TEXT,
    PHONE,
    REPLY_TEXT,
    REPORT_TEXT,
    REQUEST_TEXT,
    VOICE_NAME,
    Conversation,
    Observations,
    Run,
    capturing_logs,
    decrypted,
    environment,
    joined,
    provider_requests,
    started,
    voice_note,
)
from tests.integration.omemokit import announce_legacy_only, peer_omemo, send_encrypted
from tests.integration.prosodykit import federation_certs, loopback_dns, running_prosody
from tests.integration.taps import (
    Tap,
    http_requests,
)

# -- the federation model (the hub, provider and users of tests/integration/federationkit.py) ----
FED_DOMAIN = DOMAIN  # not under .test: libunbound refuses the special-use names
PEER_JID = f"ledgerpeer@{PEER}"
assert f"{PHONE}@{FED_DOMAIN}" == HOME  # the ledger looks for this phone number
FEDERATION_OBSERVERS = (
    "s2s wire",
    "provider's server",
    "provider's server: from the hub",
    "provider HTTP",
    "hub logs",
)


async def provider_endpoints(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """The federated provider's HTTP endpoints (reports), answering every request with 204."""
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            await reader.readexactly(int(length[1]) if length else 0)
            writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def federated(tmp: Path) -> Run:
    """A user of a stock Prosody (``ledgerpeer@chat.example``, slixmpp with slixmpp-omemo) and a
    gatekeeper user of the SDK: a message request (in clear: the hub shows the gatekeeper user's
    keys at the alias only after acceptance), acceptance, OMEMO-encrypted text both ways (legacy
    OMEMO, the only version slixmpp-omemo speaks), the peer's receipt, displayed marker and
    typing (the SDK sends those inside OMEMO 2 only, so not to a legacy peer), a voice note from
    the gatekeeper user (uploaded to the hub's XEP-0363 service; the aesgcm:// URL travels inside
    OMEMO and the peer's client fetches the file from the hub), and a report with the peer's
    message attached. Not in this model: discovery by phone number (the API serves plug-and-play
    providers' tokens; a federated provider has none), push (a federated user's server has its
    own), and media from the peer (a legacy OMEMO file is an aesgcm:// URL the SDK shows as
    text; with OMEMO 2 the SDK would fetch it directly, see the report of issue 16)."""
    observations = Observations(FEDERATION_OBSERVERS)
    keylog = tmp / "s2s-keys.log"
    certs = federation_certs(tmp / "certs", FED_DOMAIN, (PEER,))
    async with AsyncExitStack() as stack:
        stack.enter_context(environment("SSLKEYLOGFILE", str(keylog)))
        await stack.enter_async_context(capturing_logs(observations))
        hub = federating_hub(tmp / "hub", certs, interop={"allow_insecure_loopback": True})
        await hub.start()
        stack.push_async_callback(hub.stop)
        assert hub.registry is not None
        assert hub.storage is not None
        # Prosody -> tap -> hub (through DNS), hub -> tap -> Prosody (the static s2s address)
        inbound = await started(stack, Tap("127.0.0.1", hub.ports["s2s"]))
        dns = await stack.enter_async_context(
            loopback_dns(
                {FED_DOMAIN: "127.0.0.1"},
                {f"_xmpp-server._tcp.{FED_DOMAIN}": (FED_DOMAIN, inbound.port_bound)},
            )
        )
        prosody = await stack.enter_async_context(
            running_prosody(tmp / "prosody", (PEER,), certs, dns.port)
        )
        outbound = await started(stack, Tap("127.0.0.1", prosody.s2s_port))
        endpoints = await asyncio.start_server(provider_endpoints, "127.0.0.1", 0)
        stack.callback(endpoints.close)
        callback = await started(stack, Tap("127.0.0.1", endpoints.sockets[0].getsockname()[1]))
        await onboard(
            hub,
            outbound.address,
            s2s_ca=certs.ca_pem,
            callback_url=f"http://{callback.address}",
            jwks_url=f"http://{callback.address}/.well-known/jwks.json",
        )
        await enlist(hub, PEER_JID)
        assert hub.hub is not None
        alias = hub.hub.federation.aliases.alias(PHONE, PROVIDER, FED_DOMAIN) + "@" + FED_DOMAIN
        conversation = Conversation(HOME, PEER_JID, alias=alias)
        await federated_conversation(hub, prosody, certs.hub, alias, tmp)
        for _ in range(200):  # the report, forwarded to the provider's endpoint
            if any(http_requests(bytes(f.up)) for f in callback.flows):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the last stanzas through the taps
        s2s = inbound.flows + outbound.flows
        observations.add("s2s wire", b"\n".join(bytes(f.up) + bytes(f.down) for f in s2s))
        dialled, opened_in = decrypted(inbound.flows, keylog)  # up: Prosody's, down: the hub's
        answered, opened_out = decrypted(outbound.flows, keylog)  # up: the hub's
        assert opened_in == len(inbound.flows) >= 1, "an s2s stream the ledger could not read"
        assert opened_out == len(outbound.flows) >= 1, "an s2s stream the ledger could not read"
        observations.add("provider's server", joined(dialled + answered))
        from_hub = [down for _up, down in dialled] + [up for up, _down in answered]
        observations.add("provider's server: from the hub", b"\n".join(from_hub))
        await stack.aclose()
        provider_requests(callback, observations)
    return observations, conversation


async def federated_conversation(
    hub: HubServer, prosody: Any, certs: Certs, alias: str, tmp: Path
) -> None:
    await prosody.register(PEER_JID.split("@")[0], PEER, "pw")
    peer = Xmpp(f"{PEER_JID}/slixmpp-omemo", "pw", certs)
    peer.client.register_plugin("xep_0004")
    peer.client.register_plugin("xep_0085")
    peer.client.register_plugin("xep_0333")
    omemo = peer_omemo(peer)
    await peer.login(prosody.c2s_port)
    decrypted_texts: asyncio.Queue[str] = asyncio.Queue()
    seen_by_peer: list[Any] = []

    async def on_message(msg: Any) -> None:
        seen_by_peer.append(msg)
        if omemo.is_encrypted(msg):
            clear, _device = await omemo.decrypt_message(msg)
            if clear["body"]:
                decrypted_texts.put_nowait(clear["body"])

    peer.client.add_event_handler("message", on_message)
    # the gatekeeper user: legacy OMEMO only, whatever the peer announces (see the report of
    # issue 16: OMEMO 2's envelope is being changed not to name the phone number)
    home = InterlinkClient(
        f"{HOME}/phone",
        "pw",
        data_dir=tmp / "home",
        port=hub.ports["c2s-starttls"],
        ca_file=certs.ca,
        omemo2=False,
    )
    watcher = Xmpp(f"{HOME}/other", "pw", certs)
    try:
        manager = await omemo.get_session_manager()  # keys published on Prosody
        own_device, *_ = await manager.get_own_device_information()
        # its provider enlists the device's identity key: the hub passes only its bundles
        await enlist(hub, PEER_JID, own_device.identity_key)
        own = slixmpp.JID(PEER_JID)
        await announce_legacy_only(peer, omemo, own)
        await open_nodes(peer, own)
        await home.connect()
        await home.set_interop_settings(enabled=True, discoverable=True)
        # request, accept: the request is in clear, which the SDK does not show; the gatekeeper
        # user's other client (plain XMPP) does
        await watcher.login(hub.ports["c2s-starttls"])
        peer.send_chat(alias, REQUEST_TEXT)
        request = await watcher.next_message(timeout=20)
        assert request["body"] == REQUEST_TEXT
        await home.accept_request(PEER_JID)
        # text, gatekeeper -> peer (encrypted), with the receipt the peer sends; no typing this
        # way: the SDK sends chat states inside OMEMO 2 only (legacy OMEMO carries text alone)
        with pytest.raises(ClientError, match="legacy OMEMO can only carry text"):
            await home.send_chat_state(PEER_JID, "composing")
        reply_id = await home.send_text(PEER_JID, REPLY_TEXT)
        assert await asyncio.wait_for(decrypted_texts.get(), 20) == REPLY_TEXT
        receipt = peer.client.make_message(mto=slixmpp.JID(alias), mtype="chat")
        receipt.append(
            slixmpp.ET.fromstring(f"<received xmlns='urn:xmpp:receipts' id='{reply_id}'/>")
        )
        receipt.send()
        marker = peer.client.make_message(mto=slixmpp.JID(alias), mtype="chat")
        marker.append(
            slixmpp.ET.fromstring(f"<displayed xmlns='urn:xmpp:chat-markers:0' id='{reply_id}'/>")
        )
        marker.send()
        # typing and text, peer -> gatekeeper (encrypted)
        typing = peer.client.make_message(mto=slixmpp.JID(alias), mtype="chat")
        typing.append(
            slixmpp.ET.fromstring("<composing xmlns='http://jabber.org/protocol/chatstates'/>")
        )
        typing.send()
        await send_encrypted(peer, omemo, alias, PEER_TEXT)
        answer = await next_of(home, TextMessage)
        assert answer.text == PEER_TEXT
        # media, gatekeeper -> peer: the ciphertext on the hub's upload service, the aesgcm://
        # URL (its name, key and IV) inside legacy OMEMO; the peer's client fetches it from the hub
        await home.send_file(PEER_JID, voice_note(tmp / VOICE_NAME), kind="voice")
        url = await asyncio.wait_for(decrypted_texts.get(), 20)
        assert url.startswith("aesgcm://")
        https_url, key, iv = parse_aesgcm(url)
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(certs.ca))
        ) as web:
            fetched = await web.get(https_url)
        assert fetched.status_code == 200
        assert AESGCM(key).decrypt(iv, fetched.content, None) == (tmp / VOICE_NAME).read_bytes()
        # report, with the peer's message attached
        await home.block(PEER_JID, report="spam", text=REPORT_TEXT, attach=[answer])
    finally:
        await watcher.close()
        await home.close()
        await peer.close()
