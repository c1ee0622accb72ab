"""``interlink demo``: the whole system on loopback in one command, with a transcript.

A hub and a reference provider kit start with temporary data; the operator onboards the provider;
Alice (a user of the hub, the "large messenger") turns third-party chats on; Bob (a user of the
provider "Example Chat") enlists with proof of his identity key and logs in. They talk: Bob's
first message arrives as a message request, Alice accepts, they exchange end-to-end encrypted
text, receipts and a displayed marker; Bob goes offline and his provider gets a content-free
push; Alice sends an image, Bob downloads and checks it; Bob sends a photo kept on his provider's
media host, which Alice's app fetches through the hub's media proxy (the host sees the hub, never
Alice); Alice makes a group with Bob in it and they talk there, encrypted to every member's
devices. For every step the transcript shows what each person's client showed, and beside it
exactly what the hub and the provider saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from PIL import Image
from rich.console import Console
from rich.table import Table

from interlink.app import HubServer, admin_token
from interlink.client import (
    ClientEvent,
    Displayed,
    FileMessage,
    GroupMessage,
    InterlinkClient,
    KitUploader,
    Receipt,
    TextMessage,
)
from interlink.client.enlist import enlist, fetch_token, identity_thumbprint
from interlink.config import Settings
from interlink.hub.observers import HubObservers
from interlink.hub.session import Session
from interlink.media.model import MediaLimits
from interlink.media.store import MediaStore
from interlink.provider.app import KitConfig, build_kit_app
from interlink.provider.store import KitStore
from interlink.xmpp.sasl import derive_credentials
from interlink.xmpp.stanza import Stanza, to_xml

DOMAIN = "hub.demo.localhost"
PROVIDER = "examplechat"
WAIT = 20.0


class DemoFailed(Exception):
    """A step did not happen as it should; the message says which."""


@dataclass
class Step:
    title: str
    people: list[str] = field(default_factory=list)
    hub: list[str] = field(default_factory=list)
    provider: list[str] = field(default_factory=list)


_SHORT = {
    "urn:xmpp:omemo:2": "omemo:2",
    "eu.siacs.conversations.axolotl": "omemo-legacy",
    "urn:xmpp:hints": "hint",
    "urn:xmpp:eme:0": "eme",
    "urn:interlink:interop:0": "interop",
    "urn:interlink:hints:0": "interlink",  # the no-push hint, shown as before
    "http://jabber.org/protocol/pubsub": "pubsub",
    "urn:xmpp:http:upload:0": "upload",
    "urn:interlink:media:0": "media",
    "http://jabber.org/protocol/caps": "caps",
    "http://jabber.org/protocol/disco#info": "disco",
    "urn:xmpp:carbons:2": "carbons",
    "jabber:iq:roster": "roster",
}
_HIDDEN = ("pubsub", "disco", "carbons", "roster", "urn:xmpp:ping")


def _tag(tag: str) -> str:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return f"{_SHORT.get(namespace, namespace)}:{local}"
    return tag


def describe_stanza(session: Session, stanza: Stanza) -> str:
    """One line of what the hub sees: who, to whom, kind, size and payload element names."""
    xml = to_xml(stanza)
    kind = type(stanza).__name__.lower()
    parts = []
    for el in stanza.payload:
        name = _tag(el.tag)
        if el.tag == "{jabber:client}body":
            name = "body (the OMEMO fallback notice)"
        parts.append(name)
    to = str(stanza.to) if stanza.to is not None else "(own account)"
    return (
        f"{kind} {getattr(stanza.type, 'value', '')} {session.jid.bare} → {to}: "
        f"{len(xml)} bytes; {', '.join(parts) or 'no payload'}"
    )


class Demo:
    def __init__(self, console: Console, root: Path) -> None:
        self.console = console
        self.root = root
        self.steps: list[Step] = []
        self._hub_seen: list[str] = []
        self._provider_seen: list[str] = []
        self._marks = (0, 0)
        self.kit_url = ""

    # -- recording -------------------------------------------------------------------------------
    def _record_stanza(self, session: Session, stanza: Stanza) -> None:
        """The hub's observer: every stanza it routes, as the hub sees it."""
        line = describe_stanza(session, stanza)
        if not any(hidden in line for hidden in _HIDDEN):  # key directory and bookkeeping
            self._hub_seen.append(line)

    def _tap_http(self, app: FastAPI, seen: list[str]) -> None:
        """Record the HTTP requests ``app`` answers (method, path, size, status)."""

        @app.middleware("http")
        async def record(request: Request, call_next: Callable[..., Awaitable[Response]]) -> Any:
            response = await call_next(request)
            path = request.url.path
            if path.startswith("/media/"):
                path = "/media/<unguessable id>/…"
            size = request.headers.get("content-length", "0")
            line = f"{request.method} {path} ({size} bytes in) → {response.status_code}"
            if request.method == "GET" and path.startswith("/media/"):
                peer = request.client.host if request.client is not None else "?"
                agent = request.headers.get("user-agent", "")
                line += f", from {peer}, User-Agent {agent}"
            seen.append(line)
            return response

    async def settle(self) -> None:
        """Let the hub finish routing what the clients just sent before the next step."""
        await asyncio.sleep(0.3)

    def step(self, title: str) -> Step:
        hub_mark, provider_mark = self._marks
        if self.steps:
            previous = self.steps[-1]
            previous.hub = self._hub_seen[hub_mark:]
            previous.provider = self._provider_seen[provider_mark:]
        self._marks = (len(self._hub_seen), len(self._provider_seen))
        step = Step(title)
        self.steps.append(step)
        self.console.log(f"[bold]{title}")
        return step

    def finish(self) -> None:
        self.step("end")
        self.steps.pop()

    def transcript(self) -> Table:
        table = Table(title="Interlink demo: what everyone saw", show_lines=True, expand=True)
        table.add_column("step", style="bold", ratio=2)
        table.add_column("what the people's apps showed", ratio=4)
        table.add_column("what the hub saw", ratio=5, style="cyan")
        table.add_column("what the provider saw", ratio=3, style="magenta")
        for step in self.steps:
            table.add_row(
                step.title,
                "\n".join(step.people) or "—",
                "\n".join(step.hub) or "—",
                "\n".join(step.provider) or "—",
            )
        return table

    def _kit(
        self, sock: socket.socket, kit_url: str, hub_url: str, ca: Path
    ) -> AbstractAsyncContextManager[KitStore]:
        return _kit_app(self, sock, kit_url, hub_url, ca)

    # -- the run ---------------------------------------------------------------------------------
    async def run(self) -> None:
        settings = Settings.model_validate(
            {
                "hub": {"domain": DOMAIN, "data_dir": str(self.root / "hub")},
                "net": {"host": "127.0.0.1", "c2s_port": 0, "c2s_tls_port": 0, "http_port": 0},
                "storage": {"sqlite_synchronous": "NORMAL"},
                "log": {"level": "ERROR"},
                "interop": {"allow_insecure_loopback": True},
                "media": {"proxy_private_allowlist": ["127.0.0.1"]},
            }
        )
        server = HubServer(
            settings,
            observers=HubObservers(stanza_routed=(self._record_stanza,)),
            http_hooks=(lambda app: self._tap_http(app, self._hub_seen),),
        )
        with self.console.status("starting the hub (self-signed certificate, SQLite)…"):
            await server.start()
        try:
            await self._with_hub(server, settings)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.stop(), 10)

    async def _with_hub(self, server: HubServer, settings: Settings) -> None:
        assert server.storage is not None
        ca = settings.hub.data_dir / "tls" / "dev-cert.pem"
        hub_url = f"https://127.0.0.1:{server.ports['http']}"
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        kit_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.kit_url = kit_url
        async with self._kit(sock, kit_url, hub_url, ca) as kit:
            step = self.step("1. The operator onboards Example Chat; the users get accounts")
            verify = ssl.create_default_context(cafile=str(ca))
            async with httpx.AsyncClient(base_url=hub_url, verify=verify, timeout=10) as http:
                auth = {"Authorization": f"Bearer {admin_token(settings)}"}
                body = {
                    "id": PROVIDER,
                    "display_name": "Example Chat",
                    "callback_url": kit_url,
                    "jwks_url": f"{kit_url}/.well-known/jwks.json",
                    "media_hosts": [kit_url.removeprefix("http://")],
                    "features": ["messaging", "media", "introspection"],
                }
                for path, payload in (
                    ("/admin/v1/providers", body),
                    (f"/admin/v1/providers/{PROVIDER}/approve", None),
                ):
                    answer = await http.post(path, json=payload, headers=auth)
                    if answer.status_code >= 300:
                        raise DemoFailed(f"onboarding failed: {answer.text}")
            await server.storage.accounts.create(
                f"alice@{DOMAIN}", derive_credentials("alice-secret", 4096), time.time()
            )
            await kit.add_user("bob", "bob-secret")
            step.people.append("operator: Example Chat approved; alice@ created on the hub")
            step.people.append("Example Chat: user bob created at the provider")

            bob_dir = self.root / "bob"
            thumbprint = await identity_thumbprint(bob_dir)

            async def token() -> str:
                return await fetch_token(kit_url, "bob", "bob-secret", thumbprint)

            step = self.step("2. Bob enlists with proof of his key and logs in (OAUTHBEARER)")
            enlisted = await enlist(bob_dir, hub_url, DOMAIN, await token(), ca_file=ca)
            step.people.append(f"Bob: enlisted as {enlisted.jid}")
            port = server.ports["c2s-starttls"]
            alice = InterlinkClient(
                f"alice@{DOMAIN}/phone",
                "alice-secret",
                data_dir=self.root / "alice",
                port=port,
                ca_file=ca,
                http_url=hub_url,
            )
            bob = InterlinkClient(
                f"{enlisted.jid}/app",
                "",
                data_dir=bob_dir,
                port=port,
                ca_file=ca,
                token_provider=token,
                uploader=KitUploader(kit_url, "bob", "bob-secret"),
            )
            await alice.connect()
            await bob.connect()
            try:
                await self._conversation(alice, bob, enlisted.jid, kit, token, port, ca)
                await self.settle()
            finally:
                await alice.close()
                await bob.close()
        self.finish()

    async def _conversation(
        self,
        alice: InterlinkClient,
        bob: InterlinkClient,
        bob_jid: str,
        kit: KitStore,
        token: Callable[[], Awaitable[str]],
        port: int,
        ca: Path,
    ) -> None:
        await self.settle()
        step = self.step("3. Alice turns on chats with other services")
        settings = await alice.interop_settings()
        step.people.append(f"Alice: third-party chats were {'on' if settings.enabled else 'off'}")
        settings = await alice.set_interop_settings(enabled=True)
        step.people.append(f"Alice: now on, inbox {settings.inbox}, all approved providers")

        await self.settle()
        step = self.step("4. Bob writes first: a message request")
        await bob.send_text(f"alice@{DOMAIN}", "Hi Alice, it's Bob from Example Chat!")
        got = await _next(alice, TextMessage)
        marker = got.interop
        if marker is None or not marker.request:
            raise DemoFailed("Bob's first message did not arrive as a message request")
        step.people.append(
            f"Alice: REQUEST from {marker.user} ({marker.provider_name}), "
            f'{marker.inbox} inbox: "{got.text}"'
        )

        await self.settle()
        step = self.step("5. Alice accepts and replies; receipts come back")
        await alice.accept_request(bob_jid)
        step.people.append("Alice: accepted Bob's request")
        await alice.send_text(bob_jid, "Hi Bob! Welcome.")
        reply = await _next(bob, TextMessage)
        step.people.append(f'Bob: "{reply.text}" (from {reply.sender.split("/")[0]})')
        receipt = await _next(alice, Receipt)
        step.people.append(f"Alice: ✓✓ delivered ({receipt.message_id})")
        await bob.send_displayed(f"alice@{DOMAIN}", reply.message_id or "")
        await _next(alice, Displayed)
        step.people.append("Alice: ✓✓ seen")

        await self.settle()
        step = self.step("6. Bob is offline: the hub stores, the provider gets a push")
        await bob.close()
        await asyncio.sleep(0.3)
        await alice.send_text(bob_jid, "Are you there? Sending you a photo.")
        user = await kit.check_password("bob", "bob-secret")
        assert user is not None
        for _ in range(200):
            if await kit.pushes(user.subject):
                break
            await asyncio.sleep(0.05)
        pushes = await kit.pushes(user.subject)
        if not pushes:
            raise DemoFailed("the provider got no push for Bob's stored message")
        step.people.append(f"Example Chat: push for bob, count {pushes[-1]['count']}, no content")

        await self.settle()
        step = self.step("7. Alice sends an image (encrypted, stored on Alice's side)")
        photo = self.root / "lake.png"
        Image.new("RGB", (640, 400), (40, 110, 170)).save(photo)
        await alice.send_file(bob_jid, photo, kind="image", caption="the lake this morning")
        step.people.append("Alice: sent lake.png (640×400) with a caption")

        await self.settle()
        step = self.step("8. Bob comes back: stored message, then the image")
        again = InterlinkClient(
            f"{bob_jid}/app",
            "",
            data_dir=self.root / "bob",
            port=port,
            ca_file=ca,
            token_provider=token,
            uploader=KitUploader(self.kit_url, "bob", "bob-secret"),
        )
        await again.connect()
        try:
            stored = await _next(again, TextMessage)
            step.people.append(f'Bob: "{stored.text}" (stored while offline)')
            shared = await _next(again, FileMessage)
            path = await again.download(shared, self.root / "bob-downloads")
            if path.read_bytes() != photo.read_bytes():
                raise DemoFailed("the downloaded image differs from the one sent")
            info = shared.file
            step.people.append(
                f'Bob: image {info.width}×{info.height} "{info.caption}", '
                "both SHA-256 hashes and the GCM tag checked"
            )
            await self._image_through_proxy(alice, again)
            await self._group(alice, again, bob_jid)
        finally:
            await again.close()

    async def _image_through_proxy(self, alice: InterlinkClient, bob: InterlinkClient) -> None:
        """Bob's photo lives on Example Chat's media host; Alice's app fetches it through the
        hub's media proxy, so the host sees the hub, never Alice."""
        await self.settle()
        step = self.step("9. Bob sends a photo from Example Chat; Alice fetches it via the hub")
        photo = self.root / "harbour.png"
        Image.new("RGB", (320, 200), (200, 120, 40)).save(photo)
        await bob.send_file(f"alice@{DOMAIN}", photo, kind="image", caption="the harbour")
        step.people.append("Bob: sent harbour.png (320×200), stored on Example Chat's host")
        mark = len(self._provider_seen)
        shared = await _next(alice, FileMessage)
        path = await alice.download(shared, self.root / "alice-downloads")
        if path.read_bytes() != photo.read_bytes():
            raise DemoFailed("the photo Alice downloaded differs from the one Bob sent")
        step.people.append(
            'Alice: image 320×200 "the harbour", fetched through the hub\'s media proxy, '
            "hashes and tag checked"
        )
        fetched = [line for line in self._provider_seen[mark:] if line.startswith("GET /media/")]
        if not fetched or not all("User-Agent Interlink-media-proxy" in f for f in fetched):
            raise DemoFailed(f"the media host was not fetched by the hub's proxy: {fetched}")
        step.people.append(
            "Example Chat's media host: one GET, from the hub's proxy (its address and "
            "User-Agent); Alice's app connected to the hub only"
        )

    async def _group(self, alice: InterlinkClient, bob: InterlinkClient, bob_jid: str) -> None:
        await self.settle()
        step = self.step("10. A group with a member from another service")
        room = f"lake-trip@groups.{DOMAIN}"
        await alice.create_group(room, "Alice", name="Lake trip")
        await alice.add_group_member(room, bob_jid)
        step.people.append(
            f"Alice: created {room} (members-only, encrypted-only), added Bob; the hub shows "
            "Bob an alias for her in this room, never her phone number"
        )
        joined = await bob.join_group(room, "Bob")
        step.people.append(f"Bob: entered; members {', '.join(sorted(joined.members))}")
        await alice.send_group_text(room, "Who brings the boat?")
        heard = await _next(bob, GroupMessage)
        step.people.append(f'Bob: "{heard.text}" from {heard.nick} in the group')
        await bob.send_group_text(room, "I will, see you Saturday")
        answer = await _next(alice, GroupMessage)
        marker = answer.interop
        if marker is None:
            raise DemoFailed("Bob's group message carried no interop marker")
        step.people.append(
            f'Alice: "{answer.text}" from {answer.nick} ({marker.provider_name}), '
            "encrypted to every member's devices"
        )


async def _next(client: InterlinkClient, kind: type[Any]) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DemoFailed(f"{client.bare} did not get a {kind.__name__} in {WAIT:.0f} s")
        try:
            event: ClientEvent = await client.next_event(left)
        except TimeoutError:
            continue  # the deadline check above reports it
        if isinstance(event, kind):
            return event


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@asynccontextmanager
async def _serve(app: FastAPI, sock: socket.socket) -> AsyncIterator[None]:
    server = _Quiet(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False))
    task = asyncio.get_running_loop().create_task(server.serve([sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


@asynccontextmanager
async def _kit_app(
    demo: Demo, sock: socket.socket, kit_url: str, hub_url: str, ca: Path
) -> AsyncIterator[KitStore]:
    store = await KitStore.open(demo.root / "kit.sqlite3")
    media = MediaStore(
        await store.media_repository(), demo.root / "kit-media", limits=MediaLimits()
    )
    client = httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca)), timeout=10)
    app = build_kit_app(
        KitConfig(PROVIDER, DOMAIN, hub_url, public_url=kit_url),
        store,
        await store.signing_seed(),
        client,
        media=media,
    )
    demo._tap_http(app, demo._provider_seen)
    try:
        async with _serve(app, sock):
            yield store
    finally:
        await client.aclose()
        await store.close()


async def run_demo(console: Console, root: Path | None = None) -> int:
    """Run the demo and print its transcript; 0 on success, 1 with the reason otherwise."""
    logging.getLogger("omemo").setLevel(logging.ERROR)  # its notes on device lists are not ours
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="interlink-demo-")))
        demo = Demo(console, root)
        try:
            await asyncio.wait_for(demo.run(), 180)
        except (DemoFailed, TimeoutError, OSError, httpx.HTTPError) as exc:
            demo.finish()
            console.print(demo.transcript())
            console.print(f"[bold red]demo failed:[/] {exc}")
            return 1
        console.print(demo.transcript())
        console.print(
            "[bold green]demo passed:[/] the hub and the provider saw sizes, addresses and "
            "timing, never the words or the picture."
        )
        return 0
