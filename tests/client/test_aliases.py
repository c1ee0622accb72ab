"""The address each peer knows this account by (client/aliases.py): asked of the hub once per
federated peer domain, never for the account's own service, its subdomains or (for a
plug-and-play user) the service it is on; ``item-not-found`` means "no alias", a failure is an
error (nothing may be sealed with the phone number then)."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest

from interlink.client.aliases import AliasUnknown, OwnAddresses
from interlink.client.consent import ConsentError
from interlink.xmpp.ext import interop

ME = "4915112345678@wa.example"


class FakeHub:
    def __init__(self, answers: dict[str, str | ConsentError]) -> None:
        self.answers = answers  # peer domain -> alias or the error the hub answers
        self.asked: list[str] = []

    async def ask(self, payload: Element) -> Element | None:
        peer = payload.get("jid", "")
        assert payload.tag == interop.ALIAS
        self.asked.append(peer)
        answer = self.answers[peer.rpartition("@")[2]]
        if isinstance(answer, ConsentError):
            raise answer
        return interop.alias_answer(peer, answer)


async def test_asked_once_per_federated_domain_and_never_for_the_accounts_own() -> None:
    hub = FakeHub(
        {
            "chat.example": "gabc@wa.example",
            "elsewhere.example": ConsentError("item-not-found", ""),
        }
    )
    book = OwnAddresses(own=ME, ask=hub.ask)
    assert await book.alias_for("alice@chat.example") == "gabc@wa.example"
    assert await book.alias_for("bob@chat.example") == "gabc@wa.example"  # same provider
    assert await book.seen_by("alice@chat.example") == "gabc@wa.example"
    assert await book.alias_for("carol@elsewhere.example") is None
    assert await book.seen_by("carol@elsewhere.example") == ME
    for local in ("x@wa.example", "u@prov.interop.wa.example", "room@groups.wa.example"):
        assert await book.alias_for(local) is None
    assert hub.asked == ["alice@chat.example", "carol@elsewhere.example"]


async def test_a_plug_and_play_user_never_asks_about_the_service_it_is_on() -> None:
    hub = FakeHub({})
    book = OwnAddresses(own="u@prov.interop.wa.example", ask=hub.ask)
    assert await book.alias_for(ME) is None
    assert hub.asked == []


async def test_no_answer_is_an_error_and_is_asked_again_next_time() -> None:
    hub = FakeHub({"chat.example": ConsentError("timeout", "the hub did not answer")})
    book = OwnAddresses(own=ME, ask=hub.ask)
    with pytest.raises(AliasUnknown, match="timeout"):
        await book.seen_by("alice@chat.example")
    hub.answers["chat.example"] = "gabc@wa.example"
    assert await book.seen_by("alice@chat.example") == "gabc@wa.example"


async def test_the_cache_is_bounded() -> None:
    hub = FakeHub({f"s{i}.example": f"g{i}@wa.example" for i in range(4)})
    book = OwnAddresses(own=ME, ask=hub.ask, max_domains=2)
    for i in range(3):
        await book.alias_for(f"a@s{i}.example")
    await book.alias_for("a@s0.example")  # forgotten: asked again
    assert hub.asked == [f"a@s{i}.example" for i in (0, 1, 2, 0)]
