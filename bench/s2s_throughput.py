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

from tests.integration.federationkit import (
    DOMAIN,
    PEER,
    PHONE,
    PROSODY_SERVER,
    federating_hub,
    onboard,
)
from tests.integration.kit import Xmpp
from tests.integration.prosodykit import federation_certs

from interlink.xmpp import ns
from interlink.xmpp.jid import JID
from interlink.xmpp.stanza import Message, MessageType


async def run(messages: int) -> float:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        certs = federation_certs(tmp / "certs", DOMAIN, (PEER,))
        hub = federating_hub(tmp / "hub", certs, s2s={"max_pending_stanzas": messages + 10})
        await hub.start()
        try:
            assert hub.s2s is not None
            async with PROSODY_SERVER.run(
                tmp / "prosody", (PEER,), certs, hub.ports["s2s"], None
            ) as prosody:
                await onboard(hub, f"127.0.0.1:{prosody.s2s_port}", s2s_ca=certs.ca_pem)
                await prosody.register("alice", PEER, "pw")
                alice = Xmpp(f"alice@{PEER}", "pw", certs.hub)
                await alice.login(prosody.c2s_port)
                assert hub.hub is not None
                federation = hub.hub.federation
                sender = JID.parse(f"{PHONE}@{DOMAIN}/bench")
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
