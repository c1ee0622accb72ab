"""Groups across providers, end to end with the SDK over loopback TLS, in the default
configuration: a room with two gatekeeper users (phone numbers) and two third-party users of two
providers exchanges OMEMO-encrypted messages (the hub relays ciphertext only), the gatekeeper
members shown to everyone under per-room aliases; no phone number reaches a third party's
client, in any byte it receives; a member removed gets nothing further it can decrypt; a third
party's invitation is a message request and nothing else reaches the invitee before
accepting."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

from interlink.client import InterlinkClient
from interlink.client.events import (
    GroupInvitation,
    GroupJoined,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupMessage,
    MessageRefused,
)
from tests.integration.kit import (
    DOMAIN,
    Certs,
    drain,
    enlisted_client,
    next_of,
    onboard_provider,
    record_received,
    record_routed,
    running_hub,
)
from tests.interop.enlistkit import ThirdParty

TOKEN = "operator-token-for-tests-0123456789"
ROOM = f"team@groups.{DOMAIN}"
ALICE, CAROL = "4915112345678", "4915187654321"  # gatekeeper localparts are phone numbers
E = TypeVar("E")


async def third_party(
    tmp: Path, party: ThirdParty, subject: str, base: str, port: int, certs: Certs
) -> InterlinkClient:
    device = tmp / f"{party.provider_id}-{subject}"
    return await enlisted_client(party, device, base, port, certs, subject=subject)


@contextlib.asynccontextmanager
async def people(tmp: Path) -> AsyncIterator[tuple[Any, dict[str, InterlinkClient]]]:
    """alice and carol (gatekeeper users, opted in), tp1 and tp2 (two providers); the hub's
    default configuration. Each client's received bytes are kept (:func:`received`)."""
    async with running_hub(tmp, admin={"token": TOKEN}, accounts=(ALICE, CAROL)) as (
        server,
        certs,
    ):
        base = f"https://127.0.0.1:{server.ports['http']}"
        port = server.ports["c2s-starttls"]
        one, two = ThirdParty(), ThirdParty(provider_id="otherchat")
        await onboard_provider(base, certs.ca, TOKEN, one.provider_body())
        await onboard_provider(base, certs.ca, TOKEN, two.provider_body())
        clients = {
            "alice": InterlinkClient(
                f"{ALICE}@{DOMAIN}/phone", "pw", data_dir=tmp / "alice", port=port, ca_file=certs.ca
            ),
            "carol": InterlinkClient(
                f"{CAROL}@{DOMAIN}/phone", "pw", data_dir=tmp / "carol", port=port, ca_file=certs.ca
            ),
            "tp1": await third_party(tmp, one, "user-1", base, port, certs),
            "tp2": await third_party(tmp, two, "user-2", base, port, certs),
        }
        try:
            for client in clients.values():
                await client.connect()
                _record_received(client)
            for name in ("alice", "carol"):
                await clients[name].set_interop_settings(enabled=True)
            yield server, clients
        finally:
            for client in clients.values():
                await client.close()


def bare(client: InterlinkClient) -> str:
    return str(client.bare)


_received: dict[int, list[bytes]] = {}


def _record_received(client: InterlinkClient) -> None:
    """Keep every byte the client's stream receives from now on (after login: nothing of a
    room reaches it before)."""
    stream = client._xmpp  # the SDK's slixmpp stream: the test taps what it reads
    assert stream is not None
    _received[id(client)] = record_received(stream)


def received(client: InterlinkClient) -> str:
    return b"".join(_received.get(id(client), [])).decode("utf-8", errors="replace")


def shown(server: Any, client: InterlinkClient, room: str = ROOM) -> str:
    """The address ``room`` shows for a gatekeeper client: its alias there."""
    assert server.hub is not None
    local, domain = bare(client).split("@")
    alias = server.hub.router.federation.aliases.room_alias(local, room.split("@")[0], domain)
    return f"{alias}@{domain}"


async def test_two_gatekeeper_and_two_third_party_members_chat_encrypted_and_removal_rekeys(
    tmp_path: Path,
) -> None:
    async with people(tmp_path) as (server, c):
        alice, carol, tp1, tp2 = c["alice"], c["carol"], c["tp1"], c["tp2"]
        await alice.create_group(ROOM, "alice", name="Team")
        for member in (carol, tp1, tp2):
            await alice.add_group_member(ROOM, bare(member))
        added = {(await next_of(alice, GroupMemberAdded)).member for _ in range(3)}
        seen = {
            "alice": shown(server, alice),
            "carol": shown(server, carol),
            "tp1": bare(tp1),
            "tp2": bare(tp2),
        }  # how the room shows each member, to every member alike
        assert added == {seen["carol"], seen["tp1"], seen["tp2"]}
        for nick, member in (("carol", carol), ("tp1", tp1), ("tp2", tp2)):
            state = await member.join_group(ROOM, nick)
            assert set(state.members) == set(seen.values())
            assert state.identity() == seen[nick]
        joined = await next_of(tp2, GroupJoined)
        assert joined.room == ROOM
        # third-party members carry their provider's marker in the member list
        assert tp2.group(ROOM).markers[bare(tp1)].provider == "examplechat"
        assert carol.group(ROOM).markers[bare(tp2)].provider == "otherchat"
        routed = record_routed(server)
        names = {id(alice): "alice", id(carol): "carol", id(tp1): "tp1", id(tp2): "tp2"}
        for sender, text in (
            (alice, "from alice"),
            (carol, "from carol"),
            (tp1, "from tp1"),
            (tp2, "from tp2"),
        ):
            await sender.send_group_text(ROOM, text)
            for reader in (alice, carol, tp1, tp2):
                if reader is sender:
                    continue
                got = await next_of(reader, GroupMessage)
                assert (got.text, got.sender, got.room) == (text, seen[names[id(sender)]], ROOM)
                if sender is tp1:
                    assert got.interop is not None
                    assert got.interop.provider == "examplechat"
        assert not any("from alice" in x or "from tp" in x for x in routed)  # ciphertext only
        for third_party in (tp1, tp2):  # not one byte of either phone number reached them
            raw = received(third_party)
            assert "groupchat" in raw
            assert seen["alice"] in raw
            assert ALICE not in raw
            assert CAROL not in raw
        # tp2 is removed: it gets nothing further, and what follows is sealed to no device of it
        tp2_devices = {str(d) for d in (await alice.peer_fingerprints(bare(tp2)))}

        def sealed_to_tp2(stanza: str) -> bool:
            return any(f"rid='{d}'" in stanza or f'rid="{d}"' in stanza for d in tp2_devices)

        before = [x for x in routed if "groupchat" in x and f'from="{bare(tp2)}' not in x]
        assert len(before) == 3
        assert all(sealed_to_tp2(x) for x in before)  # while a member, every message was
        await alice.remove_group_member(ROOM, bare(tp2))
        removed = await next_of(carol, GroupMemberRemoved)
        assert removed.member == bare(tp2)
        await drain(tp2, 0.5)
        del routed[:]
        await alice.send_group_text(ROOM, "after tp2 left")
        assert (await next_of(carol, GroupMessage)).text == "after tp2 left"
        assert (await next_of(tp1, GroupMessage)).text == "after tp2 left"
        await carol.send_group_text(ROOM, "carol too")
        assert (await next_of(tp1, GroupMessage)).text == "carol too"
        late = await drain(tp2, 1.0)
        assert not [e for e in late if isinstance(e, GroupMessage)]
        sent = [x for x in routed if "groupchat" in x]
        assert len(sent) == 2
        assert not any(sealed_to_tp2(x) for x in sent)  # no key for any device of tp2


async def test_a_third_party_invitation_is_a_request_until_the_invitee_enters(
    tmp_path: Path,
) -> None:
    async with people(tmp_path) as (_server, c):
        alice, carol, tp1 = c["alice"], c["carol"], c["tp1"]
        await tp1.create_group(ROOM, "tp1")
        await tp1.invite_to_group(ROOM, bare(alice), "join us")
        invitation = await next_of(alice, GroupInvitation)
        assert (invitation.room, invitation.inviter) == (ROOM, bare(tp1))
        assert invitation.interop is not None
        assert invitation.interop.request
        await tp1.send_group_text(ROOM, "before she enters")
        early = await drain(alice, 1.0)
        assert not [e for e in early if isinstance(e, GroupMessage)]
        await alice.join_group(ROOM, "alice")  # accepting is entering
        await tp1.send_group_text(ROOM, "welcome")
        got = await next_of(alice, GroupMessage)
        assert got.text == "welcome"
        # A user who has not opted in: refused like a nonexistent account
        await carol.set_interop_settings(enabled=False)
        await tp1.invite_to_group(ROOM, bare(carol))
        refused = await next_of(tp1, MessageRefused)
        await tp1.invite_to_group(ROOM, f"nobody@{DOMAIN}")
        nobody = await next_of(tp1, MessageRefused)
        assert (refused.condition, refused.text) == (nobody.condition, nobody.text)
        assert refused.condition == "service-unavailable"
        assert not [e for e in await drain(carol, 0.5) if isinstance(e, GroupInvitation)]


async def test_consent_still_hides_a_gatekeeper_member_from_a_provider_she_does_not_allow(
    tmp_path: Path,
) -> None:
    """carol allows only tp2's provider: tp1 neither sees her (not even her alias) nor gets
    what she says, nor she what tp1 says; everyone else encrypts to everyone, by alias."""
    async with people(tmp_path) as (server, c):
        alice, carol, tp1, tp2 = c["alice"], c["carol"], c["tp1"], c["tp2"]
        await alice.create_group(ROOM, "alice", name="Team")
        for member in (carol, tp1, tp2):
            await alice.add_group_member(ROOM, bare(member))
        await carol.set_interop_settings(providers=["otherchat"])  # not tp1's provider
        await carol.join_group(ROOM, "carol")
        a, k = shown(server, alice), shown(server, carol)
        assert set((await tp1.join_group(ROOM, "tp1")).members) == {a, bare(tp1), bare(tp2)}
        assert set((await tp2.join_group(ROOM, "tp2")).members) == {a, k, bare(tp1), bare(tp2)}
        await drain(carol, 0.5)
        await carol.send_group_text(ROOM, "from carol")
        assert (await next_of(tp2, GroupMessage)).sender == k
        assert (await next_of(alice, GroupMessage)).sender == k
        await tp1.send_group_text(ROOM, "from tp1")
        assert (await next_of(tp2, GroupMessage)).text == "from tp1"
        assert (await next_of(alice, GroupMessage)).text == "from tp1"
        seen = await drain(carol, 1.0)
        assert not [e for e in seen if isinstance(e, GroupMemberAdded) and e.member == bare(tp1)]
        assert not [e for e in seen if isinstance(e, GroupMessage) and e.sender == bare(tp1)]
        assert not [e for e in await drain(tp1, 1.0) if isinstance(e, GroupMessage)]
        assert k not in received(tp1)
        assert ALICE not in received(tp1)
        assert CAROL not in received(tp2)
