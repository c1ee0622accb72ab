"""What every ``interlink`` command shares: options, settings loading, running a coroutine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from interlink.config import Settings, load_settings
from interlink.errors import ConfigError
from interlink.xmpp.jid import JID, InvalidJID

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML configuration file")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="data directory")]


def cli_settings(config: Path | None, overrides: dict[str, dict[str, Any]]) -> Settings:
    try:
        return load_settings(config, overrides)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(coro)


def home_account(settings: Settings, jid_text: str) -> str:
    try:
        jid = JID.parse(jid_text)
    except InvalidJID as exc:
        typer.echo(f"error: invalid JID '{jid_text}': {exc}", err=True)
        raise typer.Exit(2) from None
    if jid.local is None or jid.resource is not None:
        typer.echo("error: give a bare JID like 4915112345678@hub.example", err=True)
        raise typer.Exit(2)
    if jid.domain != JID.parse(settings.hub.domain).domain:
        typer.echo(f"error: {jid} is not on this hub's domain ({settings.hub.domain})", err=True)
        raise typer.Exit(2)
    return str(jid)


def ask_password(password: str | None) -> str:
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        typer.echo("error: the password must not be empty", err=True)
        raise typer.Exit(2)
    return password
