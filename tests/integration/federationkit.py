"""The federation tests' world: the hub with s2s on, and a stock XMPP server as a federated
provider's server, whichever it is (issue 15).

The stock servers (Debian's Prosody 0.12, tests/integration/prosodykit.py, and ejabberd 23.01,
tests/integration/ejabberdkit.py) stand behind one interface, :class:`PeerServer`: a test takes
the ``stock_server`` fixture (tests/integration/conftest.py), a :class:`StockServer`, runs once
per server in :data:`SERVERS`, and is skipped, with the reason, only where that server is not
installed (scripts/bootstrap installs both). :func:`world` starts the hub and the server, each
finding the other as in production: the server through DNS (a loopback DNS server answering
``_xmpp-server._tcp.<hub domain>``), the hub through the provider record's ``s2s_address``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from xml.etree.ElementTree import Element

import pytest
import slixmpp
import trustme
from _pytest.mark import ParameterSet

from interlink.app import HubServer
from interlink.net.s2s import S2SService
from interlink.storage.enlistment import InteropAccount
from interlink.storage.providers import Provider, ProviderMode, ProviderStatus
from interlink.xmpp.ext import interop
from interlink.xmpp.s2s.certs import fingerprint, pem_to_der
from interlink.xmpp.sasl import derive_credentials
from tests.integration.ejabberdkit import ejabberd_libs, running_ejabberd
from tests.integration.kit import TIMEOUT, Xmpp, settings_for
from tests.integration.prosodykit import (
    PROSODY,
    FederationCerts,
    federation_certs,
    loopback_dns,
    running_prosody,
)

# Not under .test: libunbound answers NXDOMAIN for the special-use names itself (RFC 6761).
DOMAIN = "hub.example"
GROUPS = f"groups.{DOMAIN}"  # the hub's group service: its rooms federate too (issue 18)
PEER = "chat.example"
ROGUE = "rogue.example"  # served by the same stock server, never onboarded
PROVIDER = "chatprov"
PHONE = "4915112345678"
HOME = f"{PHONE}@{DOMAIN}"


class PeerServer(Protocol):
    """A running stock server (:class:`~tests.integration.prosodykit.Prosody`,
    :class:`~tests.integration.ejabberdkit.Ejabberd`)."""

    c2s_port: int
    s2s_port: int

    @property
    def log(self) -> str: ...

    async def register(self, user: str, host: str, password: str) -> None: ...

    def closed_outgoing(self, local: str, remote: str) -> bool: ...


Runner = Callable[
    [Path, tuple[str, ...], FederationCerts, int, Path | None],
    AbstractAsyncContextManager[PeerServer],
]


@dataclass(frozen=True)
class StockServer:
    """One stock server: how to run it as the provider's (``run(folder, hosts, certs, hub's s2s
    port, CA file it trusts or None for the test CA)``), and why it cannot run here, if so."""

    name: str
    missing: str | None
    run: Runner


@asynccontextmanager
async def _prosody(
    folder: Path, hosts: tuple[str, ...], certs: FederationCerts, hub_port: int, ca: Path | None
) -> AsyncIterator[PeerServer]:
    srv = {f"_xmpp-server._tcp.{d}": (d, hub_port) for d in (DOMAIN, GROUPS)}
    async with (
        loopback_dns({DOMAIN: "127.0.0.1", GROUPS: "127.0.0.1"}, srv) as dns,
        running_prosody(folder, hosts, certs, dns.port, ca_file=ca) as prosody,
    ):
        yield prosody


@asynccontextmanager
async def _ejabberd(
    folder: Path, hosts: tuple[str, ...], certs: FederationCerts, hub_port: int, ca: Path | None
) -> AsyncIterator[PeerServer]:
    # ejabberd resolves the SRV target through the C library: "localhost" (ejabberdkit)
    srv = {f"_xmpp-server._tcp.{d}": ("localhost", hub_port) for d in (DOMAIN, GROUPS)}
    async with (
        loopback_dns({}, srv) as dns,
        running_ejabberd(folder, hosts, certs, dns.port, ca_file=ca) as ejabberd,
    ):
        yield ejabberd


PROSODY_SERVER = StockServer(
    "prosody",
    None if Path(PROSODY).exists() else "prosody is not installed (scripts/bootstrap installs it)",
    _prosody,
)
EJABBERD_SERVER = StockServer(
    "ejabberd",
    None if ejabberd_libs() else "ejabberd is not installed (scripts/bootstrap installs it)",
    _ejabberd,
)


def servers(*chosen: StockServer) -> list[ParameterSet]:
    """Parameters of the ``stock_server`` fixture: each server, skipped where it is missing."""
    return [
        pytest.param(
            s, id=s.name, marks=pytest.mark.skipif(s.missing is not None, reason=s.missing or "")
        )
        for s in chosen
    ]


SERVERS = servers(PROSODY_SERVER, EJABBERD_SERVER)


@dataclass
class World:
    hub: HubServer
    s2s: S2SService
    server: StockServer
    peer: PeerServer
    certs: FederationCerts
    wire: list[bytes] = field(default_factory=list)  # what crossed the s2s links, both ways

    def alias(self) -> str:
        """The gatekeeper user's address as the provider's users see it."""
        assert self.hub.hub is not None
        return self.hub.hub.federation.aliases.alias(PHONE, PROVIDER, DOMAIN) + "@" + DOMAIN

    async def metrics(self) -> str:
        """What the hub's metrics endpoint shows now (Prometheus text)."""
        assert self.hub.metrics is not None
        return (await self.hub.metrics.render()).decode()


def federating_hub(folder: Path, certs: FederationCerts, **sections: dict[str, Any]) -> HubServer:
    """A hub for :data:`DOMAIN` with s2s on an ephemeral port; ``sections``: more settings (an
    ``s2s`` section adds to ``enabled``)."""
    s2s = {"enabled": True, **sections.pop("s2s", {})}
    return HubServer(
        settings_for(
            folder, certs.hub, hub={"domain": DOMAIN}, net={"s2s_port": 0}, s2s=s2s, **sections
        )
    )


async def onboard(
    hub: HubServer,
    s2s_address: str,
    *,
    s2s_ca: str | None,
    fingerprints: tuple[str, ...] = (),
    media_hosts: tuple[str, ...] = (),
    callback_url: str = "https://chat.example/hub",
    jwks_url: str = "https://chat.example/jwks",
) -> None:
    """Onboard and approve :data:`PROVIDER`, federated, serving :data:`PEER`, its server at
    ``s2s_address``; and create the gatekeeper user :data:`HOME` (password ``pw``)."""
    assert hub.registry is not None
    assert hub.storage is not None
    await hub.registry.add(
        Provider(
            PROVIDER,
            "Chat Test",
            callback_url,
            jwks_url=jwks_url,
            mode=ProviderMode.FEDERATED,
            server_domains=(PEER,),
            s2s_ca=s2s_ca,
            s2s_fingerprints=fingerprints,
            s2s_address=s2s_address,
            media_hosts=media_hosts,
        ),
        "test",
    )
    await hub.registry.set_status(PROVIDER, ProviderStatus.APPROVED, "test")
    await hub.storage.accounts.create(HOME, derive_credentials("pw", 4096), time.time())


@asynccontextmanager
async def world(
    tmp_path: Path,
    server: StockServer,
    *,
    media_hosts: tuple[str, ...] = (),
    pinned: bool = False,
    trusts_hub: bool = True,
    admin: dict[str, Any] | None = None,
) -> AsyncIterator[World]:
    """The hub and the stock ``server`` serving ``chat.example`` (onboarded, federated) and
    ``rogue.example`` (not). ``media_hosts``: the provider's upload hosts (loopback ones are
    then fetched by the media proxy, as in the demo). ``pinned``: the provider's record pins
    the SHA-256 fingerprint of the server's certificate and names no CA (the hub trusts nothing
    else about it: its issuer is unknown to the hub). ``trusts_hub=False``: the server trusts
    another CA than the hub's issuer, so it cannot authenticate the hub by its certificate.
    ``admin``: the hub's ``[admin]`` section (an operator token, to onboard a plug-and-play
    provider beside the federated one)."""
    certs = federation_certs(tmp_path / "certs", DOMAIN, (PEER, ROGUE))
    ca_file = None
    if not trusts_hub:
        ca_file = tmp_path / "certs" / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(ca_file))
    loopback_media: dict[str, dict[str, Any]] = (
        {
            "media": {"proxy_private_allowlist": ["127.0.0.1"]},
            "interop": {"allow_insecure_loopback": True},
        }
        if media_hosts
        else {}
    )
    if admin is not None:
        loopback_media["admin"] = admin
    hub = federating_hub(tmp_path / "hub", certs, log={"level": "INFO"}, **loopback_media)
    await hub.start()
    try:
        async with server.run(
            tmp_path / server.name, (PEER, ROGUE), certs, hub.ports["s2s"], ca_file
        ) as peer:
            assert hub.s2s is not None
            pin = fingerprint(pem_to_der(certs.peer_cert.read_bytes()))
            await onboard(
                hub,
                f"127.0.0.1:{peer.s2s_port}",
                s2s_ca=None if pinned else certs.ca_pem,
                fingerprints=(pin,) if pinned else (),
                media_hosts=media_hosts,
            )
            w = World(hub, hub.s2s, server, peer, certs)
            hub.s2s.taps.append(lambda _link, data: w.wire.append(data))
            yield w
    finally:
        await asyncio.wait_for(hub.stop(), timeout=TIMEOUT)


async def enlist(hub: HubServer, jid: str, identity_key: bytes = b"\x01" * 32) -> None:
    """What the Enlistment API stores for a federated user of :data:`PROVIDER` (its own JID as
    the account), with the Ed25519 identity key its client proved (the hub serves only that
    key's bundles)."""
    assert hub.storage is not None
    now = time.time()
    await hub.storage.enlistment.commit_enlistment(
        issuer=PROVIDER,
        jti=f"jti-{jid}-{identity_key.hex()}",
        jti_expires_at=now + 300,
        account=InteropAccount(jid, PROVIDER, jid, None, identity_key, now, now),
        new_key=True,
        now=now,
    )


async def interop_iq(user: Xmpp, payload: str) -> Any:
    iq = user.client.make_iq_set()
    iq.append(slixmpp.ET.fromstring(payload))
    return await iq.send(timeout=TIMEOUT)  # type: ignore[no-untyped-call]


async def gatekeeper(w: World) -> Xmpp:
    """The gatekeeper user, opted in to third-party messages."""
    user = Xmpp(HOME, "pw", w.certs.hub)
    await user.login(w.hub.ports["c2s-starttls"])
    await interop_iq(user, f"<settings xmlns='{interop.NS}' enabled='true'/>")
    return user


async def accept(home: Xmpp, jid: str) -> None:
    """The gatekeeper user accepts ``jid``'s message request."""
    await interop_iq(home, f"<accept xmlns='{interop.NS}' jid='{jid}'/>")


async def on_server(w: World, local: str, host: str = PEER) -> Xmpp:
    """A new user ``local@host`` of the stock server, logged in (its errors are messages)."""
    await w.peer.register(local, host, "pw")
    user = Xmpp(f"{local}@{host}", "pw", w.certs.hub)
    user.client.add_event_handler("message_error", user.messages.put_nowait)
    await user.login(w.peer.c2s_port)
    return user


@asynccontextmanager
async def users(
    w: World, local: str = "alice", host: str = PEER, *, enlisted: bool = True
) -> AsyncIterator[tuple[Xmpp, Xmpp]]:
    """The gatekeeper user (opted in) and a new user ``local@host`` of the stock server (its
    account enlisted with :data:`PROVIDER` unless ``enlisted`` is false), closed at the end."""
    if enlisted:
        await enlist(w.hub, f"{local}@{host}")
    home = await gatekeeper(w)
    try:
        peer = await on_server(w, local, host)
        try:
            yield home, peer
        finally:
            await peer.close()
    finally:
        await home.close()


def marker(msg: Any) -> Element | None:
    """The interop marker the hub puts on what a third party sends."""
    found: Element | None = msg.xml.find(interop.MARKER)
    return found


def open_form(user: Xmpp) -> Any:
    """Publish options making a PEP node readable by anyone (as Conversations publishes)."""
    forms: Any = user.client.plugin["xep_0004"]
    form = forms.make_form(ftype="submit")
    form.add_field(
        var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options"
    )
    form.add_field(var="pubsub#access_model", value="open")
    return form


async def open_nodes(peer: Any, own: slixmpp.JID) -> None:
    """Prosody's PEP nodes are readable by contacts with a presence subscription unless made
    open, and slixmpp-omemo keeps the default; Conversations and the SDK publish them open."""
    disco: Any = peer.client.plugin["xep_0030"]
    items = await disco.get_items(jid=own, timeout=10)
    pubsub: Any = peer.client.plugin["xep_0060"]
    forms: Any = peer.client.plugin["xep_0004"]
    for _jid, node, _name in items["disco_items"]["items"]:
        if not node:
            continue
        form = forms.make_form(ftype="submit")
        form.add_field(
            var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#node_config"
        )
        form.add_field(var="pubsub#access_model", value="open")
        await pubsub.set_node_config(own, node, form, timeout=10)
