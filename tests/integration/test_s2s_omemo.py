"""OMEMO end to end across the federation boundary (issue 15), each test once with Prosody and
once with ejabberd (tests/integration/federationkit.py): an Interlink SDK user on the hub and a
slixmpp-omemo user on the stock server exchange encrypted messages both ways over s2s, under
the message-request rules, each fetching the other's keys over PEP (the hub's at the alias, the
stock server's through the s2s link).

slixmpp-omemo's plugin speaks legacy OMEMO only (it has no Stanza Content Encryption: see
tests/integration/test_omemo_interop.py), so the SDK falls back to legacy OMEMO for it. For
OMEMO 2 the peer uses slixmpp-omemo's session manager (python-omemo with twomemo) and writes and
reads its XEP-0420 envelopes itself, here, independently of the SDK's code: what it checks is
that the gatekeeper user's envelopes name the alias the peer knows, never the phone number."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import slixmpp
import twomemo
import twomemo.etree
from slixmpp.xmlstream import ET

from interlink.client import ClientError, FileMessage, InterlinkClient, TextMessage, media
from interlink.client.omemo_session import OMEMO2
from interlink.xmpp.xml import serialize
from tests.integration.federationkit import (
    HOME,
    PEER,
    PHONE,
    PROVIDER,
    StockServer,
    World,
    accept,
    enlist,
    gatekeeper,
    open_form,
    open_nodes,
    world,
)
from tests.integration.kit import Xmpp, next_of
from tests.integration.omemokit import (
    announce_legacy_only,
    decrypted_bodies,
    peer_omemo,
    send_encrypted,
)

ALICE = f"alice@{PEER}"


async def omemo_peer(w: World) -> tuple[Xmpp, Any]:
    """``alice`` on the stock server with slixmpp-omemo (a fresh key store), logged in; and its
    OMEMO plugin."""
    await w.peer.register("alice", PEER, "pw")
    peer = Xmpp(f"{ALICE}/slixmpp-omemo", "pw", w.certs.hub)
    peer.client.register_plugin("xep_0004")
    omemo_plugin = peer_omemo(peer)
    await peer.login(w.peer.c2s_port)
    return peer, omemo_plugin


async def publish_keys(w: World, peer: Xmpp, omemo_plugin: Any, *, enlisted: bool = True) -> None:
    """The peer's keys published on its server (slixmpp-omemo does on first use) and readable
    by anyone; with ``enlisted``, its identity key enlisted for its account, as its provider
    would through the Enlistment API."""
    manager = await omemo_plugin.get_session_manager()
    if enlisted:
        own, *_ = await manager.get_own_device_information()
        await enlist(w.hub, ALICE, own.identity_key)
    await open_nodes(peer, slixmpp.JID(ALICE))


def sdk_user(w: World, tmp_path: Path, **options: Any) -> InterlinkClient:
    """The gatekeeper user on the SDK (``options``: more of its constructor's)."""
    return InterlinkClient(
        f"{HOME}/sdk",
        "pw",
        data_dir=tmp_path / "sdk",
        port=w.hub.ports["c2s-starttls"],
        ca_file=w.certs.hub.ca,
        **options,
    )


class OmemoUsers(NamedTuple):
    opt_in: Xmpp  # the gatekeeper user's plain client: opted in, accepts the request
    peer: Xmpp  # alice on the stock server, with slixmpp-omemo
    omemo_plugin: Any  # the peer's OMEMO plugin
    sdk: InterlinkClient  # the gatekeeper user on the SDK (not yet connected)


@asynccontextmanager
async def omemo_users(w: World, tmp_path: Path, **sdk_options: Any) -> AsyncIterator[OmemoUsers]:
    """The gatekeeper user (opted in, and on the SDK) and the stock server's OMEMO user, closed
    at the end; ``sdk_options``: more of the SDK client's constructor's."""
    opt_in = await gatekeeper(w)  # the gatekeeper user's settings: third parties allowed
    try:
        peer, omemo_plugin = await omemo_peer(w)
        try:
            sdk = sdk_user(w, tmp_path, **sdk_options)
            try:
                yield OmemoUsers(opt_in, peer, omemo_plugin, sdk)
            finally:
                await sdk.close()
        finally:
            await peer.close()
    finally:
        await opt_in.close()


async def requested_and_accepted(w: World, peer: Xmpp, opt_in: Xmpp) -> None:
    """A first plaintext message from the peer: a request; the gatekeeper user accepts it."""
    peer.send_chat(w.alias(), "may I write to you?")
    await opt_in.next_message(timeout=20)
    await accept(opt_in, ALICE)


async def test_sdk_and_slixmpp_omemo_exchange_encrypted_messages(
    tmp_path: Path, stock_server: StockServer
) -> None:
    async with (
        world(tmp_path, stock_server) as w,
        omemo_users(w, tmp_path) as (opt_in, peer, omemo_plugin, sdk),
    ):
        received = decrypted_bodies(peer, omemo_plugin)
        await publish_keys(w, peer, omemo_plugin)
        await announce_legacy_only(peer, omemo_plugin, slixmpp.JID(ALICE), options=open_form(peer))
        await requested_and_accepted(w, peer, opt_in)
        await sdk.connect()
        await sdk.send_text(ALICE, "from the Interlink SDK, over s2s")
        assert await asyncio.wait_for(received.get(), 20) == "from the Interlink SDK, over s2s"
        await send_encrypted(
            peer, omemo_plugin, w.alias(), f"from slixmpp-omemo on {stock_server.name}"
        )
        event = await next_of(sdk, TextMessage)
        assert event.text == f"from slixmpp-omemo on {stock_server.name}"
        assert event.sender.startswith(ALICE)
        assert event.namespace == "eu.siacs.conversations.axolotl"
        assert PHONE.encode() not in b"".join(w.wire)


SCE = "urn:xmpp:sce:1"


def peer_envelope(text: str, *, sender: str, recipient: str, content: str | None = None) -> bytes:
    """An XEP-0420 envelope as an independent client writes one (§3, §4); ``content``: the
    content elements as XML (else a body of ``text``)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    inner = content if content is not None else f"<body xmlns='jabber:client'>{text}</body>"
    return (
        f"<envelope xmlns='{SCE}'><content>{inner}</content>"
        f"<rpad>{secrets.token_hex(5)}</rpad><time stamp='{stamp}'/>"
        f"<to jid='{recipient}'/><from jid='{sender}'/></envelope>"
    ).encode()


def read_envelope(data: bytes) -> tuple[str, str, str]:
    """(from, to, body) of an envelope."""
    env = ET.fromstring(data.decode())
    assert env.tag == f"{{{SCE}}}envelope"
    frm, to = env.find(f"{{{SCE}}}from"), env.find(f"{{{SCE}}}to")
    body = env.find(f"{{{SCE}}}content/{{jabber:client}}body")
    assert frm is not None
    assert to is not None
    assert body is not None
    return frm.get("jid", ""), to.get("jid", ""), body.text or ""


async def send_omemo2(
    peer: Xmpp, omemo_plugin: Any, alias: str, envelope: bytes, *, body: str | None = None
) -> None:
    """The peer encrypts ``envelope`` with OMEMO 2 to ``alias``'s devices and sends it, with
    ``body`` as the plaintext fallback if given."""
    manager = await omemo_plugin.get_session_manager()
    await manager.refresh_device_lists(alias)
    messages, errors = await manager.encrypt(
        frozenset({alias}),
        {twomemo.twomemo.NAMESPACE: envelope},
        backend_priority_order=[twomemo.twomemo.NAMESPACE],
    )
    assert not errors
    stanza = peer.client.make_message(mto=slixmpp.JID(alias), mtype="chat")
    for message in messages:
        stanza.xml.append(twomemo.etree.serialize_message(message))
    if body is not None:
        stanza["body"] = body
    stanza.send()


async def test_sdk_and_an_omemo_2_peer_seal_under_the_alias(
    tmp_path: Path, stock_server: StockServer
) -> None:
    """OMEMO 2 across federation (issue 15): the SDK seals its envelopes from the alias the
    stock server's user knows (the hub's ``<alias/>`` answer), and reads the peer's envelopes
    addressed to that alias; the phone number crosses nowhere, not even encrypted."""
    async with (
        world(tmp_path, stock_server) as w,
        omemo_users(w, tmp_path, legacy=False) as (opt_in, peer, omemo_plugin, sdk),
    ):
        envelopes: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()

        async def on_message(msg: Any) -> None:
            found = msg.xml.find(f"{{{twomemo.twomemo.NAMESPACE}}}encrypted")
            if found is None:
                return
            manager = await omemo_plugin.get_session_manager()
            message = twomemo.etree.parse_message(found, msg["from"].bare)
            plaintext, _device, _kex = await manager.decrypt(message)
            if plaintext is not None:
                envelopes.put_nowait(read_envelope(plaintext))

        peer.client.add_event_handler("message", on_message)

        alias = w.alias()
        await publish_keys(w, peer, omemo_plugin)  # both device lists and bundles
        await requested_and_accepted(w, peer, opt_in)
        await sdk.connect()
        await sdk.send_text(ALICE, "OMEMO 2 from the SDK, over s2s")
        sender, recipient, text = await asyncio.wait_for(envelopes.get(), 20)
        assert (sender, recipient, text) == (alias, ALICE, "OMEMO 2 from the SDK, over s2s")
        said = f"OMEMO 2 from {stock_server.name}"
        envelope = peer_envelope(said, sender=ALICE, recipient=alias)
        await send_omemo2(
            peer, omemo_plugin, alias, envelope, body="This message is OMEMO encrypted."
        )
        event = await next_of(sdk, TextMessage)
        assert event.text == said
        assert event.namespace == OMEMO2 == twomemo.twomemo.NAMESPACE
        assert event.sender.startswith(f"{ALICE}/")
        assert event.interop is not None
        assert event.interop.provider == PROVIDER
        assert PHONE.encode() not in b"".join(w.wire)
        assert w.hub.hub is not None
        assert w.hub.hub.ctx.refusals["s2s-bundle-key-not-enlisted"] == 0


async def test_a_bundle_whose_key_was_not_enlisted_never_reaches_the_sdk(
    tmp_path: Path, stock_server: StockServer
) -> None:
    """Issue 15 item 4: the account is enlisted, but with another identity key than the one in
    the bundles its server serves (a substituted key): the hub refuses each bundle on its way
    to the gatekeeper user, who cannot encrypt to that account, and counts it."""
    async with (
        world(tmp_path, stock_server) as w,
        omemo_users(w, tmp_path) as (opt_in, peer, omemo_plugin, sdk),
    ):
        await enlist(w.hub, ALICE)  # a key that is not the device's
        await publish_keys(w, peer, omemo_plugin, enlisted=False)
        await requested_and_accepted(w, peer, opt_in)
        await sdk.connect()
        with pytest.raises(ClientError, match=r"cannot encrypt to alice@chat\.example"):
            await sdk.send_text(ALICE, "to a key nobody enlisted")
        assert w.hub.hub is not None
        assert w.hub.hub.ctx.refusals["s2s-bundle-key-not-enlisted"] >= 1


class UploadHost:
    """A loopback HTTP server standing for the provider's XEP-0363 upload host: serves one
    ciphertext and keeps the request heads it got."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.requests: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head.decode("latin-1"))
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            + f"Content-Length: {len(self.blob)}\r\nConnection: close\r\n\r\n".encode()
            + self.blob
        )
        await writer.drain()
        writer.close()


async def test_a_federated_users_file_is_fetched_through_the_media_proxy(
    tmp_path: Path, stock_server: StockServer
) -> None:
    """Media across the boundary (issue 15 item 6): the stock server's user shares an
    encrypted file (XEP-0447/0454 inside its OMEMO 2 envelope) whose URL is on its provider's
    upload host; the SDK user downloads it through the hub's media proxy only (the host is on
    the provider's ``media_hosts``), never from the host itself."""
    plain = tmp_path / "note.bin"
    plain.write_bytes(secrets.token_bytes(50_000))
    sealed = media.seal_file(plain, tmp_path / "note.sealed")
    host = UploadHost((tmp_path / "note.sealed").read_bytes())
    upload = await asyncio.start_server(host.handle, "127.0.0.1", 0)
    port = upload.sockets[0].getsockname()[1]
    async with (
        upload,
        world(tmp_path, stock_server, media_hosts=(f"127.0.0.1:{port}",)) as w,
        omemo_users(
            w, tmp_path, http_url=f"https://127.0.0.1:{w.hub.ports['http']}", legacy=False
        ) as (opt_in, peer, omemo_plugin, sdk),
    ):
        alias = w.alias()
        await publish_keys(w, peer, omemo_plugin)
        await requested_and_accepted(w, peer, opt_in)
        await sdk.connect()
        info = media.FileInfo(
            "file",
            "note.bin",
            "application/octet-stream",
            sealed.size,
            f"http://127.0.0.1:{port}/upload/abc/note.bin",
            sealed.key,
            sealed.iv,
            sealed.plaintext_sha256,
            sealed.ciphertext_sha256,
        )
        content = "".join(serialize(el) for el in media.file_elements(info))
        envelope = peer_envelope("", sender=ALICE, recipient=alias, content=content)
        await send_omemo2(peer, omemo_plugin, alias, envelope)
        event = await next_of(sdk, FileMessage)
        assert event.interop is not None
        assert event.interop.provider == PROVIDER
        saved = await sdk.download(event, tmp_path / "downloads")
        assert saved.read_bytes() == plain.read_bytes()
        (request,) = host.requests  # one fetch, by the proxy: no address of the user's
        assert "Interlink-media-proxy" in request
        assert PHONE not in request
        assert PHONE.encode() not in b"".join(w.wire)
