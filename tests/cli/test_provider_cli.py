"""``interlink provider update`` changes the federation fields as ``provider federate`` does
(issue 15), keeps what it is not given, and refuses a mode that does not exist."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from interlink.cli.main import app


def test_provider_update_sets_the_federation_fields(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(f"[hub]\ndomain = 'hub.example'\ndata_dir = '{tmp_path / 'data'}'\n")
    runner = CliRunner()
    base = ["-c", str(config)]
    added = runner.invoke(
        app,
        [
            "provider",
            "add",
            "chatprov",
            "--name",
            "Chat Example",
            "--callback",
            "https://chat.example/hub",
            "--jwks-url",
            "https://chat.example/jwks",
            *base,
        ],
    )
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["mode"] == "plug-and-play"
    fingerprint = ":".join(["AB"] * 32)
    updated = runner.invoke(
        app,
        [
            "provider",
            "update",
            "chatprov",
            "--mode",
            "both",
            "--server-domain",
            "chat.example",
            "--s2s-fingerprint",
            fingerprint,
            "--s2s-address",
            "10.0.0.5:5269",
            *base,
        ],
    )
    assert updated.exit_code == 0, updated.output
    record = json.loads(updated.output)
    assert record["mode"] == "both"
    assert record["server_domains"] == ["chat.example"]
    assert record["s2s_fingerprints"] == ["ab" * 32]
    assert record["s2s_address"] == "10.0.0.5:5269"
    assert record["display_name"] == "Chat Example"  # not given: kept
    renamed = runner.invoke(app, ["provider", "update", "chatprov", "--name", "Chat", *base])
    assert renamed.exit_code == 0, renamed.output
    assert json.loads(renamed.output)["mode"] == "both"  # the federation fields stay
    wrong = runner.invoke(app, ["provider", "update", "chatprov", "--mode", "sideways", *base])
    assert wrong.exit_code == 2
    assert "--mode must be one of" in wrong.output
    no_domain = runner.invoke(
        app,
        ["provider", "update", "chatprov", "--mode", "federated", "--server-domain", "x", *base],
    )
    assert no_domain.exit_code == 1
    assert "not a host name" in no_domain.output
