"""Where an address lives: one object answers it (hub/addressing.py)."""

from __future__ import annotations

import pytest

from interlink.errors import ConfigError
from interlink.hub.addressing import Addressing, Kind, ProviderAccess, ProviderDirectory
from interlink.xmpp import addressing as rule
from interlink.xmpp.jid import JID


def two_services() -> Addressing:
    directory = ProviderDirectory()
    directory.put(ProviderAccess("chat", "Chat", frozenset({"wa.test"})))
    return Addressing(("wa.test", "msg.test"), directory)


@pytest.mark.parametrize(
    ("address", "kind", "service", "provider"),
    [
        ("alice@wa.test", Kind.HOME, "wa.test", None),
        ("alice@msg.test/phone", Kind.HOME, "msg.test", None),
        ("wa.test", Kind.HOME, "wa.test", None),
        ("x@chat.interop.wa.test", Kind.INTEROP, "wa.test", "chat"),
        ("x@other.interop.msg.test/app", Kind.INTEROP, "msg.test", "other"),
        ("chat.interop.wa.test", Kind.INTEROP, "wa.test", "chat"),
        # one label only before .interop.<service>; anything else is not ours
        ("x@a.b.interop.wa.test", Kind.REMOTE, None, None),
        ("x@interop.wa.test", Kind.REMOTE, None, None),
        ("x@sub.wa.test", Kind.REMOTE, None, None),
        ("x@wa.test.evil", Kind.REMOTE, None, None),
        ("x@example.org", Kind.REMOTE, None, None),
    ],
)
def test_locate(address: str, kind: Kind, service: str | None, provider: str | None) -> None:
    where = two_services().locate(JID.parse(address))
    assert (where.kind, where.service, where.provider_id) == (kind, service, provider)


def test_providers_reach_the_services_they_are_approved_for_only() -> None:
    a = two_services()
    assert a.reachable(JID.parse("x@chat.interop.wa.test"))
    assert not a.reachable(JID.parse("x@chat.interop.msg.test"))
    assert not a.reachable(JID.parse("x@unknown.interop.wa.test"))
    assert a.reachable(JID.parse("alice@msg.test"))  # not a provider's
    assert a.approved_providers("wa.test") == {"chat": "Chat"}
    assert a.approved_providers("msg.test") == {}
    a.providers.put(ProviderAccess("chat", "Chat", frozenset()))  # suspended
    assert not a.reachable(JID.parse("x@chat.interop.wa.test"))
    assert a.provider_name("chat") == "chat"


def test_same_service_and_serves() -> None:
    a = two_services()
    assert a.same_service(JID.parse("a@wa.test"), JID.parse("x@chat.interop.wa.test"))
    assert not a.same_service(JID.parse("a@wa.test"), JID.parse("b@msg.test"))
    assert not a.same_service(JID.parse("a@elsewhere"), JID.parse("b@elsewhere"))
    assert a.serves("wa.test")
    assert a.serves("chat.interop.msg.test")
    assert not a.serves("example.org")
    assert a.default == "wa.test"
    assert a.service(None) == "wa.test"
    assert a.service("MSG.test") == "msg.test"
    with pytest.raises(ConfigError, match=r"serves wa\.test, msg\.test"):
        a.service("other.test")


@pytest.mark.parametrize(
    ("services", "error"),
    [
        ((), "at least one"),
        (("wa.test", "wa.test"), "twice"),
        (("a@wa.test",), "not a bare domain"),
        (("wa.test", "x.interop.wa.test"), "interop space"),
        (("bad domain",), "not a domain"),
    ],
)
def test_bad_service_lists_are_refused(services: tuple[str, ...], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        Addressing(services, ProviderDirectory())


def test_the_rule_is_shared() -> None:
    assert rule.interop_domain("chat", "wa.test") == "chat.interop.wa.test"
    assert rule.interop_provider("chat.interop.wa.test", "wa.test") == "chat"
    assert rule.interop_provider("a.b.interop.wa.test", "wa.test") is None
    assert rule.interop_provider(".interop.wa.test", "wa.test") is None
    assert rule.domain_of("u@d.example/r@x") == "d.example"
    assert rule.domain_of("d.example") == "d.example"
