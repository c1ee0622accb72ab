"""The ``[archive]`` section: its defaults are the hub's, every key reaches the hub, bad values
name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from interlink.config import load_settings
from interlink.errors import ConfigError
from interlink.hub.archive import ArchiveLimits
from interlink.settings_map import archive_limits, hub_settings
from interlink.xmpp.ext.mam import Default


def test_the_sections_defaults_are_the_hubs() -> None:
    assert archive_limits(load_settings(None)) == ArchiveLimits()
    assert hub_settings(load_settings(None)).archive == ArchiveLimits()


def test_every_key_reaches_the_hub(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text(
        "[archive]\nenabled = false\nretention = 7.5\nprune_interval = 60.0\n"
        "max_messages_per_account = 10\nmax_messages_per_room = 11\npage_max = 20\n"
        "page_default = 5\n"
        "default_mode = 'roster'\nmax_pref_jids = 3\nprefs_cache_ttl = 1.0\n"
        "prefs_cache_size = 4\ndurable_before_ack = true\nwrite_queue_max = 6\n"
    )
    limits = archive_limits(load_settings(f))
    assert limits == ArchiveLimits(
        enabled=False,
        retention=7.5,
        prune_interval=60.0,
        max_messages_per_account=10,
        max_messages_per_room=11,
        page_max=20,
        page_default=5,
        default_mode=Default.ROSTER,
        max_pref_jids=3,
        prefs_cache_ttl=1.0,
        prefs_cache_size=4,
        durable_before_ack=True,
        write_queue_max=6,
    )
    section_keys = set(load_settings(f).archive.model_dump())
    assert section_keys == {f.name for f in dataclasses.fields(ArchiveLimits)}


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[archive]\npage_max = 0\n", "page_max"),
        ("[archive]\npage_max = 10\npage_default = 11\n", "page_default"),
        ("[archive]\ndefault_mode = 'sometimes'\n", "default_mode"),
        ("[archive]\nretention = 0\n", "retention"),
        ("[archive]\nmax_messages_per_account = 0\n", "max_messages_per_account"),
        ("[archive]\nmax_messages_per_room = 0\n", "max_messages_per_room"),
        ("[archive]\nwrite_queue_max = 0\n", "write_queue_max"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    f = tmp_path / "hub.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(f)


def test_page_default_at_page_max_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text("[archive]\npage_max = 10\npage_default = 10\n")
    assert archive_limits(load_settings(f)).page_default == 10
