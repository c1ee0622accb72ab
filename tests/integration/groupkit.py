"""The group service's integration tests with stock slixmpp clients (its xep_0045 plugin): a MUC
client, a room created with its default configuration, and a plug-and-play third party's stock
client beside a gatekeeper account on a hub with an operator token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slixmpp import JID

import interlink.client.oauthbearer  # noqa: F401 - registers OAUTHBEARER with slixmpp
from interlink.app import HubServer
from interlink.client.enlist import enlist, identity_thumbprint
from tests.integration.kit import DOMAIN, TIMEOUT, Certs, Xmpp, onboard_provider, running_hub
from tests.interop.enlistkit import ThirdParty

TOKEN = "operator-token-for-tests-0123456789"  # the hub's operator token (its [admin] section)
PHONE = "4915112345678"  # the gatekeeper account beside the third party


def muc_client(jid: str, certs: Any) -> Xmpp:
    client = Xmpp(jid, "pw", certs)
    client.client.register_plugin("xep_0045")
    # the plugin hands room messages to its own event, not to "message"
    client.client.add_event_handler("groupchat_message", client.messages.put_nowait)
    client.client.add_event_handler("groupchat_message_error", client.messages.put_nowait)
    client.client.add_event_handler("groupchat_presence", client.presences.put_nowait)
    return client


async def next_presence_from(client: Xmpp, sender: str, kind: str | None = None) -> Any:
    async def wait() -> Any:
        while True:
            presence = await client.presences.get()
            if str(presence["from"]) == sender and (kind is None or presence["type"] == kind):
                return presence

    return await asyncio.wait_for(wait(), TIMEOUT)


async def configured_room(client: Xmpp, room: JID, nick: str) -> Any:
    """``client`` (a :func:`muc_client`) creates ``room`` by entering it as ``nick``, and
    submits the configuration form it is offered unchanged; its MUC plugin."""
    muc: Any = client.client.plugin["xep_0045"]
    await muc.join_muc_wait(room, nick, timeout=TIMEOUT)
    form = await muc.get_room_config(room, timeout=TIMEOUT)
    form.set_type("submit")
    await muc.set_room_config(room, form, timeout=TIMEOUT)
    return muc


async def stock_third_party(
    base: str, certs: Certs, device: Path, token: str, *, domain: str = DOMAIN
) -> Xmpp:
    """A plug-and-play provider onboarded at the hub's HTTPS ``base`` (operator ``token``), its
    user's device enlisted in ``device`` for the service ``domain``, and a stock slixmpp client
    of that user that logs in with OAUTHBEARER (not logged in yet; its address is
    ``client.boundjid``)."""
    party = ThirdParty()
    await onboard_provider(base, certs.ca, token, party.provider_body())
    thumbprint = await identity_thumbprint(device)
    bound = party.token(aud=domain, cnf={"jkt": thumbprint})
    jid = (await enlist(device, base, domain, bound, ca_file=certs.ca)).jid
    stock = muc_client(f"{jid}/stock", certs)
    stock.client.credentials["access_token"] = party.token(aud=domain)
    stock.client.plugin["feature_mechanisms"].use_mech = "OAUTHBEARER"
    return stock


@dataclass
class StockParty:
    """A hub (operator token :data:`TOKEN`, the account :data:`PHONE`) and a plug-and-play third
    party's stock client (:func:`stock_third_party`, not logged in yet)."""

    server: HubServer
    certs: Certs
    base: str  # the hub's HTTPS base URL
    port: int  # its c2s port (STARTTLS)
    stock: Xmpp

    @property
    def jid(self) -> str:
        """The third party's user's bare address."""
        return str(self.stock.client.boundjid.bare)


@asynccontextmanager
async def hub_with_stock_party(tmp: Path) -> AsyncIterator[StockParty]:
    """A :class:`StockParty` over ``tmp``, its client closed and the hub stopped at the end."""
    async with running_hub(tmp, admin={"token": TOKEN}, accounts=(PHONE,)) as (server, certs):
        base = f"https://127.0.0.1:{server.ports['http']}"
        stock = await stock_third_party(base, certs, tmp / "tp", TOKEN)
        try:
            yield StockParty(server, certs, base, server.ports["c2s-starttls"], stock)
        finally:
            await stock.close()
