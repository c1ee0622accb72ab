"""``interlink serve --help`` names every configuration section, and ``user add`` applies the
password rules the change-password command applies."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from interlink.cli.main import app
from interlink.config import Settings


def test_serve_help_names_every_section() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0
    for section in Settings.model_fields:
        assert section in result.output
    assert "docs/operations.md" in result.output


def test_user_add_applies_the_password_rules(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(
        f"[hub]\ndomain = 'hub.example'\ndata_dir = '{tmp_path / 'data'}'\n"
        "[passwords]\nmin_length = 8\n"
    )
    runner = CliRunner()
    short = runner.invoke(
        app, ["user", "add", "alice@hub.example", "--password", "1234567", "-c", str(config)]
    )
    assert short.exit_code == 2
    assert "at least 8 characters" in short.output
    ok = runner.invoke(
        app, ["user", "add", "alice@hub.example", "--password", "12345678", "-c", str(config)]
    )
    assert ok.exit_code == 0, ok.output
