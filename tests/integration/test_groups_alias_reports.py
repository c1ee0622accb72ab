"""A stock slixmpp third party blocks and reports a gatekeeper member by the room alias it was
shown (XEP-0191, XEP-0377 with an attached message), over loopback TLS (issue 18): the report
reaches the operator (admin API) under the account and the room, the member's messages stop
in every room and 1:1, the third party reads back only the alias, and a forged alias gets the
same answer as a real one. The gatekeeper member is a stock slixmpp client too."""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, SubElement

import httpx
from slixmpp import JID

from interlink.xmpp.ext.interop import NS as INTEROP
from tests.integration.groupkit import (
    PHONE,
    TOKEN,
    configured_room,
    hub_with_stock_party,
    muc_client,
)
from tests.integration.kit import DOMAIN, TIMEOUT, Xmpp

TEAM = JID(f"team@groups.{DOMAIN}")
OTHER = JID(f"other@groups.{DOMAIN}")


def block_with_report(client: Xmpp, item: str, attached_id: str, body: str) -> Any:
    """An XEP-0191 block carrying an XEP-0377 report with one XEP-0297 attached message."""
    iq: Any = client.client.make_iq_set()
    block = Element("{urn:xmpp:blocking}block")
    entry = SubElement(block, "{urn:xmpp:blocking}item", {"jid": item})
    report = SubElement(
        entry, "{urn:xmpp:reporting:1}report", {"reason": "urn:xmpp:reporting:abuse"}
    )
    SubElement(report, "{urn:xmpp:reporting:1}text").text = "threats"
    forwarded = SubElement(report, "{urn:xmpp:forward:0}forwarded")
    SubElement(forwarded, "{urn:xmpp:delay}delay", {"stamp": "2026-12-07T10:00:00Z"})
    message = SubElement(
        forwarded, "{jabber:client}message", {"id": attached_id, "from": f"{TEAM}/alice"}
    )
    SubElement(message, "{jabber:client}body").text = body
    iq.xml.append(block)
    return iq.send(timeout=TIMEOUT)


async def test_a_stock_third_party_blocks_and_reports_a_member_by_her_alias(
    tmp_path: Path,
) -> None:
    async with hub_with_stock_party(tmp_path) as party:
        stock, jid, certs = party.stock, party.jid, party.certs
        alice = muc_client(f"{PHONE}@{DOMAIN}/phone", certs)
        stock.client.register_plugin("xep_0191")
        try:
            await alice.login(party.port)
            opt_in: Any = alice.client.make_iq_set()
            opt_in.xml.append(Element(f"{{{INTEROP}}}settings", {"enabled": "true"}))
            await opt_in.send(timeout=TIMEOUT)
            for room in (TEAM, OTHER):
                a_muc = await configured_room(alice, room, "alice")
                await a_muc.set_affiliation(room, "member", jid=JID(jid), timeout=TIMEOUT)
            await stock.login(party.port)
            raw = stock.record_received()
            s_muc: Any = stock.client.plugin["xep_0045"]
            for room in (TEAM, OTHER):
                await s_muc.join_muc_wait(room, "tp", timeout=TIMEOUT)
            alias = JID(s_muc.get_jid_property(TEAM, "alice", "jid")).bare
            assert PHONE not in alias
            # before: her room messages and her 1:1 messages reach the third party
            alice.client.send_message(mto=TEAM, mbody="you will see", mtype="groupchat")
            seen = await stock.next_message_of("groupchat", texted=True)
            assert seen["body"] == "you will see"
            alice.send_chat(jid, "hello 1:1")
            assert (await stock.next_message_of("chat", texted=True))["body"] == "hello 1:1"

            # the block and report, naming the alias; the answer names nothing else
            answer = await block_with_report(stock, alias, seen["id"], "you will see")
            assert answer["type"] == "result"
            blocking: Any = stock.client.plugin["xep_0191"]
            assert await blocking.get_blocked_jids(timeout=TIMEOUT) == {JID(alias)}

            # the operator sees the account and the room
            auth = {"Authorization": f"Bearer {TOKEN}"}
            tls = ssl.create_default_context(cafile=str(certs.ca))
            async with httpx.AsyncClient(base_url=party.base, verify=tls) as http:
                listed = (await http.get("/admin/v1/reports", headers=auth)).json()
            (report,) = listed
            assert (report["reporter"], report["reported"], report["room"]) == (
                jid,
                f"{PHONE}@{DOMAIN}",
                str(TEAM),
            )
            assert report["provider"] is None  # a gatekeeper user's: stays with the operator

            # after: nothing of hers reaches the third party, in either room or 1:1
            alice.client.send_message(mto=TEAM, mbody="after in team", mtype="groupchat")
            alice.client.send_message(mto=OTHER, mbody="after in other", mtype="groupchat")
            alice.send_chat(jid, "after 1:1")
            await alice.ping_server()  # her stanzas are handled ...
            await stock.ping_server()  # ... and whatever they sent it is read
            late = []
            while not stock.messages.empty():
                msg = stock.messages.get_nowait()
                if msg["body"]:
                    late.append((msg["type"], msg["body"]))
            assert late == []
            # her 1:1 message was refused to her like one to an address no account holds
            bounced = await alice.next_message_of("error")
            assert bounced["error"]["condition"] == "service-unavailable"

            # a forged alias: the same answer as the real one
            forged = "g" + "a" * (len(JID(alias).user) - 1) + "@" + DOMAIN
            again = await block_with_report(stock, forged, "x", "nothing")
            assert again["type"] == "result"
            assert again.xml.findall("*") == answer.xml.findall("*") == []

            everything = b"".join(raw).decode("utf-8", errors="replace")
            assert alias in everything
            # her number reached it once: her own 1:1 message before the block, which it
            # knows her by; never an answer, a push or anything of a room
            one_to_one = re.findall(r"<message [^>]*type=.chat.[^>]*>.*?</message>", everything)
            assert [m for m in one_to_one if PHONE in m] == [
                m for m in one_to_one if "hello 1:1" in m
            ]
            assert everything.count(PHONE) == 1
        finally:
            await alice.close()
