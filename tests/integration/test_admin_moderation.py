"""The admin API's users, sessions, reports and enlistments over real HTTPS: find by phone,
disable (sessions end, logins refused), enable, remove; reports read, resolved and forwarded;
enlistments listed and revoked. Every refusal is problem+json."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlink.storage.policy import AttachedMessage, Report
from tests.integration.kit import ADMIN_TOKEN, DOMAIN, PROVIDER_ID, Xmpp, hub_with_kit

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SPAM = "urn:xmpp:reporting:spam"


def gone(client: Xmpp) -> asyncio.Future[str]:
    """The stream error that ends ``client``'s session: ``condition: text``."""
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def seen(error: Any) -> None:
        if not future.done():
            future.set_result(f"{error['condition']}: {error['text']}")

    client.client.add_event_handler("stream_error", seen)
    return future


def problem(response: httpx.Response, status: int, kind: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"urn:interlink:problem:{kind}"


async def test_users_and_sessions(tmp_path: Path) -> None:
    async with hub_with_kit(tmp_path) as setup:
        server, certs = setup.server, setup.certs
        assert server.storage is not None
        alice_jid = f"alice@{DOMAIN}"
        await server.storage.policy.set_phone(alice_jid, "+4915112345678")
        base = f"{setup.hub_url}/admin/v1"
        alice = Xmpp(f"{alice_jid}/phone", "pw", certs)
        alice_gone = gone(alice)
        await alice.login(server.ports["c2s-starttls"])
        async with httpx.AsyncClient(verify=str(certs.ca), timeout=10, headers=AUTH) as http:
            found = await http.get(f"{base}/users", params={"phone": "+49 151 1234 5678"})
            assert found.status_code == 200, found.text
            [user] = found.json()
            assert user["jid"] == alice_jid
            assert user["kind"] == "home"
            assert user["phone"] == "+4915112345678"
            assert user["sessions"] == [f"{alice_jid}/phone"]
            assert not user["disabled"]
            problem(await http.get(f"{base}/users", params={"phone": "12"}), 422, "invalid-request")
            assert (await http.get(f"{base}/users", params={"phone": "+33612345678"})).json() == []
            listed = await http.get(f"{base}/users", params={"limit": 1})
            assert [u["jid"] for u in listed.json()] == [alice_jid]
            sessions = await http.get(f"{base}/sessions")
            assert sessions.json() == {"sessions": [f"{alice_jid}/phone"]}
            assert (await http.get(f"{base}/users/{alice_jid}/sessions")).json() == [
                f"{alice_jid}/phone"
            ]
            problem(await http.get(f"{base}/users/nobody@{DOMAIN}"), 404, "not-found")
            problem(await http.get(f"{base}/users/not a jid@"), 422, "invalid-request")

            # Disabled: the session ends at once, and the next login is refused.
            disabled = await http.post(f"{base}/users/{alice_jid}/disable")
            assert disabled.json()["disabled"]
            assert disabled.json()["sessions"] == []
            # not-authorized: final (the SDK does not come back)
            assert (await asyncio.wait_for(alice_gone, 10)).startswith("not-authorized: ")
            assert "disabled" in alice_gone.result()
            again = Xmpp(f"{alice_jid}/phone", "pw", certs)
            with pytest.raises(AssertionError, match="login failed"):
                await again.login(server.ports["c2s-starttls"])
            enabled = await http.post(f"{base}/users/{alice_jid}/enable")
            assert not enabled.json()["disabled"]
            back = Xmpp(f"{alice_jid}/laptop", "pw", certs)
            back_gone = gone(back)
            await back.login(server.ports["c2s-starttls"])
            ended = await http.delete(f"{base}/users/{alice_jid}/sessions")
            assert ended.json() == {"ended": 1}
            # reset (RFC 6120 §4.9.3.16): the sessions end, the account may log in again
            assert (await asyncio.wait_for(back_gone, 10)).startswith("reset: ")
            assert "operator ended" in back_gone.result()

            # Removed: gone, and a second removal is a 404.
            assert (await http.delete(f"{base}/users/bob@{DOMAIN}")).status_code == 204
            problem(await http.delete(f"{base}/users/bob@{DOMAIN}"), 404, "not-found")
            assert not await server.storage.accounts.exists(f"bob@{DOMAIN}")
            problem(await http.post(f"{base}/users/bob@{DOMAIN}/disable"), 404, "not-found")
            anonymous = await http.get(f"{base}/users", headers={"Authorization": ""})
            problem(anonymous, 401, "unauthorized")


async def test_reports_and_enlistments(tmp_path: Path) -> None:
    async with hub_with_kit(tmp_path) as setup:
        server = setup.server
        assert server.storage is not None
        bob_jid, _token = await setup.enlist(tmp_path / "bob-device")
        base = f"{setup.hub_url}/admin/v1"
        report = Report(
            id=0,
            reporter=f"alice@{DOMAIN}",
            reported=bob_jid,
            provider_id=PROVIDER_ID,
            reason=SPAM,
            text="ads",
            messages=(AttachedMessage("m1", "2026-12-07T10:00:00Z", "buy now"),),
            created_at=time.time(),
        )
        first = await server.storage.policy.add_report(report)
        home = await server.storage.policy.add_report(
            Report(0, bob_jid, f"alice@{DOMAIN}", None, SPAM, "", (), time.time())
        )
        async with httpx.AsyncClient(verify=str(setup.certs.ca), timeout=10, headers=AUTH) as http:
            open_ = await http.get(f"{base}/reports")
            assert [r["id"] for r in open_.json()] == [home, first]
            assert open_.json()[1]["messages"] == 1  # counted in the list
            shown = await http.get(f"{base}/reports/{first}")
            assert shown.json()["messages"] == [
                {"id": "m1", "at": "2026-12-07T10:00:00Z", "body": "buy now"}
            ]
            assert shown.json()["status"] == "open"
            problem(await http.get(f"{base}/reports/99999"), 404, "not-found")
            blank = await http.post(f"{base}/reports/{first}/resolve", json={"resolution": " "})
            problem(blank, 422, "invalid-request")
            resolved = await http.post(
                f"{base}/reports/{first}/resolve", json={"resolution": "sender warned"}
            )
            assert resolved.json()["status"] == "resolved"
            assert resolved.json()["resolution"]["actor"] == "admin-api"
            assert [r["id"] for r in (await http.get(f"{base}/reports")).json()] == [home]
            done = await http.get(f"{base}/reports", params={"status": "resolved"})
            assert [r["id"] for r in done.json()] == [first]
            every = await http.get(f"{base}/reports", params={"status": "all"})
            assert [r["id"] for r in every.json()] == [home, first]
            problem(
                await http.get(f"{base}/reports", params={"status": "x"}), 422, "invalid-request"
            )
            forwarded = await http.post(f"{base}/reports/{first}/forward")
            assert forwarded.status_code == 202
            problem(await http.post(f"{base}/reports/{home}/forward"), 409, "not-forwardable")
            for _ in range(100):
                stored = await server.storage.policy.report(first)
                if stored is not None and stored.forward_done:
                    break
                await asyncio.sleep(0.05)
            assert stored is not None
            assert stored.forwarded_at is not None

            enlisted = await http.get(f"{base}/enlistments", params={"provider": PROVIDER_ID})
            [entry] = enlisted.json()
            assert entry["jid"] == bob_jid
            assert entry["provider"] == PROVIDER_ID
            assert "subject" not in entry  # the provider's internal id stays out
            user = (await http.get(f"{base}/users/{bob_jid}")).json()
            assert (user["kind"], user["provider"]) == ("interop", PROVIDER_ID)
            problem(await http.delete(f"{base}/enlistments/alice@{DOMAIN}"), 404, "not-found")
            assert (await http.delete(f"{base}/enlistments/{bob_jid}")).status_code == 204
            assert (await http.get(f"{base}/enlistments")).json() == []
            assert await server.storage.enlistment.account(bob_jid) is None
