"""PEP with slixmpp's own pubsub, caps and PEP plugins: both OMEMO namespaces' device lists and
bundles go through the hub, with +notify notifications and item retrieval."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import fromstring

from slixmpp import JID

from tests.integration.kit import DOMAIN, TIMEOUT, Xmpp, running_hub

OMEMO2_DEVICES = "urn:xmpp:omemo:2:devices"
OMEMO2_BUNDLES = "urn:xmpp:omemo:2:bundles"
LEGACY_DEVICES = "eu.siacs.conversations.axolotl.devicelist"
LEGACY_BUNDLES = "eu.siacs.conversations.axolotl.bundles:5"


def with_pep(client: Xmpp, interests: list[str]) -> asyncio.Queue[Any]:
    c = client.client
    c.register_plugin("xep_0004")
    c.register_plugin("xep_0060")
    c.register_plugin("xep_0115")
    c.register_plugin("xep_0163")
    for node in interests:
        c.plugin["xep_0163"].add_interest(node)
    events: asyncio.Queue[Any] = asyncio.Queue()
    c.add_event_handler("pubsub_publish", events.put_nowait)
    return events


def open_options(client: Xmpp) -> Any:
    forms: Any = client.client.plugin["xep_0004"]  # slixmpp's plugins are untyped
    form = forms.make_form(ftype="submit")
    form.add_field(
        var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options"
    )
    form.add_field(var="pubsub#access_model", value="open")
    form.add_field(var="pubsub#max_items", value="max")
    return form


async def test_omemo_device_lists_and_bundles_through_pep(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        alice = Xmpp(f"alice@{DOMAIN}/phone", "pw", certs)
        bob = Xmpp(f"bob@{DOMAIN}/laptop", "pw", certs)
        for x in (alice, bob):
            x.client.auto_authorize = True
            x.client.auto_subscribe = True
        with_pep(alice, [])
        bob_events = with_pep(bob, [OMEMO2_DEVICES, LEGACY_DEVICES])
        await alice.login(server.ports["c2s-starttls"])
        await bob.login(server.ports["c2s-direct-tls"], direct_tls=True)
        try:
            await alice.client.get_roster()
            await bob.client.get_roster()
            bob.client.send_presence_subscription(pto=JID(f"alice@{DOMAIN}"))
            for _ in range(100):
                if bob.client.client_roster[f"alice@{DOMAIN}"]["subscription"] in ("to", "both"):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # caps exchange
            pubsub: Any = alice.client.plugin["xep_0060"]
            own = JID(f"alice@{DOMAIN}")
            for node, item_id, xml in (
                (
                    OMEMO2_DEVICES,
                    "current",
                    "<devices xmlns='urn:xmpp:omemo:2'><device id='1'/><device id='2'/></devices>",
                ),
                (
                    OMEMO2_BUNDLES,
                    "1",
                    "<bundle xmlns='urn:xmpp:omemo:2'><spk id='1'>AAAA</spk><spks>BBBB</spks>"
                    "<ik>CCCC</ik><prekeys>"
                    + "".join(f"<pk id='{i}'>DDDD</pk>" for i in range(100))
                    + "</prekeys></bundle>",
                ),
                (
                    LEGACY_DEVICES,
                    "current",
                    "<list xmlns='eu.siacs.conversations.axolotl'><device id='5'/></list>",
                ),
                (
                    LEGACY_BUNDLES,
                    "current",
                    "<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic "
                    "signedPreKeyId='1'>AAAA</signedPreKeyPublic><identityKey>BBBB</identityKey>"
                    "</bundle>",
                ),
            ):
                await pubsub.publish(
                    own,
                    node,
                    id=item_id,
                    payload=fromstring(xml),  # noqa: S314 - a constant of this test
                    options=open_options(alice),
                    timeout=TIMEOUT,
                )
            got = {}
            for _ in range(2):
                event = await asyncio.wait_for(bob_events.get(), TIMEOUT)
                got[event["pubsub_event"]["items"]["node"]] = event
            assert set(got) == {OMEMO2_DEVICES, LEGACY_DEVICES}
            devices = got[OMEMO2_DEVICES]["pubsub_event"]["items"]["item"]["payload"]
            assert [d.get("id") for d in devices] == ["1", "2"]
            assert str(got[OMEMO2_DEVICES]["from"]) == f"alice@{DOMAIN}"
            # Bob fetches the bundles he needs.
            bobsub: Any = bob.client.plugin["xep_0060"]
            result = await bobsub.get_items(own, OMEMO2_BUNDLES, item_ids=["1"], timeout=TIMEOUT)
            bundle = result["pubsub"]["items"]["item"]["payload"]
            assert len(bundle.find("{urn:xmpp:omemo:2}prekeys")) == 100
            legacy = await bobsub.get_items(own, LEGACY_BUNDLES, max_items=1, timeout=TIMEOUT)
            assert legacy["pubsub"]["items"]["item"]["id"] == "current"
        finally:
            await alice.close()
            await bob.close()
