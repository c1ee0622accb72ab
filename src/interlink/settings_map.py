"""Configuration into each component's settings: the pure half of the composition root.

Every function here turns the validated :class:`~interlink.config.Settings` (or one of its
sections) into the limits or settings object one component takes in its constructor; nothing
here opens a file, a socket or a database. :mod:`interlink.app` assembles the object graph with
them.
"""

from __future__ import annotations

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


def hub_settings(s: Settings) -> HubSettings:
    return HubSettings(
        offline_max_per_account=s.limits.offline_max_per_account,
        offline_max_bytes_per_account=s.limits.offline_max_bytes_per_account,
        offline_drain_batch=s.limits.offline_drain_batch,
        write_stall_timeout=s.limits.write_stall_timeout,
        sm_resume_window=s.xmpp.sm_resume_window,
        bind_conflict=BindConflictPolicy(s.xmpp.bind_conflict),
        max_roster_items=s.limits.max_roster_items,
        max_roster_name_length=s.limits.max_roster_name_length,
        max_roster_groups=s.limits.max_roster_groups,
        max_roster_bytes=s.limits.max_roster_bytes,
        max_pending_subscriptions=s.limits.max_pending_subscriptions,
        max_pending_subscription_bytes=s.limits.max_pending_subscription_bytes,
        max_directed_presences=s.limits.max_directed_presences,
        pep_max_nodes=s.limits.pep_max_nodes,
        pep_max_items=s.limits.pep_max_items,
        pep_max_item_bytes=s.limits.pep_max_item_bytes,
        pep_quota_bytes=s.limits.pep_quota_bytes,
        pep_max_subscriptions=s.limits.pep_max_subscriptions,
        private_quota_bytes=s.limits.private_quota_bytes,
        private_max_fragments=s.limits.private_max_fragments,
        private_max_fragment_bytes=s.limits.private_max_fragment_bytes,
        vcard_max_bytes=s.limits.vcard_max_bytes,
        max_sessions_per_account=s.limits.max_sessions_per_account,
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
    a = s.archive
    return ArchiveLimits(
        enabled=a.enabled,
        retention=a.retention,
        prune_interval=a.prune_interval,
        max_messages_per_account=a.max_messages_per_account,
        max_messages_per_room=a.max_messages_per_room,
        page_max=a.page_max,
        page_default=a.page_default,
        default_mode=Default(a.default_mode),
        max_pref_jids=a.max_pref_jids,
        prefs_cache_ttl=a.prefs_cache_ttl,
        prefs_cache_size=a.prefs_cache_size,
        durable_before_ack=a.durable_before_ack,
        write_queue_max=a.write_queue_max,
    )


def password_rules(s: Settings) -> PasswordRules:
    return PasswordRules(min_length=s.passwords.min_length, max_length=s.passwords.max_length)


def xml_limits(settings: Settings, *, authenticated: bool) -> XmlLimits:
    """What one stream may make the parser hold, after or before authentication."""
    s = settings.limits
    return XmlLimits(
        max_stanza_bytes=s.max_stanza_bytes if authenticated else s.pre_auth_max_stanza_bytes,
        max_elements=s.max_elements if authenticated else s.pre_auth_max_elements,
        max_depth=s.max_depth,
        max_attributes=s.max_attributes,
        max_name_length=s.max_name_length,
        max_namespace_declarations=s.max_namespace_declarations,
        max_header_attributes=s.max_header_attributes,
        max_header_namespaces=s.max_header_namespaces,
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
