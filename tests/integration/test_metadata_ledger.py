"""The metadata ledger (issue 16): one full conversation per connection model, every byte that
crosses a boundary captured by a tap the test owns, and per observer the exact set of fields it
learns.

In the provider-kit models a gatekeeper user (a phone number) and a third-party user of the
provider kit go through: discovery by phone number, a message request, acceptance, text both
ways, delivery receipts and a displayed marker, typing notifications, a voice note stored on the
provider's media host and fetched by the gatekeeper user through the hub's media proxy, a push
while the third-party user is offline, and an abuse report. In the federation model a user of a
stock Prosody (a provider's own server, tests/integration/prosodykit.py) and a gatekeeper user of
the SDK go through what federation supports of the same (see :func:`federated`).

Every boundary is a :class:`~tests.integration.taps.Tap`, a loopback relay the code under test
is pointed at instead of its peer, recording the bytes that actually crossed the socket:

* ``client↔hub wire`` / ``client↔proxy wire`` / ``proxy↔hub wire`` — a network observer on the
  third-party user's path (plug-and-play: to the hub; proxy models: on each side of the proxy);
* ``provider proxy`` — the proxy's operator: the bytes of both of the proxy's sockets, decrypted
  with every TLS secret the proxy holds (its own certificate's sessions and its sessions to the
  hub in terminating mode, logged through ``SSLContext.keylog_filename``; none in blind mode);
* ``provider HTTP`` / ``push receiver`` — the hub's requests to the provider's callback URL and
  JWKS (the provider receives them in clear: it terminates their TLS), split by path;
* ``provider media host`` — the media proxy's fetches from the provider's media host;
* ``s2s wire`` — a network observer between the hub and the provider's server;
* ``provider's server`` — the provider's XMPP server: the s2s streams as it reads them, i.e.
  the tapped bytes decrypted with the TLS session secrets (the hub's side logs them through
  ``SSLKEYLOGFILE``, which :func:`ssl.create_default_context` honours; the two ends of a TLS
  session share them). Not a hook in the hub: the bytes are the tap's;
* ``hub logs`` — every record the hub logs at the default level (INFO), through the same
  redaction filter ``interlink serve`` installs.

Fields are found by searching each observer's bytes for the conversation's known values (the
phone number, both JIDs, the texts…). :data:`EXPECTED` is the exact set per observer and model;
an extra field anywhere fails the test, and :func:`test_the_ledger_catches_a_phone_number_in_a_push`
and :func:`test_the_ledger_catches_a_phone_number_in_an_s2s_stanza` show it does. The table in
docs/metadata.md is rendered from the results: the test fails (and rewrites the page) when the
committed page differs.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from interlink.client import FileMessage, InterlinkClient, KitUploader, TextMessage
from interlink.client.enlist import discover
from interlink.media import MediaLimits
from interlink.net.proxied import fingerprint, public_key_bytes
from interlink.provider.proxy import Mode, ProviderProxy, ProxyConfig, Route
from tests.integration.federationkit import HOME
from tests.integration.kit import (
    DOMAIN,
    KitSetup,
    hub_with_kit,
    next_of,
)
from tests.integration.ledger_federation import (
    FED_DOMAIN,
    FEDERATION_OBSERVERS,
    PEER_JID,
    federated,
)
from tests.integration.ledgerkit import (
    OFFLINE_TEXT,
    PHONE,
    POSITION,
    REPLY_TEXT,
    REPORT_TEXT,
    REQUEST_TEXT,
    VOICE_NAME,
    Conversation,
    LogTap,
    Observations,
    Run,
    capturing_logs,
    decrypted,
    joined,
    learned,
    media_fetches,
    provider_requests,
    started,
    voice_note,
)
from tests.integration.taps import (
    Tap,
    only_tls,
    tls_flow,
)

ALICE = f"{PHONE}@{DOMAIN}"
PROXY_SOURCE = "127.0.0.3"
LEDGER_PAGE = Path(__file__).parents[2] / "docs" / "metadata.md"


# -- connection models of the provider kit -------------------------------------------------------
@dataclass
class Reach:
    """How the third-party user's client reaches the hub, and what to read afterwards."""

    client: dict[str, Any]  # InterlinkClient keyword arguments
    collect: Callable[[Observations], None]


Connector = Callable[[KitSetup, AsyncExitStack, Path], Awaitable[Reach]]


async def plug_and_play(setup: KitSetup, stack: AsyncExitStack, tmp: Path) -> Reach:
    wire = await started(stack, Tap("127.0.0.1", setup.server.ports["c2s-starttls"]))

    def collect(observations: Observations) -> None:
        observations.add("client↔hub wire", wire.wire())

    return Reach({"port": wire.port_bound, "ca_file": setup.certs.ca}, collect)


def through_proxy(mode: Mode) -> Connector:
    async def connect(setup: KitSetup, stack: AsyncExitStack, tmp: Path) -> Reach:
        client_tls = hub_tls = None
        ca_file = setup.certs.ca
        keylog = tmp / "proxy-keys.log"  # every TLS secret the proxy's operator holds
        if mode is Mode.TERMINATING:
            own = trustme.CA()
            client_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            own.issue_cert(DOMAIN, f"*.interop.{DOMAIN}").configure_cert(client_tls)
            hub_tls = ssl.create_default_context(cafile=str(setup.certs.ca))
            for context in (client_tls, hub_tls):
                context.keylog_filename = str(keylog)
            ca_file = tmp / "client-trust.pem"  # the proxy's CA for XMPP, the hub's for HTTPS
            ca_file.write_bytes(own.cert_pem.bytes() + setup.certs.ca.read_bytes())
        # proxy -> tap -> hub; the tap keeps the proxy's source address (registered at the hub)
        upstream = await started(
            stack, Tap("127.0.0.1", setup.server.ports["c2s-direct-tls"], same_source=True)
        )
        proxy = ProviderProxy(
            ProxyConfig(
                [Route(DOMAIN, "127.0.0.1", upstream.port_bound)],
                PROXY_KEY,
                mode,
                client_tls=client_tls,
                hub_tls=hub_tls,
                upstream_source=PROXY_SOURCE,
            )
        )
        _, port = await proxy.start("127.0.0.1", 0)
        stack.push_async_callback(proxy.close)
        downstream = await started(stack, Tap("127.0.0.1", port))

        def collect(observations: Observations) -> None:
            # in both modes both of the proxy's links carry TLS records and nothing else (the
            # hub's link after the signed PROXY header, which names the client's address)
            for flow in downstream.flows + upstream.flows:
                up = bytes(flow.up)
                if flow in upstream.flows:
                    assert up.startswith(PROXY_SIGNATURE)
                    up = up[16 + int.from_bytes(up[14:16], "big") :]
                assert only_tls(up)
                assert only_tls(bytes(flow.down))
            observations.add("client↔proxy wire", downstream.wire())
            observations.add("proxy↔hub wire", upstream.wire())
            view, opened = decrypted(downstream.flows + upstream.flows, keylog)
            # blind: the proxy holds no secret of any session; terminating: of every one
            assert opened == (0 if mode is Mode.BLIND else len(downstream.flows + upstream.flows))
            observations.add("provider proxy", joined(view))

        return Reach(
            {"port": downstream.port_bound, "direct_tls": True, "ca_file": ca_file}, collect
        )

    return connect


# -- the conversation (provider kit) --------------------------------------------------------------
PROXY_KEY = Ed25519PrivateKey.generate()
PROXY_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # PROXY protocol v2


def kit_model(connect: Connector, *wires: str) -> Callable[[Path], Awaitable[Run]]:
    observers = (*wires, "provider HTTP", "push receiver", "provider media host", "hub logs")

    async def run(tmp: Path) -> Run:
        return await run_conversation(connect, observers, tmp)

    return run


async def run_conversation(
    connect: Connector, observers: tuple[str, ...], tmp: Path
) -> tuple[Observations, Conversation]:
    observations = Observations(observers)
    proxies = {
        "registered": [
            {
                "provider": "examplechat",
                "addresses": [f"{PROXY_SOURCE}/32"],
                "fingerprint": fingerprint(public_key_bytes(PROXY_KEY)),
            }
        ]
    }
    kit_sock = socket.socket()
    kit_sock.bind(("127.0.0.1", 0))
    async with AsyncExitStack() as taps:
        # the hub reaches the provider's endpoints and its media host through taps
        kit_port = kit_sock.getsockname()[1]
        callback = await started(taps, Tap("127.0.0.1", kit_port))
        media = await started(taps, Tap("127.0.0.1", kit_port))
        async with (
            capturing_logs(observations),
            hub_with_kit(
                tmp,
                features=("messaging", "media", "introspection"),
                kit_media=MediaLimits(),
                kit_sock=kit_sock,
                hub_facing={
                    "callback": f"http://{callback.address}",
                    "media": f"http://{media.address}",
                },
                accounts=(PHONE,),  # type: ignore[arg-type]
                media={"proxy_private_allowlist": ["127.0.0.1"]},
                proxies=proxies,
            ) as setup,
            AsyncExitStack() as stack,
        ):
            route = await connect(setup, stack, tmp)
            conversation = await kit_conversation(setup, route, tmp)
            await stack.aclose()  # the clients and the proxy first, then what they crossed
            route.collect(observations)
        provider_requests(callback, observations)
        media_fetches(media, observations)
    return observations, conversation


async def kit_conversation(setup: KitSetup, route: Reach, tmp: Path) -> Conversation:
    assert setup.server.storage is not None
    await setup.server.storage.policy.set_phone(ALICE, f"+{PHONE}")
    bob_jid, token = await setup.enlist(tmp / "bob")
    bob_user = await setup.kit.check_password("bob", "bob-secret")
    conversation = Conversation(ALICE, bob_jid, third_party_account=bob_user.subject)

    def bob_client() -> InterlinkClient:
        return InterlinkClient(
            f"{bob_jid}/app",
            "",
            data_dir=tmp / "bob",
            token_provider=token,
            uploader=KitUploader(setup.kit_url, "bob", "bob-secret"),
            http_url=setup.hub_url,
            **route.client,
        )

    alice = InterlinkClient(
        f"{ALICE}/phone",
        "pw",
        data_dir=tmp / "alice",
        port=setup.server.ports["c2s-starttls"],
        ca_file=setup.certs.ca,
        http_url=setup.hub_url,
    )
    bob = bob_client()
    await alice.connect()
    try:
        await bob.connect()
        try:
            # discovery: the third-party user looks the phone number up
            await alice.set_interop_settings(enabled=True, discoverable=True)
            found = await discover(
                setup.hub_url, await token(), f"+{PHONE}", ca_file=setup.certs.ca
            )
            assert found == ALICE
            # request, accept, text both ways, receipts, typing
            await bob.send_text(ALICE, REQUEST_TEXT)
            request = await next_of(alice, TextMessage)
            assert request.interop is not None
            assert request.interop.request
            await alice.accept_request(bob_jid)
            await alice.send_chat_state(bob_jid, "composing")
            await alice.send_text(bob_jid, REPLY_TEXT)
            reply = await next_of(bob, TextMessage)
            assert reply.text == REPLY_TEXT
            await bob.send_displayed(ALICE, reply.message_id or "")
            await bob.send_chat_state(ALICE, "composing")
            # media: stored on the provider's host, fetched through the hub's media proxy
            await bob.send_file(ALICE, voice_note(tmp / VOICE_NAME), kind="voice")
            heard = await next_of(alice, FileMessage)
            saved = await alice.download(heard, tmp / "alice-downloads")
            assert saved.read_bytes() == (tmp / VOICE_NAME).read_bytes()
        finally:
            await bob.close()
        # push: the third-party user is offline
        await asyncio.sleep(0.3)
        await alice.send_text(bob_jid, OFFLINE_TEXT)
        for _ in range(200):
            if await setup.kit.pushes(bob_user.subject):
                break
            await asyncio.sleep(0.05)
        assert await setup.kit.pushes(bob_user.subject)
        # report
        await alice.block(bob_jid, report="spam", text=REPORT_TEXT, attach=[request])
        for _ in range(200):
            if await setup.kit.reports():
                break
            await asyncio.sleep(0.05)
        assert await setup.kit.reports()
        # the offline message reaches the third party when it comes back
        again = bob_client()
        await again.connect()
        try:
            assert (await next_of(again, TextMessage)).text == OFFLINE_TEXT
        finally:
            await again.close()
    finally:
        await alice.close()
    return conversation


# -- the models -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    name: str
    run: Callable[[Path], Awaitable[Run]]


MODELS = [
    Model("plug-and-play", kit_model(plug_and_play, "client↔hub wire")),
    Model(
        "proxy (blind)",
        kit_model(
            through_proxy(Mode.BLIND), "client↔proxy wire", "provider proxy", "proxy↔hub wire"
        ),
    ),
    Model(
        "proxy (terminating)",
        kit_model(
            through_proxy(Mode.TERMINATING), "client↔proxy wire", "provider proxy", "proxy↔hub wire"
        ),
    ),
    Model("federation", federated),
]

_NOTHING: list[str] = []
_PROVIDER_ALWAYS = {
    "provider HTTP": [
        "report reason",
        "third-party account (provider's id)",
        "third-party user's message text",
    ],
    "push receiver": ["third-party account (provider's id)"],
    "provider media host": ["media file name"],
    "hub logs": _NOTHING,
}
EXPECTED: dict[str, dict[str, list[str]]] = {
    "plug-and-play": {"client↔hub wire": _NOTHING, **_PROVIDER_ALWAYS},
    "proxy (blind)": {
        "client↔proxy wire": _NOTHING,
        "provider proxy": _NOTHING,
        "proxy↔hub wire": _NOTHING,
        **_PROVIDER_ALWAYS,
    },
    "proxy (terminating)": {
        "client↔proxy wire": _NOTHING,
        # Receipts, markers and chat states travel inside the OMEMO 2 envelope (SCE), and the
        # hub shares no presence across the interop boundary: the stream shows addresses only.
        "provider proxy": ["gatekeeper JID", "gatekeeper phone number", "third-party JID"],
        "proxy↔hub wire": _NOTHING,
        **_PROVIDER_ALWAYS,
    },
    "federation": {
        # the stream headers before STARTTLS name the two services' domains, nobody's address
        "s2s wire": _NOTHING,
        # its own user's stanzas (the request in clear, its receipt, marker and typing) and,
        # from the hub, the per-provider alias: no phone number, no presence, no IP address
        "provider's server": [
            "gatekeeper alias (per provider)",
            "receipts and markers",
            "third-party JID",
            "third-party user's message text",
            "typing notifications",
        ],
        "provider's server: from the hub": ["gatekeeper alias (per provider)", "third-party JID"],
        # the report: its reason, the attached message, the account (its JID for a federated one)
        "provider HTTP": ["report reason", "third-party JID", "third-party user's message text"],
        "hub logs": _NOTHING,
    },
}


# -- the tests ------------------------------------------------------------------------------------
RESULTS: dict[str, dict[str, list[str]]] = {}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
async def test_each_observer_learns_exactly_the_expected_fields(
    model: Model, tmp_path: Path
) -> None:
    observations, conversation = await model.run(tmp_path)
    found = learned(observations, conversation)
    for observer in ("client↔proxy wire", "proxy↔hub wire", "s2s wire", "provider's server"):
        if observer in observations.seen:  # it did carry the conversation
            assert len(observations.seen[observer]) > 10_000, observer
    for observer in ("push receiver", "provider media host", "provider HTTP", "hub logs"):
        if observer in observations.seen:
            assert observations.seen[observer], f"nothing observed by {observer}"
    assert found == EXPECTED[model.name]
    RESULTS[model.name] = found


def test_the_ledger_catches_a_phone_number_in_a_push() -> None:
    """The test of the test: the same observations with the gatekeeper's phone number added to a
    push no longer match the ledger, and the failure names the observer and the field."""
    observations = Observations(tuple(POSITION))
    conversation = Conversation(ALICE, f"abc123@examplechat.interop.{DOMAIN}", "subject-1")
    observations.add("push receiver", b'POST /interlink/v1/push\n{"sub": "subject-1"}')
    assert learned(observations, conversation)["push receiver"] == [
        "third-party account (provider's id)"
    ]
    observations.add("push receiver", json.dumps({"from": f"+{PHONE}"}).encode())
    found = learned(observations, conversation)
    assert found["push receiver"] != EXPECTED["plug-and-play"]["push receiver"]
    assert "gatekeeper phone number" in found["push receiver"]
    # and every observer's bytes are searched, not only the push receiver's
    for observer in POSITION:
        injected = Observations(tuple(POSITION))
        injected.add(observer, ALICE.encode())
        assert learned(injected, conversation)[observer] == [
            "gatekeeper JID",
            "gatekeeper phone number",
        ]


async def test_the_ledger_catches_a_phone_number_in_an_s2s_stanza(tmp_path: Path) -> None:
    """The federation boundary's test of the test: an s2s stream (STARTTLS, through a tap,
    decrypted the way the federation model reads it) whose stanza names the phone number no
    longer matches the ledger; without it, it matches the row of what the hub sends."""
    alias = f"gabcdefgh@{FED_DOMAIN}"
    conversation = Conversation(HOME, PEER_JID, alias=alias)
    observer = "provider's server: from the hub"

    async def provider_view(stanza: bytes, keylog: Path) -> list[str]:
        flow = await tls_flow(b"<stream:stream to='chat.example'>", stanza, keylog)
        assert b"<message" not in bytes(flow.up)  # the wire: TLS records
        view, opened = decrypted([flow], keylog)
        assert opened == 1
        observations = Observations(FEDERATION_OBSERVERS)
        observations.add(observer, joined(view))
        return learned(observations, conversation)[observer]

    clean = f"<message from='{alias}' to='{PEER_JID}'><x/></message>".encode()
    assert await provider_view(clean, tmp_path / "clean.log") == EXPECTED["federation"][observer]
    leaky = f"<message from='{alias}' to='{PEER_JID}'><x>+{PHONE}</x></message>".encode()
    found = await provider_view(leaky, tmp_path / "leaky.log")
    assert "gatekeeper phone number" in found
    assert found != EXPECTED["federation"][observer]


def render(results: dict[str, dict[str, list[str]]]) -> str:
    models = [m.name for m in MODELS if m.name in results]
    lines = [
        "# Metadata ledger: what each observer learns",
        "",
        "Generated by `tests/integration/test_metadata_ledger.py` from one full conversation per",
        "connection model (discovery by phone number, message request, acceptance, text both ways,",
        "receipts and displayed markers, typing, a voice note on the provider's media host fetched",
        "through the hub's media proxy, a push while the third-party user is offline, an abuse",
        "report; in the federation model what federation carries of it, see below). Each",
        "boundary is a TCP tap the test puts between the two parties: an observer's bytes are",
        "what crossed the socket, decrypted only with the TLS secrets that observer holds. They",
        "are searched for the conversation's values; the test fails when any observer learns a",
        "field not listed here, and rewrites this page when the table changes. Do not edit by",
        "hand.",
        "",
        "The gatekeeper user's JID is their phone number (`<E.164 digits>@<hub>`), so a JID",
        "implies the number. *By position* is what the observer knows whatever the bytes say;",
        "*n/a*: the model has no such party.",
        "",
        "| observer | by position | " + " | ".join(models) + " |",
        "|---|---|" + "---|" * len(models),
    ]
    for observer, position in POSITION.items():
        cells = []
        for model in models:
            fields = results[model].get(observer)
            if fields is None:
                cells.append("n/a")
            else:
                cells.append(", ".join(fields) if fields else "nothing")
        lines.append(f"| {observer} | {', '.join(position) or '—'} | " + " | ".join(cells) + " |")
    lines += NOTES
    return "\n".join(lines)


NOTES = [
    "",
    "Notes:",
    "",
    "- *wire* rows: a network observer of that link (TLS records, and in clear only what",
    "  precedes STARTTLS: the stream headers' domains).",
    "- *provider proxy*: the bytes of both of the proxy's sockets. Blind mode holds no TLS",
    "  secret, so it reads what the wire shows; terminating mode holds its own certificate's",
    "  and its hub sessions' secrets and reads the stream in clear. Message text stays end to",
    "  end encrypted (OMEMO) in every model, its length padded to a bucket",
    "  (docs/performance.md).",
    "- *provider HTTP*: the hub's requests to the provider's endpoints (JWKS, introspection,",
    "  reports). The introspection call carries the provider's own token for its user; a",
    "  report carries its reason and the text of the messages the reporter chose to attach",
    "  (here a message of the third-party user's).",
    "- *push receiver*: a push is the provider's id for its user, a count, an id and a time;",
    "  no sender, no content.",
    "- *provider media host*: the media proxy fetches the file; the gatekeeper user's address",
    "  and identity do not reach the host.",
    "- *federation*: a user of a stock Prosody and a gatekeeper user of the SDK: a message",
    "  request (in clear: the hub shows the gatekeeper user's keys at the alias only after",
    "  acceptance), acceptance, text both ways in legacy OMEMO, the federated user's receipt,",
    "  displayed marker and typing (the SDK sends these inside OMEMO 2 only, so not to a legacy",
    "  peer), a voice note from the gatekeeper user (on the hub's upload service, its URL inside",
    "  OMEMO, fetched by the peer's client from the hub), a report. Not covered: discovery by",
    "  phone number (a provider-token API of plug-and-play), push (a federated user's server",
    "  has its own), media from the federated user. *provider's server* reads the s2s streams",
    "  in clear (it is the other end of their TLS; the ledger decrypts the tapped records with",
    "  the session secrets); *: from the hub* is the hub's half of them alone. The gatekeeper",
    "  user appears there only as the per-provider alias, with no presence, IP or phone number.",
    "- *hub logs*: at the default level, JIDs, phone numbers and IP addresses are pseudonyms",
    "  (`[log_privacy]`, docs/operations.md).",
    "",
]


def test_the_committed_page_is_the_ledger() -> None:
    """Runs after the model tests (file order); fails and rewrites docs/metadata.md when the
    committed table differs from what the models produced."""
    missing = [m.name for m in MODELS if m.name not in RESULTS]
    if missing:
        pytest.fail(f"the ledger needs every model's run first; missing {missing}")
    page = render(RESULTS)
    committed = LEDGER_PAGE.read_text(encoding="utf-8") if LEDGER_PAGE.exists() else ""
    if committed != page:
        LEDGER_PAGE.write_text(page, encoding="utf-8")
        pytest.fail("docs/metadata.md differed from the ledger; it was rewritten: commit it")


def test_log_tap_uses_the_production_redaction() -> None:
    stream = io.StringIO()
    tap = LogTap(Observations(("hub logs",)))
    record = logging.LogRecord("interlink.x", logging.INFO, "", 0, "bound %s", (ALICE,), None)
    assert tap.filter(record)
    stream.write(tap.format(record))
    assert PHONE not in stream.getvalue()
