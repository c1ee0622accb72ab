"""Typed settings: a TOML file (``--config``) with command-line flags that override it.

Only the composition root (:mod:`interlink.app`) and the CLI read configuration. Every limit has a
default here and is documented in ``docs/operations.md``.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from interlink.errors import ConfigError
from interlink.media.model import MAX_MEDIA_BYTES
from interlink.xmpp import addressing
from interlink.xmpp.jid import JID, InvalidJID


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSection(_Section):
    # The gatekeeper service this hub serves; or ``domains``, several services on one hub (e.g. a
    # "WhatsApp-like" and a "Messenger-like" one), the first being the default. Not both.
    domain: str = "localhost"
    domains: list[str] | None = None
    data_dir: Path = Path("./interlink-data")

    @model_validator(mode="after")
    def _one_way_to_name_domains(self) -> HubSection:
        if "domain" in self.model_fields_set and self.domains is not None:
            raise ValueError("set hub.domain or hub.domains, not both")
        if self.domains is not None and not self.domains:
            raise ValueError("hub.domains needs at least one domain")
        return self

    @property
    def services(self) -> tuple[str, ...]:
        """The gatekeeper service domains, the default first."""
        if self.domains:
            return tuple(d.strip().lower() for d in self.domains)
        return (self.domain.strip().lower(),)


class NetSection(_Section):
    host: str = "127.0.0.1"
    c2s_port: int = Field(5222, ge=0, le=65535)
    c2s_tls_port: int = Field(5223, ge=0, le=65535)
    http_port: int = Field(5280, ge=0, le=65535)
    s2s_port: int = Field(5269, ge=0, le=65535)  # bound only when s2s.enabled
    http_tls: bool = True
    # SO_REUSEPORT on every listening port: several processes share them, the kernel spreads
    # new connections (set by `interlink serve --workers N` for its workers)
    reuse_port: bool = False
    require_tls: bool = True  # false allows SCRAM on plaintext c2s (benchmarks, TLS proxies)
    auth_timeout: float = Field(30.0, gt=0)
    tls_handshake_timeout: float = Field(10.0, gt=0)  # every TLS port
    tls_shutdown_timeout: float = Field(2.0, gt=0)  # waiting for the peer's close_notify
    max_unauthenticated: int = Field(1000, ge=1)
    # Per source, on every transport (STARTTLS, direct TLS, WebSocket): streams held before
    # binding, per address and per IPv6 /64; new connections a minute (0 = unlimited).
    max_unauthenticated_per_ip: int = Field(64, ge=1)
    max_unauthenticated_per_ipv6_64: int = Field(128, ge=1)
    connections_per_source_per_minute: int = Field(60, ge=0)
    # Connections in their TLS handshake on the direct TLS and HTTPS ports: all, per source.
    max_tls_handshakes: int = Field(512, ge=1)
    max_tls_handshakes_per_source: int = Field(16, ge=1)
    # Addresses or networks exempt from the per-source budgets (e.g. a provider's proxy).
    source_allowlist: list[str] = []
    max_outbound_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024)
    hibernate_after: float = Field(10.0, gt=0)  # free an idle stream's parser after this
    # The HTTP port: connections open at once (all, per source), the time from the TLS handshake
    # to the end of the first request's headers, and between requests.
    http_max_connections: int = Field(1024, ge=1)
    http_max_connections_per_source: int = Field(128, ge=1)
    http_request_timeout: float = Field(10.0, gt=0)
    http_keep_alive_timeout: int = Field(5, ge=1)  # whole seconds (uvicorn's unit)
    # XEP-0114 components (only when [components] names one); loopback unless said otherwise.
    component_host: str = "127.0.0.1"
    component_port: int = Field(5347, ge=0, le=65535)
    # The operator's doors (admin API, console, /metrics) on a listener of their own, and then
    # not on the public HTTP port; unset: served on the HTTP port. 0 = any free port.
    admin_host: str = "127.0.0.1"
    admin_port: int | None = Field(None, ge=0, le=65535)

    @field_validator("source_allowlist")
    @classmethod
    def _networks(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"not an address or network: {entry!r}") from exc
        return entries


class TlsSection(_Section):
    cert_file: Path | None = None
    key_file: Path | None = None


class LimitsSection(_Section):
    # What one stream may make us parse (docs/operations.md): after authentication ...
    max_stanza_bytes: int = Field(256 * 1024, ge=1024)
    max_elements: int = Field(4096, ge=16)  # in one stanza
    max_depth: int = Field(32, ge=4)
    max_attributes: int = Field(64, ge=4)
    max_name_length: int = Field(256, ge=16)
    max_namespace_declarations: int = Field(64, ge=4)  # in one stanza
    max_header_attributes: int = Field(16, ge=4)  # on the stream header
    max_header_namespaces: int = Field(16, ge=2)  # declared on the stream header
    read_bytes_per_second: int = Field(512 * 1024, ge=1024)
    read_burst_bytes: int = Field(1024 * 1024, ge=1024)
    # ... and before it, where nothing legitimate is large (RFC 6120 §13.12).
    pre_auth_max_stanza_bytes: int = Field(10 * 1024, ge=1024)
    pre_auth_max_elements: int = Field(100, ge=4)
    pre_auth_read_bytes_per_second: int = Field(4 * 1024, ge=256)
    pre_auth_read_burst_bytes: int = Field(16 * 1024, ge=1024)
    max_auth_failures: int = Field(3, ge=1)
    offline_max_per_account: int = Field(1000, ge=1)
    offline_max_bytes_per_account: int = Field(16 * 1024 * 1024, ge=1024)
    offline_drain_batch: int = Field(100, ge=1)
    offline_drain_retry: float = Field(1.0, gt=0, le=60)
    write_stall_timeout: float = Field(30.0, gt=0)
    max_roster_items: int = Field(1000, ge=1)
    max_roster_name_length: int = Field(1023, ge=1)
    max_roster_groups: int = Field(64, ge=0)
    max_roster_bytes: int = Field(1024 * 1024, ge=4096)
    max_pending_subscriptions: int = Field(1000, ge=1)  # requests kept for one account
    max_pending_subscription_bytes: int = Field(4096, ge=256)  # one kept request
    max_directed_presences: int = Field(1000, ge=1)  # remembered per session
    pep_max_nodes: int = Field(256, ge=1)
    pep_max_items: int = Field(256, ge=1)
    pep_max_item_bytes: int = Field(128 * 1024, ge=1024)
    pep_quota_bytes: int = Field(1024 * 1024, ge=1024)  # all item payloads of one account
    pep_max_subscriptions: int = Field(1024, ge=1)  # explicit ones one account holds
    private_quota_bytes: int = Field(256 * 1024, ge=1024)  # XEP-0049, one account
    private_max_fragments: int = Field(64, ge=1)  # XEP-0049 namespaces of one account
    private_max_fragment_bytes: int = Field(64 * 1024, ge=256)  # one XEP-0049 element
    vcard_max_bytes: int = Field(128 * 1024, ge=1024)  # XEP-0054, one account's vCard
    max_sessions_per_account: int = Field(32, ge=1)  # bound resources at once
    sm_max_unacked: int = Field(1000, ge=1)  # XEP-0198 stanzas sent and not yet acknowledged
    sm_request_every: int = Field(5, ge=1)  # the hub sends <r/> after this many stanzas
    # ... or this many seconds after the first stanza not yet asked about (0: only by count)
    sm_request_after: float = Field(30.0, ge=0, le=3600)


class SaslSection(_Section):
    scram_iterations: int = Field(4096, ge=4096)
    # Back-off after failed attempts (docs/security.md): free failures, then first_delay
    # seconds doubling up to the cap, per (account, source), per source and per account.
    throttle_pair_free: int = Field(5, ge=0)
    throttle_source_free: int = Field(20, ge=0)
    throttle_account_free: int = Field(20, ge=0)
    throttle_first_delay: float = Field(1.0, gt=0)
    throttle_pair_max_delay: float = Field(300.0, gt=0)
    throttle_max_delay: float = Field(60.0, gt=0)  # per source and per account
    throttle_forget_after: float = Field(3600.0, gt=0)
    throttle_trusted_for: float = Field(30 * 86400.0, ge=0)
    throttle_max_keys: int = Field(100_000, ge=1)
    throttle_ipv6_prefix: int = Field(64, ge=1, le=128)

    @model_validator(mode="after")
    def _delays_fit(self) -> SaslSection:
        longest = max(self.throttle_pair_max_delay, self.throttle_max_delay)
        if min(self.throttle_pair_max_delay, self.throttle_max_delay) < self.throttle_first_delay:
            raise ValueError("sasl.throttle_*max_delay must be at least sasl.throttle_first_delay")
        if self.throttle_forget_after < longest:
            raise ValueError("sasl.throttle_forget_after must be at least the longest back-off")
        return self


class StorageSection(_Section):
    engine: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_synchronous: Literal["NORMAL", "FULL", "EXTRA"] = "FULL"
    # PostgreSQL (engine = "postgres"): a libpq connection string or postgresql:// URL
    dsn: str = ""
    pool_size: int = Field(10, ge=1, le=1000)  # connections per hub process

    @model_validator(mode="after")
    def _postgres_has_a_dsn(self) -> StorageSection:
        if self.engine == "postgres" and not self.dsn:
            raise ValueError("storage.engine = postgres needs storage.dsn")
        return self


class ClusterSection(_Section):
    # Redis shared by the hub processes of a cluster (redis://host:port/db); empty: this
    # process alone, nothing shared (the embedded default)
    redis_url: str = ""
    # this process's name in the cluster, unique among its processes; empty: host name and pid
    node_id: str = Field("", max_length=200)
    # a node that has not renewed its lease this long is dead: its sessions vanish and a
    # survivor stores what was routed to it offline
    node_ttl: float = Field(10.0, ge=0.5, le=300)
    redis_prefix: str = Field("interlink:", min_length=1, max_length=100)
    # how long a scrape of /metrics waits for the other nodes' metrics
    metrics_wait: float = Field(1.0, gt=0, le=30)
    # carbons and roster pushes waiting to be sent to other nodes; beyond, dropped (counted)
    fanout_backlog: int = Field(10_000, ge=1, le=10_000_000)
    # connections each node keeps to Redis at most (one is the notice subscription, one the
    # inbox sends, one the inbox reads); a call that finds none free waits redis_pool_timeout
    # seconds
    # three are held for good (notices, inbox sends, inbox reads): at least three for the rest
    redis_max_connections: int = Field(64, ge=6, le=10_000)
    redis_pool_timeout: float = Field(2.0, ge=0.01, le=60)
    # seconds a Redis command may take; beyond it (or the pool's wait) a message being routed
    # to another node is stored offline instead
    redis_timeout: float = Field(5.0, ge=0.5, le=60)
    # seconds a node keeps an answer of the session directory at most (dropped at once when a
    # notice says the account's sessions changed); 0: every message looks its account up
    directory_cache_ttl: float = Field(30.0, ge=0, le=3600)
    directory_cache_size: int = Field(100_000, ge=0, le=10_000_000)  # answers kept at most
    # messages appended to one node's inbox in one Redis round trip at most
    route_batch: int = Field(256, ge=1, le=10_000)


class XmppSection(_Section):
    bind_conflict: Literal["override", "refuse", "replace"] = "override"
    stream_management: bool = True  # offer XEP-0198 (acks, resumption)
    # seconds a stream-management session whose connection was lost waits to be resumed;
    # 0: never kept (the id still lets the client settle its offline deliveries)
    sm_resume_window: float = Field(300.0, ge=0, le=86400)


ADMIN_TOKEN_MIN = 32  # characters: the token guards the admin API and the console's login


class AdminSection(_Section):
    token: str | None = None  # unset: generated once into data_dir/admin-token (mode 0600)
    metrics_public: bool = False  # /metrics without the admin token (e.g. behind a firewall)
    # How often a running hub reads the change feed: changes made by another process (the CLI
    # on the same data directory) take effect within this many seconds.
    change_feed_interval: float = Field(1.0, gt=0)
    # The change feed's entries are kept this long (every follower applied them long before).
    change_feed_retention: float = Field(86_400.0, ge=60)

    @field_validator("token")
    @classmethod
    def _long_token(cls, value: str | None) -> str | None:
        if value is not None and len(value.strip()) < ADMIN_TOKEN_MIN:
            raise ValueError(
                f"admin.token needs {ADMIN_TOKEN_MIN} characters or more (it guards the admin "
                "API and the console login, on the public HTTP port unless net.admin_port is "
                "set); leave it unset to have "
                "one generated"
            )
        return value


class InteropSection(_Section):
    # http:// callbacks and JWKS URLs on loopback only, for local testing and the demo
    allow_insecure_loopback: bool = False
    http_timeout: float = Field(5.0, gt=0)  # calls to providers (JWKS, push)
    introspection_timeout: float = Field(3.0, gt=0)  # a slower provider makes the login fail
    push_queue_max: int = Field(1000, ge=1)  # queued pushes per provider; beyond are dropped
    push_max_attempts: int = Field(5, ge=1)
    push_backoff: float = Field(1.0, gt=0)  # seconds before the first retry; doubles after
    # enlistment challenges kept open (memory, ~200 bytes each); beyond, the oldest are dropped
    open_challenges: int = Field(100_000, ge=1)


class PolicySection(_Section):
    """Consent and abuse limits (docs/consent.md); a rate of 0 means unlimited."""

    request_messages: int = Field(3, ge=1)  # from a third party before the request is accepted
    # per sender across the interop boundary; receipts and typing count too
    messages_per_minute: int = Field(120, ge=0)
    new_conversations_per_day: int = Field(20, ge=0)  # per sender
    provider_messages_per_second: int = Field(1000, ge=0)  # aggregate, per provider
    max_blocklist: int = Field(1000, ge=1)  # items per account (XEP-0191)
    max_allowed_providers: int = Field(256, ge=1)  # in a user's allow list
    max_report_messages: int = Field(20, ge=0)  # attached to one report
    max_report_text: int = Field(4096, ge=1)  # characters of a report's text and of each message
    reports_per_hour: int = Field(10, ge=0)  # per reporter
    discovery_per_user_per_hour: int = Field(20, ge=0)
    discovery_per_provider_per_hour: int = Field(10_000, ge=0)
    # accounts' existence and interop settings kept in memory for the routing path, and for how
    # long (another node's change arrives through the change feed at once, see operations.md)
    account_cache_entries: int = Field(10_000, ge=1, le=10_000_000)
    account_cache_seconds: float = Field(30.0, ge=0, le=3600)


class MediaSection(_Section):
    """Uploads (XEP-0363) and the media proxy (docs/operations.md)."""

    public_url: str | None = None  # https base URL clients reach the HTTP port at; None: derived
    # Where uploaded files are kept; None: hub.data_dir/media. In a cluster, one directory all
    # nodes share (e.g. NFS), since any node may serve a file another one received.
    dir: Path | None = None
    max_file_size: int = Field(MAX_MEDIA_BYTES, ge=1)  # 100 MiB of media once sealed
    quota_bytes: int = Field(1024 * 1024 * 1024, ge=1)  # per user: stored files + open slots
    max_open_slots: int = Field(16, ge=1)
    slot_expiry: float = Field(300.0, gt=0)  # seconds to start the PUT
    retention: float = Field(30 * 86400.0, gt=0)  # seconds a file is kept
    upload_time_limit: float = Field(3600.0, gt=0)
    allowed_types: list[str] | None = None  # None: any type that is not active content
    denied_types: list[str] = []  # added to the built-in active types (HTML, SVG, XML, JS)
    cleanup_interval: float = Field(600.0, gt=0)
    third_party_uploads: bool = False  # third parties upload to their provider's media host
    proxy_max_bytes: int = Field(MAX_MEDIA_BYTES, ge=1)
    proxy_timeout: float = Field(120.0, gt=0)  # one whole proxied download
    proxy_idle_timeout: float = Field(30.0, gt=0)
    proxy_max_redirects: int = Field(3, ge=0)
    # Hosts, addresses or networks the proxy may fetch although private or loopback (the demo).
    proxy_private_allowlist: list[str] = []
    token_lifetime: float = Field(600.0, gt=0)  # media-proxy tokens


class PushSection(_Section):
    """XEP-0357 push notifications for the hub's own accounts (docs/protocol.md)."""

    max_registrations_per_account: int = Field(10, ge=1, le=1000)
    max_publish_options_bytes: int = Field(4096, ge=256, le=65536)
    reply_timeout: float = Field(30.0, gt=0, le=600)  # waiting for the app server's answer
    max_in_flight: int = Field(100, ge=1, le=100000)  # accounts being notified at once


class CsiSection(_Section):
    """XEP-0352 client state indication: what the hub holds for clients that say inactive."""

    enabled: bool = True  # offer <csi/> among the stream features
    max_held: int = Field(100, ge=1, le=10000)  # stanzas held per inactive stream; then flushed


class ComponentsSection(_Section):
    """XEP-0114 external components (e.g. push app servers): domain → shared secret. The
    listener (``net.component_port``) runs only when at least one is configured."""

    secrets: dict[str, str] = {}
    handshake_timeout: float = Field(10.0, gt=0, le=300)

    @field_validator("secrets")
    @classmethod
    def _strong_secrets(cls, secrets: dict[str, str]) -> dict[str, str]:
        for domain, secret in secrets.items():
            if len(secret) < 16:
                raise ValueError(f"the secret of component {domain!r} needs 16 characters or more")
        return {domain.strip().lower(): secret for domain, secret in secrets.items()}


class AdhocSection(_Section):
    """XEP-0050 ad-hoc commands (docs/operations.md)."""

    # Bare JIDs of this hub's accounts that may run the XEP-0133 commands (announce, online users).
    operators: list[str] = []
    max_sessions_per_account: int = Field(8, ge=1)  # command sessions open at once per account
    session_lifetime: float = Field(600.0, gt=0)  # seconds from a command session's start
    online_users_list_max: int = Field(1000, ge=1)  # JIDs in one get-online-users-list answer

    @field_validator("operators")
    @classmethod
    def _bare_jids(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                jid = JID.parse(text)
            except InvalidJID as exc:
                raise ValueError(f"adhoc.operators: {text!r} is not a JID ({exc})") from None
            if jid.local is None or jid.resource is not None:
                raise ValueError(f"adhoc.operators: {text!r} is not an account's bare JID")
        return value


class PasswordsSection(_Section):
    """Rules for every new password: ``interlink user add``/``passwd`` and the change-password
    ad-hoc command."""

    min_length: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> PasswordsSection:
        if self.max_length < self.min_length:
            raise ValueError("passwords.max_length must be at least passwords.min_length")
        return self


class ArchiveSection(_Section):
    """XEP-0313 message archives of the hub's own accounts and of its rooms
    (docs/operations.md)."""

    enabled: bool = True
    retention: float = Field(30 * 86400.0, gt=0)  # seconds a message is kept
    prune_interval: float = Field(3600.0, gt=0)  # seconds between two prunings
    max_messages_per_account: int = Field(100_000, ge=1)  # past it, the oldest are dropped
    max_messages_per_room: int = Field(100_000, ge=1)  # the same for each room's archive
    page_max: int = Field(250, ge=1)  # messages one query returns at most (larger max: clamped)
    page_default: int = Field(50, ge=1)  # when a query names no max
    default_mode: Literal["always", "never", "roster"] = "always"  # for accounts without prefs
    max_pref_jids: int = Field(1000, ge=0)  # JIDs in one account's always + never lists
    prefs_cache_ttl: float = Field(60.0, ge=0)  # seconds the routing path trusts cached prefs
    prefs_cache_size: int = Field(100_000, ge=1)  # accounts whose prefs are cached
    # true: a sender's next stanza and its XEP-0198 ack wait for the archive commit; false:
    # write-behind, at most write_queue_max entries behind (docs/operations.md)
    durable_before_ack: bool = False
    write_queue_max: int = Field(20_000, ge=1)

    @model_validator(mode="after")
    def _default_page_fits(self) -> ArchiveSection:
        if self.page_default > self.page_max:
            raise ValueError("archive.page_default cannot exceed archive.page_max")
        return self


class GroupsSection(_Section):
    """The group service (XEP-0045 rooms on ``<subdomain>.<service>``, docs/operations.md);
    a rate of 0 means unlimited."""

    enabled: bool = True
    subdomain: str = "groups"  # the rooms of wa.example live at <room>@groups.wa.example
    max_members: int = Field(1000, ge=1)  # owners, admins and members of one room
    rooms_per_user: int = Field(100, ge=1)  # rooms one account owns
    max_occupants: int = Field(200, ge=1)  # in one room at once; what a room may configure
    max_message_bytes: int = Field(64 * 1024, ge=256)  # one groupchat message as sent
    room_messages_per_minute: int = Field(600, ge=0)  # everything sent to one room
    sender_messages_per_minute: int = Field(60, ge=0)  # one sender, in every room together
    max_nick_chars: int = Field(64, ge=1)
    max_subject_chars: int = Field(1024, ge=1)
    rooms_cached: int = Field(10_000, ge=1)  # rooms without occupants kept in memory
    labels_cached: int = Field(100_000, ge=1)  # interop markers of members kept (LRU)
    # a room's localpart; at most 512 so that members' room aliases stay valid addresses
    max_room_name_bytes: int = Field(256, ge=1, le=512)

    @field_validator("subdomain")
    @classmethod
    def _one_label(cls, value: str) -> str:
        label = value.strip().lower()
        if not label or any(c in label for c in "./@ "):
            raise ValueError("groups.subdomain must be one DNS label, e.g. 'groups'")
        return label


class RegisteredProxyEntry(_Section):
    """One provider proxy (``[[proxies.registered]]``), registered at onboarding."""

    provider: str
    addresses: list[str] = Field(min_length=1)  # addresses or networks it connects from
    fingerprint: str  # sha256:<hex> of its Ed25519 public key (``interlink provider proxy-key``)

    @field_validator("addresses")
    @classmethod
    def _networks(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"not an address or network: {entry!r}") from exc
        return entries

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str) -> str:
        digest = value.removeprefix("sha256:")
        if not value.startswith("sha256:") or len(digest) != 64:
            raise ValueError("a proxy fingerprint is sha256:<64 hex digits>")
        try:
            bytes.fromhex(digest)
        except ValueError as exc:
            raise ValueError("a proxy fingerprint is sha256:<64 hex digits>") from exc
        return value


class ProxiesSection(_Section):
    """Provider proxies whose PROXY v2 headers the direct-TLS port accepts."""

    registered: list[RegisteredProxyEntry] = []
    max_header_bytes: int = Field(512, ge=52, le=65551)
    max_tlvs: int = Field(8, ge=1, le=64)
    max_tlv_bytes: int = Field(256, ge=120, le=65535)  # the signature TLV needs 120
    max_clock_skew: float = Field(120.0, gt=0)  # seconds, for the header's signed time
    replay_cache_size: int = Field(100_000, ge=1)  # header nonces remembered at once


class LogPrivacySection(_Section):
    """What logs keep about people (:mod:`interlink.log_privacy`)."""

    redact: bool = True  # JIDs, phone numbers and IP addresses become pseudonyms
    retention: float = Field(86_400.0, gt=0)  # seconds a pseudonym stays linkable
    ipv4_prefix: int = Field(24, ge=0, le=32)  # what is kept of an IPv4 address
    ipv6_prefix: int = Field(48, ge=0, le=128)


class ProvidersSection(_Section):
    # A CA certificate (PEM) the hub trusts for providers' endpoints (callbacks, JWKS, media)
    # besides the system's: a provider kit's self-signed certificate, or a private CA.
    ca_file: Path | None = None


class ConsoleSection(_Section):
    # The operator's web console under /admin/ (login with the admin token).
    enabled: bool = True
    session_lifetime: float = Field(8 * 3600.0, gt=0)  # seconds a console login lasts
    max_sessions: int = Field(32, ge=1)  # console logins kept at once; beyond, the oldest ends
    refresh: int = Field(10, ge=2)  # seconds between reloads of the metrics page
    history: int = Field(360, ge=2)  # samples kept for the metrics page's charts (memory)
    # Failed console logins from one source (an IPv4 address, an IPv6 /64) before it must wait;
    # then login_backoff seconds, doubling up to login_backoff_cap.
    login_free_failures: int = Field(5, ge=0)
    login_backoff: float = Field(1.0, gt=0)
    login_backoff_cap: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _backoff(self) -> ConsoleSection:
        if self.login_backoff_cap < self.login_backoff:
            raise ValueError("console.login_backoff_cap must be at least console.login_backoff")
        return self


class S2SSection(_Section):
    """Server-to-server federation with onboarded providers' own servers (issue 15)."""

    enabled: bool = False  # listen on net.s2s_port and connect to federated providers
    auth_timeout: float = Field(30.0, gt=0)  # a stream authenticates (and is ready) within this
    connect_timeout: float = Field(10.0, gt=0)  # one TCP connection attempt to a peer
    max_links: int = Field(256, ge=1)  # s2s connections at once, both directions
    max_pending_stanzas: int = Field(1000, ge=1)  # queued for a link that is not ready yet


class LogSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class Settings(_Section):
    hub: HubSection = HubSection()
    net: NetSection = NetSection()
    tls: TlsSection = TlsSection()
    limits: LimitsSection = LimitsSection()
    sasl: SaslSection = SaslSection()
    storage: StorageSection = StorageSection()
    cluster: ClusterSection = ClusterSection()
    xmpp: XmppSection = XmppSection()
    admin: AdminSection = AdminSection()
    interop: InteropSection = InteropSection()
    policy: PolicySection = PolicySection()
    media: MediaSection = MediaSection()
    adhoc: AdhocSection = AdhocSection()
    passwords: PasswordsSection = PasswordsSection()
    archive: ArchiveSection = ArchiveSection()
    groups: GroupsSection = GroupsSection()
    proxies: ProxiesSection = ProxiesSection()
    log_privacy: LogPrivacySection = LogPrivacySection()
    providers: ProvidersSection = ProvidersSection()
    console: ConsoleSection = ConsoleSection()
    s2s: S2SSection = S2SSection()
    log: LogSection = LogSection()
    push: PushSection = PushSection()
    csi: CsiSection = CsiSection()
    components: ComponentsSection = ComponentsSection()

    @model_validator(mode="after")
    def _a_cluster_shares_its_database(self) -> Settings:
        if self.cluster.redis_url and self.storage.engine != "postgres":
            raise ValueError(
                "cluster.redis_url needs storage.engine = postgres: the nodes of a cluster share "
                "one database"
            )
        return self

    @model_validator(mode="after")
    def _websocket_can_authenticate(self) -> Settings:
        for domain in self.components.secrets:
            clash = self._served_by_the_hub(domain)
            if clash is not None:
                raise ValueError(
                    f"components.secrets: {domain!r} is {clash}; a component needs a domain "
                    "of its own (e.g. push.example.net)"
                )
        if self.net.require_tls and not self.net.http_tls:
            raise ValueError(
                "net.http_tls = false needs net.require_tls = false: WebSocket clients on a "
                "plain HTTP port could never authenticate"
            )
        return self

    def _served_by_the_hub(self, domain: str) -> str | None:
        """What the hub serves at ``domain`` itself, or ``None``: a service, its group service,
        or an address in a service's interop space (``<provider>.interop.<service>``, any
        provider's, approved or not, and the space's own domain)."""
        for service in self.hub.services:
            if domain == service:
                return "one of the hub's services (hub.domains)"
            if self.groups.enabled and domain == addressing.groups_domain(
                service, self.groups.subdomain
            ):
                return f"the group service of {service!r} (groups.subdomain)"
            suffix = addressing.interop_suffix(service)
            if domain.endswith(suffix) or domain == suffix.lstrip("."):
                return f"in the interop space of {service!r} (providers' users live there)"
        return None

    @property
    def database_path(self) -> Path:
        return self.hub.data_dir / "interlink.sqlite3"

    @property
    def media_dir(self) -> Path:
        return self.media.dir if self.media.dir is not None else self.hub.data_dir / "media"


def load_settings(
    path: Path | None, overrides: dict[str, dict[str, Any]] | None = None
) -> Settings:
    """Read ``path`` (if given), apply ``overrides`` (``{"net": {"c2s_port": 5333}}``), validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    for section, values in (overrides or {}).items():
        clean = {k: v for k, v in values.items() if v is not None}
        if section == "hub" and "domains" in clean and isinstance(raw.get("hub"), dict):
            raw["hub"].pop("domain", None)  # domains given on the command line replace the file's
        if clean:
            raw.setdefault(section, {}).update(clean)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
