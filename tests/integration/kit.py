"""Loopback integration kit: an in-process hub with trustme certificates, slixmpp clients, and a
raw XMPP client for hostile input. Everything binds to 127.0.0.1 and is bounded in time."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from xml.etree.ElementTree import Element

import slixmpp
import trustme

from interlink.app import HubServer
from interlink.config import Settings
from interlink.hub.observers import HubObservers
from interlink.hub.session import Session
from interlink.xmpp.parser import ElementReceived, ParseFailed, StreamFooter, StreamParser
from interlink.xmpp.sasl import derive_credentials
from interlink.xmpp.stanza import Stanza, to_xml

if TYPE_CHECKING:
    from interlink.client import ClientEvent, InterlinkClient, TextMessage
    from tests.interop.enlistkit import ThirdParty

E = TypeVar("E")

DOMAIN = "hub.test"
TIMEOUT = 10.0


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        return ctx


def make_certs(folder: Path) -> Certs:
    ca = trustme.CA()
    issued = ca.issue_cert(DOMAIN, f"*.interop.{DOMAIN}", "localhost", "127.0.0.1")
    certs = Certs(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    ca.cert_pem.write_to_path(str(certs.ca))
    issued.cert_chain_pems[0].write_to_path(str(certs.cert))
    issued.private_key_pem.write_to_path(str(certs.key))
    return certs


def settings_for(data_dir: Path, certs: Certs, **sections: dict[str, Any]) -> Settings:
    raw: dict[str, dict[str, Any]] = {
        "hub": {"domain": DOMAIN, "data_dir": str(data_dir)},
        "net": {"host": "127.0.0.1", "c2s_port": 0, "c2s_tls_port": 0, "http_port": 0},
        "tls": {"cert_file": str(certs.cert), "key_file": str(certs.key)},
        "storage": {"sqlite_synchronous": "NORMAL"},
        "log": {"level": "WARNING"},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    if "domains" in raw["hub"]:
        raw["hub"].pop("domain")  # several services instead of the one
    return Settings.model_validate(raw)


@asynccontextmanager
async def running_hub(
    tmp: Path, *, accounts: tuple[str, ...] = ("alice", "bob"), **sections: dict[str, Any]
) -> AsyncIterator[tuple[HubServer, Certs]]:
    """A hub over ``tmp``, with new certificates (see :func:`started_hub`), stopped at the end."""
    certs = make_certs(tmp)
    server = await started_hub(tmp, certs, accounts=accounts, **sections)
    try:
        yield server, certs
    finally:
        await asyncio.wait_for(server.stop(), timeout=TIMEOUT)


async def started_hub(
    tmp: Path, certs: Certs, *, accounts: tuple[str, ...] = ("alice", "bob"), **sections: Any
) -> HubServer:
    """A started hub over ``tmp / "data"`` (the same data when started again: a restart), with
    the ``accounts`` (local parts, password ``pw``) created; ``sections``: more settings."""
    recorder = _Recorder()
    server = HubServer(
        settings_for(tmp / "data", certs, **sections),
        observers=HubObservers(stanza_routed=(recorder,)),
    )
    _recorders[server] = recorder
    await server.start()
    assert server.storage is not None
    creds = derive_credentials("pw", 4096)
    for local in accounts:
        await server.storage.accounts.create(f"{local}@{DOMAIN}", creds, time.time())
    return server


class Xmpp:
    """A slixmpp client with a queue of received messages."""

    def __init__(self, jid: str, password: str, certs: Certs) -> None:
        self.client = slixmpp.ClientXMPP(jid, password)
        self.client.ca_certs = certs.ca
        self.client.register_plugin("xep_0030")
        self.client.register_plugin("xep_0199")
        self.messages: asyncio.Queue[Any] = asyncio.Queue()
        self.presences: asyncio.Queue[Any] = asyncio.Queue()
        self.started = asyncio.Event()
        self.failed = asyncio.Event()
        c = self.client
        c.add_event_handler("session_start", lambda _: self.started.set())
        c.add_event_handler("failed_all_auth", lambda _: self.failed.set())
        c.add_event_handler("message", self.messages.put_nowait)
        c.add_event_handler("presence", self.presences.put_nowait)

    async def login(self, port: int, *, direct_tls: bool = False, presence: bool = True) -> None:
        c = self.client
        c.enable_direct_tls = direct_tls
        c.enable_starttls = not direct_tls
        c.enable_plaintext = False
        c.connect("127.0.0.1", port)
        _done, _ = await asyncio.wait(
            [asyncio.ensure_future(self.started.wait()), asyncio.ensure_future(self.failed.wait())],
            timeout=TIMEOUT,
            return_when=asyncio.FIRST_COMPLETED,
        )
        for task in _:
            task.cancel()
        if not self.started.is_set():
            c.abort()
            raise AssertionError(f"login failed for {c.boundjid}")
        if presence:
            c.send_presence()

    def send_chat(self, to: str, body: str) -> None:
        self.client.send_message(mto=slixmpp.JID(to), mbody=body, mtype="chat")

    async def ping_server(self) -> float:
        """A round trip to the hub; answered only after every earlier stanza was handled."""
        rtt: float = await self.client.plugin["xep_0199"].ping(
            jid=slixmpp.JID(DOMAIN), timeout=TIMEOUT
        )
        return rtt

    async def next_message(self, timeout: float = TIMEOUT) -> Any:
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def next_message_of(
        self, kind: str, body: str | None = None, *, texted: bool = False, timeout: float = TIMEOUT
    ) -> Any:
        """The next message of type ``kind`` (``chat``, ``groupchat``, ``error``...) within
        ``timeout`` seconds, skipping any other: with ``body``, the next with that text; with
        ``texted``, the next with any text (not a subject change, a chat state or a marker)."""

        async def wait() -> Any:
            while True:
                msg = await self.messages.get()
                if msg["type"] != kind:
                    continue
                if (body is None or msg["body"] == body) and (msg["body"] or not texted):
                    return msg

        return await asyncio.wait_for(wait(), timeout)

    def record_received(self) -> list[bytes]:
        """Every byte the client receives from now on (see :func:`record_received`)."""
        return record_received(self.client)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.disconnect(wait=1), timeout=5)


def record_received(stream: slixmpp.BaseXMPP) -> list[bytes]:
    """Every byte a slixmpp ``stream`` receives from now on, as its transport hands them to
    slixmpp: what its plugins keep from the test's handlers too (a list that grows)."""
    kept: list[bytes] = []
    read = stream.data_received

    def tap(data: bytes) -> None:
        kept.append(data)
        read(data)

    stream.data_received = tap  # type: ignore[method-assign,assignment]
    return kept


class RawClient:
    """A bare XMPP peer for sending exactly the bytes a test wants."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = StreamParser()
        self.elements: list[Element] = []
        self.footer = False

    @staticmethod
    async def open(port: int, ctx: ssl.SSLContext | None = None) -> RawClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname=DOMAIN if ctx else None
            ),
            TIMEOUT,
        )
        return RawClient(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def restart(self) -> None:
        self.parser = StreamParser()

    async def read_until(self, tag: str, timeout: float = TIMEOUT) -> Element:
        """Read until an element whose local name is ``tag`` arrives."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for i, el in enumerate(self.elements):
                if el.tag.rsplit("}", 1)[-1] == tag:
                    del self.elements[: i + 1]
                    return el
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0 or self.footer:
                raise AssertionError(f"no <{tag}/> arrived; got {[e.tag for e in self.elements]}")
            data = await asyncio.wait_for(self.reader.read(65536), remaining)
            if not data:
                self.footer = True
            for ev in self.parser.feed(data):
                if isinstance(ev, ElementReceived):
                    self.elements.append(ev.element)
                elif isinstance(ev, StreamFooter):
                    self.footer = True
                elif isinstance(ev, ParseFailed):
                    raise AssertionError(f"server sent bad XML: {ev.error}")

    async def stream_error(self, timeout: float = TIMEOUT) -> str:
        err = await self.read_until("error", timeout)
        assert err.tag == "{http://etherx.jabber.org/streams}error", err.tag
        await self.wait_closed(timeout)
        return err[0].tag.rsplit("}", 1)[-1]

    async def wait_closed(self, timeout: float = TIMEOUT) -> None:
        """The server closes the TCP connection after its stream error."""
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while await asyncio.wait_for(self.reader.read(65536), timeout):
                pass

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2)

    # -- scripted negotiation ------------------------------------------------------------------
    def header(self) -> bytes:
        return (
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
        ).encode()

    async def open_stream(self) -> Element:
        await self.send(self.header())
        return await self.read_until("features")

    async def plain_login(self, user: str, password: str, resource: str = "raw") -> str:
        """On a direct TLS connection: PLAIN, restart, bind. Returns the bound JID."""
        await self.open_stream()
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await self.send(
            f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>".encode()
        )
        await self.read_until("success")
        self.restart()
        await self.open_stream()
        await self.send(
            b"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            + f"<resource>{resource}</resource></bind></iq>".encode()
        )
        result = await self.read_until("iq")
        if result.get("type") != "result":
            return "error:" + result[0][0].tag.rsplit("}", 1)[-1]
        return result[0][0].text or ""


class _Recorder:
    """The hub's observer in these tests: records stanzas once :func:`record_routed` asks."""

    def __init__(self) -> None:
        self.routed: list[str] | None = None

    def __call__(self, session: Session, stanza: Stanza) -> None:
        if self.routed is not None:
            self.routed.append(to_xml(stanza))


_recorders: weakref.WeakKeyDictionary[HubServer, _Recorder] = weakref.WeakKeyDictionary()


def record_routed(server: HubServer) -> list[str]:
    """Record the XML of every stanza the hub routes from now on (what the hub sees)."""
    recorder = _recorders[server]
    recorder.routed = []
    return recorder.routed


async def onboard_provider(base_url: str, ca: Path, admin_token: str, body: dict[str, Any]) -> None:
    """Register and approve a provider through the admin API."""
    import httpx

    auth = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=base_url, verify=str(ca), timeout=10) as http:
        created = await http.post("/admin/v1/providers", json=body, headers=auth)
        assert created.status_code == 201, created.text
        approved = await http.post(f"/admin/v1/providers/{body['id']}/approve", headers=auth)
        assert approved.status_code == 200, approved.text


@asynccontextmanager
async def serving(app: Any, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Serve an ASGI app (a provider's endpoints in tests) on 127.0.0.1; yields its base URL."""
    import uvicorn

    class Quiet(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Any:  # the test owns the signals, not uvicorn
            yield

    if sock is None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
    server = Quiet(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False))
    task = asyncio.get_running_loop().create_task(server.serve([sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        server.force_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


ADMIN_TOKEN = "operator-token-for-tests-0123456789"
PROVIDER_ID = "examplechat"


@dataclass
class KitSetup:
    """A running hub with the reference provider kit beside it, the provider onboarded and
    approved, and the kit user ``bob`` (password ``bob-secret``) created."""

    server: HubServer
    certs: Certs
    hub_url: str
    kit_url: str
    kit: Any  # interlink.provider.store.KitStore
    kit_media: Any  # interlink.media.store.MediaStore, when the kit hosts media

    async def token_for(self, device_dir: Path, user: str = "bob") -> Any:
        """A token provider (fresh kit token per call) bound to ``device_dir``'s identity key."""
        from interlink.client.enlist import fetch_token, identity_thumbprint

        thumbprint = await identity_thumbprint(device_dir)

        async def token() -> str:
            return await fetch_token(self.kit_url, user, f"{user}-secret", thumbprint)

        return token

    async def enlist(self, device_dir: Path, user: str = "bob") -> tuple[str, Any]:
        """Enlist ``user``'s device: its JID and its token provider."""
        from interlink.client.enlist import enlist

        token = await self.token_for(device_dir, user)
        enlisted = await enlist(
            device_dir, self.hub_url, DOMAIN, await token(), ca_file=self.certs.ca
        )
        return enlisted.jid, token


@asynccontextmanager
async def hub_with_kit(
    tmp: Path,
    *,
    features: tuple[str, ...] = ("messaging", "introspection"),
    kit_media: Any = None,
    kit_sock: socket.socket | None = None,
    hub_facing: dict[str, str] | None = None,
    onboard: bool = True,
    **sections: dict[str, Any],
) -> AsyncIterator[KitSetup]:
    """``kit_media``: MediaLimits for the kit's media host (its host:port goes on the provider's
    media allowlist), or None for no media host. ``kit_sock``: the bound socket the kit serves on
    (default: a new one). ``hub_facing``: the base URLs the hub is given instead of the kit's
    own, ``callback`` (its endpoints and JWKS) and ``media`` (the media host, as users' messages
    name it) — a test puts its taps there. ``onboard=False`` leaves the onboarding (and approval)
    to the test."""
    import httpx

    from interlink.media.store import MediaStore
    from interlink.provider.app import KitConfig, build_kit_app
    from interlink.provider.store import KitStore

    sock = kit_sock
    if sock is None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
    kit_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    callback_url = (hub_facing or {}).get("callback", kit_url)
    media_url = (hub_facing or {}).get("media", kit_url)
    sections.setdefault("admin", {}).setdefault("token", ADMIN_TOKEN)
    sections.setdefault("interop", {}).setdefault("allow_insecure_loopback", True)
    # (mypy cannot tell that no section is called "accounts")
    async with running_hub(tmp, **sections) as (server, certs):  # type: ignore[arg-type]
        hub_url = f"https://127.0.0.1:{server.ports['http']}"
        store = await KitStore.open(tmp / "kit.sqlite3")
        media = None
        if kit_media is not None:
            media = MediaStore(await store.media_repository(), tmp / "kit-media", limits=kit_media)
        client = httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(certs.ca)))
        app = build_kit_app(
            KitConfig(PROVIDER_ID, DOMAIN, hub_url, public_url=media_url),
            store,
            await store.signing_seed(),
            client,
            media=media,
        )
        try:
            async with serving(app, sock):
                await store.add_user("bob", "bob-secret")
                body: dict[str, Any] = {
                    "id": PROVIDER_ID,
                    "display_name": "Example Chat",
                    "callback_url": callback_url,
                    "jwks_url": f"{callback_url}/.well-known/jwks.json",
                    "features": list(features),
                }
                if media is not None:
                    body["media_hosts"] = [media_url.removeprefix("http://")]
                if onboard:
                    await onboard_provider(hub_url, certs.ca, sections["admin"]["token"], body)
                yield KitSetup(server, certs, hub_url, kit_url, store, media)
        finally:
            await client.aclose()
            await store.close()


def sdk_client(
    tmp: Path, jid: str, port: int, certs: Certs, folder: str, **options: Any
) -> InterlinkClient:
    """An SDK client of ``jid`` (password ``pw``) for the hub's c2s ``port``, its state in
    ``tmp / folder``; ``options``: more of :class:`InterlinkClient`'s."""
    from interlink.client import InterlinkClient

    return InterlinkClient(jid, "pw", data_dir=tmp / folder, port=port, ca_file=certs.ca, **options)


async def enlisted_client(
    party: ThirdParty,
    device: Path,
    base: str,
    port: int,
    certs: Certs,
    *,
    subject: str | None = None,
    **options: Any,
) -> InterlinkClient:
    """A user of ``party`` (``subject``, else the kit's default one) on a new device whose state
    is in ``device``: enlisted through the Enlistment API at ``base`` (its identity key bound
    to the provider's token), and its SDK client, not yet connected, logging in with fresh
    tokens; ``options``: more of the client's constructor's."""
    from interlink.client import InterlinkClient
    from interlink.client.enlist import enlist, identity_thumbprint

    thumbprint = await identity_thumbprint(device)
    who = () if subject is None else (subject,)

    async def token() -> str:
        return party.token(*who, aud=DOMAIN, cnf={"jkt": thumbprint})

    enlisted = await enlist(device, base, DOMAIN, await token(), ca_file=certs.ca)
    return InterlinkClient(
        f"{enlisted.jid}/app",
        "",
        data_dir=device,
        port=port,
        ca_file=certs.ca,
        token_provider=token,
        **options,
    )


async def next_of(client: InterlinkClient, kind: type[E], wait: float = 20.0) -> E:
    """The next event of ``kind`` an SDK client reports, within ``wait`` seconds (other events
    are skipped).

    Raises:
        TimeoutError: none came in time.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        event = await client.next_event(max(0.01, deadline - loop.time()))
        if isinstance(event, kind):
            return event


async def next_text(client: InterlinkClient, wait: float = 20.0) -> TextMessage:
    """The next TextMessage event of an SDK client, within ``wait`` seconds (see :func:`next_of`)."""
    from interlink.client import TextMessage

    return await next_of(client, TextMessage, wait)


async def drain(client: InterlinkClient, wait: float = 1.0) -> list[ClientEvent]:
    """The events an SDK client reports until none comes for ``wait`` seconds."""
    got: list[ClientEvent] = []
    with contextlib.suppress(TimeoutError):
        while True:
            got.append(await client.next_event(wait))
    return got
