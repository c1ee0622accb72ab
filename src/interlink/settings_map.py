"""Configuration into each component's settings: the pure half of the composition root.

Every function here turns the validated :class:`~interlink.config.Settings` (or one of its
sections) into the limits or settings object one component takes in its constructor; nothing
here opens a file, a socket or a database. :mod:`interlink.app` assembles the object graph with
them.

Most of what a component takes carries the name of the setting it comes from (the keys of
docs/operations.md): :func:`from_section` copies those by name, so each function below spells
out only what is renamed, converted or gathered from another section.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from interlink.cluster.redis import RedisLimits
from interlink.config import Settings
from interlink.hub.archive import ArchiveLimits
from interlink.hub.auth_throttle import Backoff, ThrottleLimits
from interlink.hub.context import HubSettings
from interlink.hub.groups.room import RoomLimits
from interlink.hub.groups.settings import GroupSettings
from interlink.hub.policy.limits import PolicyLimits, Rate
from interlink.hub.session import BindConflictPolicy
from interlink.log_privacy import LogRedactor, RedactionSettings
from interlink.net.budget import SourceLimits
from interlink.net.proxied import ProxyRegistry, RegisteredProxy
from interlink.net.proxy_v2 import HeaderLimits
from interlink.xmpp.ext.mam import Default
from interlink.xmpp.parser import XmlLimits
from interlink.xmpp.sasl.credentials import PasswordRules

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

D = TypeVar("D", bound="DataclassInstance")


def from_section(target: type[D], section: BaseModel, **given: Any) -> D:
    """``target`` (a dataclass) with ``given`` fields as given and every other field set to
    ``section``'s setting of the same name.

    Raises:
        AttributeError: ``section`` has no setting named like a field not ``given`` (a bug:
            found by the first start, which builds every component).
    """
    same = {
        f.name: getattr(section, f.name)
        for f in dataclasses.fields(target)
        if f.init and f.name not in given
    }
    return target(**same, **given)


def hub_settings(s: Settings) -> HubSettings:
    """The ``[limits]`` section (and a few others) as the hub's settings."""
    return from_section(
        HubSettings,
        s.limits,
        sm_resume_window=s.xmpp.sm_resume_window,
        bind_conflict=BindConflictPolicy(s.xmpp.bind_conflict),
        auth_throttle=throttle_limits(s),
        policy=policy_limits(s),
        archive=archive_limits(s),
        groups=group_settings(s),
        fanout_backlog=s.cluster.fanout_backlog,
    )


def group_settings(s: Settings) -> GroupSettings:
    """The ``[groups]`` section as the group service's limits."""
    g = s.groups
    return GroupSettings(
        room=RoomLimits(
            max_members=g.max_members,
            max_occupants=g.max_occupants,
            max_nick_chars=g.max_nick_chars,
            max_subject_chars=g.max_subject_chars,
        ),
        rooms_per_user=g.rooms_per_user,
        max_message_bytes=g.max_message_bytes,
        room_rate=Rate(g.room_messages_per_minute, 60.0),
        sender_rate=Rate(g.sender_messages_per_minute, 60.0),
        rooms_cached=g.rooms_cached,
        labels_cached=g.labels_cached,
        max_room_name_bytes=g.max_room_name_bytes,
    )


def archive_limits(s: Settings) -> ArchiveLimits:
    """The ``[archive]`` section as the archive's limits."""
    return from_section(ArchiveLimits, s.archive, default_mode=Default(s.archive.default_mode))


def password_rules(s: Settings) -> PasswordRules:
    return PasswordRules(min_length=s.passwords.min_length, max_length=s.passwords.max_length)


def xml_limits(settings: Settings, *, authenticated: bool) -> XmlLimits:
    """What one stream may make the parser hold, after or before authentication."""
    s = settings.limits
    return from_section(
        XmlLimits,
        s,
        max_stanza_bytes=s.max_stanza_bytes if authenticated else s.pre_auth_max_stanza_bytes,
        max_elements=s.max_elements if authenticated else s.pre_auth_max_elements,
    )


def throttle_limits(settings: Settings) -> ThrottleLimits:
    a = settings.sasl
    first = a.throttle_first_delay
    return ThrottleLimits(
        pair=Backoff(a.throttle_pair_free, first, a.throttle_pair_max_delay),
        source=Backoff(a.throttle_source_free, first, a.throttle_max_delay),
        account=Backoff(a.throttle_account_free, first, a.throttle_max_delay),
        forget_after=a.throttle_forget_after,
        trusted_for=a.throttle_trusted_for,
        max_keys=a.throttle_max_keys,
        ipv6_prefix=a.throttle_ipv6_prefix,
    )


def policy_limits(settings: Settings) -> PolicyLimits:
    p = settings.policy
    return PolicyLimits(
        request_messages=p.request_messages,
        messages_per_sender=Rate(p.messages_per_minute, 60.0),
        new_conversations_per_sender=Rate(p.new_conversations_per_day, 86_400.0),
        provider_messages=Rate(p.provider_messages_per_second, 1.0),
        max_blocklist=p.max_blocklist,
        max_allowed_providers=p.max_allowed_providers,
        max_report_messages=p.max_report_messages,
        max_report_text=p.max_report_text,
        reports_per_sender=Rate(p.reports_per_hour, 3600.0),
        cache_entries=p.account_cache_entries,
        cache_seconds=p.account_cache_seconds,
    )


def source_limits(settings: Settings) -> SourceLimits:
    """The per-source budgets of unauthenticated XMPP streams (every transport)."""
    n = settings.net
    return SourceLimits(
        per_ip=n.max_unauthenticated_per_ip,
        per_ipv6_64=n.max_unauthenticated_per_ipv6_64,
        rate=Rate(n.connections_per_source_per_minute, 60.0),
        allowlist=tuple(n.source_allowlist),
    )


def proxy_registry(settings: Settings) -> ProxyRegistry:
    """The provider proxies registered in ``[proxies]`` and the limits on their headers."""
    p = settings.proxies
    return ProxyRegistry(
        (RegisteredProxy(r.provider, tuple(r.addresses), r.fingerprint) for r in p.registered),
        HeaderLimits(p.max_header_bytes, p.max_tlvs, p.max_tlv_bytes),
        max_skew=p.max_clock_skew,
        replay_cache_size=p.replay_cache_size,
    )


def log_redactor(settings: Settings) -> LogRedactor | None:
    """The filter every log handler gets (``[log_privacy]``), or None when turned off."""
    p = settings.log_privacy
    if not p.redact:
        return None
    return LogRedactor(RedactionSettings(p.retention, p.ipv4_prefix, p.ipv6_prefix))


def redis_limits(settings: Settings) -> RedisLimits:
    c = settings.cluster
    return RedisLimits(
        max_connections=c.redis_max_connections,
        pool_timeout=c.redis_pool_timeout,
        command_timeout=c.redis_timeout,
        directory_cache_ttl=c.directory_cache_ttl,
        directory_cache_size=c.directory_cache_size,
        send_batch=c.route_batch,
    )
