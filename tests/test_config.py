"""Settings: defaults, file plus overrides, clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from interlink.config import Settings, load_settings
from interlink.errors import ConfigError


def test_defaults() -> None:
    s = load_settings(None)
    assert s.hub.domain == "localhost"
    assert (s.net.host, s.net.c2s_port, s.net.c2s_tls_port, s.net.http_port) == (
        "127.0.0.1",
        5222,
        5223,
        5280,
    )
    assert s.limits.max_stanza_bytes == 256 * 1024
    assert s.limits.offline_max_per_account == 1000
    assert s.net.auth_timeout == 30.0


def test_file_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text('[hub]\ndomain = "hub.example"\n[net]\nc2s_port = 15222\nhttp_port = 15280\n')
    s = load_settings(f, {"net": {"c2s_port": 25222, "http_port": None}})
    assert s.hub.domain == "hub.example"
    assert s.net.c2s_port == 25222  # the flag wins
    assert s.net.http_port == 15280  # an absent flag leaves the file's value


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[net]\nc2s_port = 70000\n", "c2s_port"),
        ("[limits]\nmax_stanza_bytes = 10\n", "max_stanza_bytes"),
        ("[net]\nunknown_key = 1\n", "unknown_key"),
        ("[net]\nhttp_tls = false\n", "net.http_tls = false needs net.require_tls = false"),
        ("[storage]\nengine = 'mysql'\n", "engine"),
        (
            "[[proxies.registered]]\nprovider = 'x'\naddresses = ['192.0.2.1']\n"
            "fingerprint = 'md5:00'\n",
            "sha256:<64 hex digits>",
        ),
        (
            "[[proxies.registered]]\nprovider = 'x'\naddresses = ['not-an-ip']\n"
            f"fingerprint = 'sha256:{'0' * 64}'\n",
            "not an address or network",
        ),
        ("[proxies]\nmax_tlv_bytes = 119\n", "max_tlv_bytes"),
        ("[proxies]\nreplay_cache_size = 0\n", "replay_cache_size"),
        (f"[admin]\ntoken = '{'t' * 31}'\n", "admin.token needs 32 characters"),
        ("[console]\nlogin_backoff = 10\nlogin_backoff_cap = 9\n", "login_backoff_cap"),
        ("[console]\nlogin_free_failures = -1\n", "login_free_failures"),
        ("[log_privacy]\nipv4_prefix = 33\n", "ipv4_prefix"),
        ("[storage]\nengine = 'postgres'\n", "storage.engine = postgres needs storage.dsn"),
        ("[storage]\npool_size = 0\n", "pool_size"),
        ("[storage]\npool_size = 1001\n", "pool_size"),
        ("[groups]\nmax_room_name_bytes = 513\n", "max_room_name_bytes"),
        ("[groups]\nmax_room_name_bytes = 0\n", "max_room_name_bytes"),
        ("[groups]\nreveal_addresses = true\n", "reveal_addresses"),
        ("[policy]\naccount_cache_entries = 0\n", "account_cache_entries"),
        ("[limits]\noffline_drain_retry = 0\n", "offline_drain_retry"),
        ("[limits]\noffline_drain_retry = 60.001\n", "offline_drain_retry"),
        ("[policy]\naccount_cache_entries = 10000001\n", "account_cache_entries"),
        ("[cluster]\nredis_max_connections = 5\n", "redis_max_connections"),
        ("[policy]\naccount_cache_seconds = -1\n", "account_cache_seconds"),
        ("[policy]\naccount_cache_seconds = 3601\n", "account_cache_seconds"),
    ],
)
def test_invalid_settings_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    f = tmp_path / "hub.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(f)


def test_limits_at_their_bounds_are_accepted(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text(
        "[cluster]\nredis_max_connections = 6\n[policy]\naccount_cache_entries = 10000000\n"
        "[limits]\noffline_drain_retry = 60\n"
    )
    s = load_settings(f)
    assert s.cluster.redis_max_connections == 6
    assert s.policy.account_cache_entries == 10_000_000
    assert s.limits.offline_drain_retry == 60


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.toml")


def test_every_configuration_key_is_documented() -> None:
    """docs/operations.md names every key a configuration file may hold."""
    doc = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    missing = [
        f"{section}.{key}"
        for section, field in Settings.model_fields.items()
        for key in field.annotation.model_fields  # type: ignore[union-attr]
        if f"{section}.{key}" not in doc
    ]
    assert missing == []


def test_parse_limits_per_phase_come_from_the_limits_section() -> None:
    from interlink.settings_map import xml_limits
    from interlink.xmpp.parser import XmlLimits
    from interlink.xmpp.stream.config import PRE_AUTH_LIMITS

    defaults = Settings()
    # The configuration's defaults are the protocol core's.
    assert xml_limits(defaults, authenticated=True) == XmlLimits()
    assert xml_limits(defaults, authenticated=False) == PRE_AUTH_LIMITS
    s = load_settings(
        None,
        {
            "limits": {
                "max_stanza_bytes": 100_000,
                "max_elements": 500,
                "pre_auth_max_stanza_bytes": 2048,
                "pre_auth_max_elements": 10,
                "max_namespace_declarations": 8,
                "max_header_attributes": 6,
                "max_header_namespaces": 4,
            }
        },
    )
    after, before = xml_limits(s, authenticated=True), xml_limits(s, authenticated=False)
    assert (after.max_stanza_bytes, after.max_elements) == (100_000, 500)
    assert (before.max_stanza_bytes, before.max_elements) == (2048, 10)
    for limits in (after, before):
        assert limits.max_namespace_declarations == 8
        assert limits.max_header_attributes == 6
        assert limits.max_header_namespaces == 4


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[adhoc]\noperators = ['not a jid@@']\n", "adhoc.operators"),
        ("[adhoc]\noperators = ['hub.example']\n", "not an account's bare JID"),
        ("[adhoc]\noperators = ['op@hub.example/desk']\n", "not an account's bare JID"),
        ("[adhoc]\nmax_sessions_per_account = 0\n", "max_sessions_per_account"),
        ("[adhoc]\nsession_lifetime = 0\n", "session_lifetime"),
        ("[passwords]\nmin_length = 10\nmax_length = 9\n", "max_length must be at least"),
    ],
)
def test_adhoc_and_password_settings_are_checked(tmp_path: Path, toml: str, message: str) -> None:
    f = tmp_path / "hub.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(f)


async def test_operators_must_be_accounts_of_a_hosted_service() -> None:
    from interlink.app import adhoc_service
    from interlink.hub.addressing import Addressing, ProviderDirectory
    from interlink.hub.session import SessionRegistry
    from interlink.storage.sqlite import open_sqlite
    from interlink.xmpp.jid import JID

    storage = await open_sqlite(":memory:")
    try:
        addressing = Addressing(("hub.example",), ProviderDirectory())
        ok = load_settings(None, {"adhoc": {"operators": ["op@hub.example"]}})
        service = adhoc_service(ok, storage, SessionRegistry(), addressing, lambda: 0.0)
        assert service.operators == frozenset({JID.parse("op@hub.example")})
        elsewhere = load_settings(None, {"adhoc": {"operators": ["op@other.example"]}})
        with pytest.raises(ConfigError, match=r"op@other\.example"):
            adhoc_service(elsewhere, storage, SessionRegistry(), addressing, lambda: 0.0)
    finally:
        await storage.close()


SECRET = "s" * 16


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("hub.example", "one of the hub's services"),
        ("HUB.example", "one of the hub's services"),
        ("groups.hub.example", "group service"),
        ("interop.hub.example", "interop space"),
        ("examplechat.interop.hub.example", "interop space"),
        ("a.b.interop.hub.example", "interop space"),
        ("groups.msg.example", "group service of 'msg.example'"),
    ],
)
def test_a_component_domain_may_not_be_served_by_the_hub(
    tmp_path: Path, domain: str, message: str
) -> None:
    f = tmp_path / "hub.toml"
    f.write_text(
        "[hub]\ndomains = ['hub.example', 'msg.example']\n"
        f"[components.secrets]\n'{domain}' = '{SECRET}'\n"
    )
    with pytest.raises(ConfigError, match=f"components.secrets: .*{message}"):
        load_settings(f)


def test_component_domains_beside_the_hubs_are_accepted(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text(
        "[hub]\ndomain = 'hub.example'\n[groups]\nenabled = false\n[components.secrets]\n"
        f"'push.hub.example' = '{SECRET}'\n'groups.hub.example' = '{SECRET}'\n"
        f"'interop.example' = '{SECRET}'\n"
    )
    assert set(load_settings(f).components.secrets) == {
        "push.hub.example",
        "groups.hub.example",  # groups are off: the name is free
        "interop.example",
    }


def test_an_admin_token_of_32_characters_is_enough(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text(f"[admin]\ntoken = '{'t' * 32}'\n")
    assert load_settings(f).admin.token == "t" * 32


def test_a_short_admin_token_file_is_refused(tmp_path: Path) -> None:
    from interlink.app import admin_token

    settings = load_settings(None, {"hub": {"data_dir": str(tmp_path)}})
    generated = admin_token(settings)
    assert len(generated) >= 32
    (tmp_path / "admin-token").write_text("short\n")
    with pytest.raises(ConfigError, match="admin-token: the admin token needs 32 characters"):
        admin_token(settings)


def test_the_postgres_engine_takes_its_dsn_and_pool_size(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text("[storage]\nengine = 'postgres'\ndsn = 'host=db dbname=x'\npool_size = 1000\n")
    s = load_settings(f)
    assert (s.storage.engine, s.storage.dsn, s.storage.pool_size) == (
        "postgres",
        "host=db dbname=x",
        1000,
    )


def test_the_longest_room_name_allowed_is_512_bytes(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text("[groups]\nmax_room_name_bytes = 512\n")
    assert load_settings(f).groups.max_room_name_bytes == 512


def test_every_limits_key_named_like_a_hub_setting_reaches_the_hub() -> None:
    """``hub_settings`` takes the ``[limits]`` keys named like its fields by name
    (``settings_map.from_section``): a changed value of each reaches the hub."""
    from interlink.hub.context import HubSettings
    from interlink.settings_map import hub_settings

    limits = Settings().limits
    names = [f.name for f in dataclasses.fields(HubSettings) if f.name in type(limits).model_fields]
    assert len(names) == 22
    changed = {name: getattr(limits, name) + 1 for name in names}
    hub = hub_settings(load_settings(None, {"limits": changed}))
    assert {name: getattr(hub, name) for name in names} == changed


def test_the_account_cache_limits_reach_the_routing_path(tmp_path: Path) -> None:
    """At their boundaries: one entry, and 0 s (read every time) or an hour."""
    from interlink.settings_map import policy_limits

    f = tmp_path / "hub.toml"
    for seconds in (0, 3600):
        f.write_text(f"[policy]\naccount_cache_entries = 1\naccount_cache_seconds = {seconds}\n")
        limits = policy_limits(load_settings(f))
        assert (limits.cache_entries, limits.cache_seconds) == (1, seconds)
