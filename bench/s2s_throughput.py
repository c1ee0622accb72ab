"""Server-to-server throughput, hub to Prosody: messages per second over one s2s link.

Starts a hub with federation on loopback and a stock Prosody 0.12 (the test kit,
tests/integration/prosodykit.py), lets the hub's s2s link authenticate (SASL EXTERNAL), then
hands N chat messages to the hub's federation port as fast as the link takes them (the path a
gatekeeper user's message takes after the consent decision: alias rewriting, the leak check,
serialization, TLS) and times until a slixmpp client on Prosody has received all of them. The
receiver is part of what is measured (slixmpp parses every message), so this is a floor for the
link, not a ceiling.

Usage: .venv/bin/python bench/s2s_throughput.py [--messages 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from xml.etree.ElementTree import Element

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.kit import Xmpp, settings_for
from tests.integration.prosodykit import (
    federation_certs,
    loopback_dns,
    running_prosody,
)

from interlink.app import HubServer
from interlink.storage.providers import Provider, ProviderMode, ProviderStatus
from interlink.xmpp import ns
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Message, MessageType

DOMAIN = "hub.example"
PEER = "chat.example"
PROVIDER = "chatprov"


async def run(messages: int) -> float:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        certs = federation_certs(tmp / "certs", DOMAIN, (PEER,))
        hub = HubServer(
            settings_for(
                tmp / "hub",
                certs.hub,
                hub={"domain": DOMAIN},
                net={"s2s_port": 0},
                s2s={"enabled": True, "max_pending_stanzas": messages + 10},
            )
        )
        await hub.start()
        try:
            assert hub.registry is not None
            assert hub.s2s is not None
            async with (
                loopback_dns(
                    {DOMAIN: "127.0.0.1"},
                    {f"_xmpp-server._tcp.{DOMAIN}": (DOMAIN, hub.ports["s2s"])},
                ) as dns_server,
                running_prosody(tmp / "prosody", (PEER,), certs, dns_server.port) as prosody,
            ):
                await hub.registry.add(
                    Provider(
                        PROVIDER,
                        "Chat",
                        "https://chat.example/hub",
                        jwks_url="https://chat.example/jwks",
                        mode=ProviderMode.FEDERATED,
                        server_domains=(PEER,),
                        s2s_ca=certs.ca_pem,
                        s2s_address=f"127.0.0.1:{prosody.s2s_port}",
                    ),
                    "bench",
                )
                await hub.registry.set_status(PROVIDER, ProviderStatus.APPROVED, "bench")
                prosody.register("alice", PEER, "pw")
                alice = Xmpp(f"alice@{PEER}", "pw", certs.hub)
                await alice.login(prosody.c2s_port)
                assert hub.hub is not None
                federation = hub.hub.federation
                sender = JID.parse(f"4915112345678@{DOMAIN}/bench")
                to = JID.parse(f"alice@{PEER}")

                def message(i: int) -> Message:
                    body = Element(ns.qname(ns.CLIENT, "body"))
                    body.text = f"message {i:08d} " + "x" * 48
                    return Message(to, sender, f"m{i}", None, (body,), MessageType.CHAT)

                federation.deliver(message(-1))  # opens and authenticates the link
                await alice.next_message(timeout=30)
                start = time.perf_counter()
                for i in range(messages):
                    federation.deliver(message(i))
                    if i % 500 == 499:
                        await asyncio.sleep(0)  # let the link write
                for _ in range(messages):
                    await alice.next_message(timeout=60)
                elapsed = time.perf_counter() - start
                await alice.close()
                return messages / elapsed
        finally:
            await hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a few seconds (bench/README.md)")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.repeat = 500, 1
    rates = []
    for n in range(args.repeat):
        rate = asyncio.run(run(args.messages))
        rates.append(rate)
        print(f"run {n + 1}: {rate:,.0f} msg/s ({args.messages:,} messages, hub -> Prosody)")
    print(f"median: {sorted(rates)[len(rates) // 2]:,.0f} msg/s")


if __name__ == "__main__":
    main()
