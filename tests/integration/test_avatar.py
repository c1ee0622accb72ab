"""XEP-0153 over loopback with slixmpp's own plugins: a photo published in the vCard (XEP-0054)
shows as its SHA-1 in the presence the account's other client receives, at once."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from tests.integration.kit import DOMAIN, TIMEOUT, Xmpp, running_hub

PNG = b"\x89PNG\r\n\x1a\n-an-image"


async def photo_from(client: Xmpp, sender: str) -> str:
    while True:
        presence = await asyncio.wait_for(client.presences.get(), TIMEOUT)
        if str(presence["from"]) == sender and presence["type"] == "available":
            x = presence.xml.find("{vcard-temp:x:update}x")
            if x is not None:
                return str(x.findtext("{vcard-temp:x:update}photo") or "")


async def test_the_photo_hash_follows_the_vcard(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (server, certs):
        phone = Xmpp(f"alice@{DOMAIN}/phone", "pw", certs)
        laptop = Xmpp(f"alice@{DOMAIN}/laptop", "pw", certs)
        phone.client.register_plugin("xep_0054")
        await laptop.login(server.ports["c2s-starttls"])
        await phone.login(server.ports["c2s-starttls"])
        try:
            assert await photo_from(laptop, f"alice@{DOMAIN}/phone") == ""  # no vCard yet
            vcards: Any = phone.client.plugin["xep_0054"]
            card = vcards.make_vcard()
            card["FN"] = "Alice"
            card["PHOTO"]["TYPE"] = "image/png"
            card["PHOTO"]["BINVAL"] = PNG
            await vcards.publish_vcard(card, timeout=TIMEOUT)
            digest = hashlib.sha1(PNG).hexdigest()  # noqa: S324 (the hash XEP-0153 names)
            assert await photo_from(laptop, f"alice@{DOMAIN}/phone") == digest
        finally:
            for x in (phone, laptop):
                await x.close()
