"""What every ``interlink`` command shares: options, settings loading, running a coroutine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from interlink.app import open_storage
from interlink.config import Settings, load_settings
from interlink.errors import ConfigError
from interlink.storage import Storage
from interlink.xmpp.jid import JID, InvalidJID
from interlink.xmpp.sasl.credentials import PasswordRules, password_problem

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


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@dataclass(frozen=True, slots=True)
class HubData:
    """A hub's data directory, opened by a command: its storage and the services it serves."""

    storage: Storage
    services: tuple[str, ...]


@asynccontextmanager
async def hub_data(settings: Settings, data_dir_flag: Path | None) -> AsyncIterator[HubData]:
    """Open the hub's database for a command (SQLite's file, or PostgreSQL's ``storage.dsn``).
    On SQLite a ``--data-dir`` given on the command line must hold a hub's database (a mistyped
    directory is an error, not a new empty database); the configured directory is created on
    first use. The services are those the hub there recorded when it last started, else the
    configuration's; the two must agree when both name them."""
    path = settings.database_path
    if data_dir_flag is not None and settings.storage.engine == "sqlite" and not path.exists():
        fail(
            f"{data_dir_flag} holds no Interlink hub (no {path.name}): check --data-dir, or "
            "start the hub there once (interlink serve --data-dir …)"
        )
    storage = await open_storage(settings)
    try:
        recorded = await storage.server_state.get_value("services")
        configured = settings.hub.services
        explicit = bool({"domain", "domains"} & settings.hub.model_fields_set)
        services = configured
        if recorded is not None:
            services = tuple(json.loads(recorded))
            if explicit and set(configured) != set(services):
                fail(
                    f"the hub in {settings.hub.data_dir} serves {', '.join(services)}, but the "
                    f"configuration names {', '.join(configured)}"
                )
        yield HubData(storage, services)
    finally:
        await storage.close()


def home_account(services: Sequence[str], jid_text: str) -> str:
    """A gatekeeper user's bare JID on one of ``services`` (a bare local part: the default
    service's); exits with a clear error otherwise."""
    try:
        jid = JID.parse(jid_text if "@" in jid_text else f"{jid_text}@{services[0]}")
    except InvalidJID as exc:
        fail(f"invalid JID '{jid_text}': {exc}")
    if jid.local is None or jid.resource is not None:
        fail("give a bare JID like 4915112345678@hub.example")
    if jid.domain not in services:
        fail(f"{jid} is not on this hub's domain ({', '.join(services)})")
    return str(jid)


def ask_password(password: str | None, rules: PasswordRules) -> str:
    """The password given or prompted for, checked by ``rules`` (``[passwords]``, the same rules
    as the change-password ad-hoc command)."""
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    problem = password_problem(password, rules)
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    return password
