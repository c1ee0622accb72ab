"""Logging in for ``interlink chat``: a gatekeeper user with JID and password, or a provider
kit's user with the kit's login, whose device is enlisted with the hub on first run
(docs/provider-guide.md). Each account keeps its keys in its own folder under the data
directory, so the next run is the same device."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from interlink.client import InterlinkClient, KitUploader
from interlink.client.client import ClientError
from interlink.client.enlist import (
    EnlistmentFailed,
    discover,
    enlist,
    fetch_token,
    identity_thumbprint,
)

ACCOUNT_FILE = "account.json"  # a kit user's enlisted JID, remembered between runs


class LoginError(ClientError):
    """Logging in failed; the message says why, for the user."""


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Where the hub is and where this client keeps its devices (and their chat history:
    at most ``history_lines`` messages per account; at most ``catch_up`` messages read from the
    hub's archive per connection)."""

    host: str = "127.0.0.1"
    port: int = 5222
    direct_tls: bool = False
    ca_file: Path | None = None
    http_url: str | None = None  # the hub's HTTPS base URL: enlistment, discovery, media proxy
    hub_domain: str | None = None  # needed to enlist a kit user's device
    data_dir: Path = Path("interlink-chat")
    resource: str = "terminal"
    history_lines: int = 10_000
    catch_up: int = 500


@dataclass(frozen=True, slots=True)
class GatekeeperLogin:
    jid: str
    password: str


@dataclass(frozen=True, slots=True)
class KitLogin:
    kit_url: str
    username: str
    password: str


Login = GatekeeperLogin | KitLogin


@dataclass
class Session:
    """A connected account."""

    client: InterlinkClient
    jid: str  # bare
    third_party: bool
    options: ServerOptions
    data_dir: Path
    token_provider: Callable[[], Awaitable[str]] | None = None

    async def find_by_phone(self, phone: str) -> str | None:
        """The address of the gatekeeper user with ``phone`` (third-party users only), or None
        when no account can be reached there. Raises :class:`LoginError` when it cannot ask."""
        if self.token_provider is None or self.options.http_url is None:
            raise LoginError("finding people by phone number needs a provider login and --http-url")
        try:
            return await discover(
                self.options.http_url,
                await self.token_provider(),
                phone,
                ca_file=self.options.ca_file,
            )
        except EnlistmentFailed as exc:
            raise LoginError(f"discovery refused: {_problem_text(exc)}") from None

    async def close(self) -> None:
        await self.client.close()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._-]", "_", text)


def _problem_text(exc: EnlistmentFailed) -> str:
    detail = exc.problem.get("detail") or exc.problem.get("title") or ""
    return f"{detail} ({exc.status})" if detail else str(exc)


async def log_in(login: Login, options: ServerOptions) -> Session:
    """Connect the account; raises :class:`LoginError` with a reason the user can act on."""
    if isinstance(login, GatekeeperLogin):
        return await _gatekeeper(login, options)
    return await _kit_user(login, options)


async def _connect(client: InterlinkClient) -> None:
    try:
        await client.connect()
    except ClientError as exc:
        await client.close()
        raise LoginError(str(exc)) from None
    except OSError as exc:  # TLS and socket problems below slixmpp
        await client.close()
        raise LoginError(f"could not connect: {exc}") from None


async def _gatekeeper(login: GatekeeperLogin, options: ServerOptions) -> Session:
    bare, _, resource = login.jid.strip().partition("/")
    if "@" not in bare:
        raise LoginError("give an address like 4915112345678@hub.example")
    if not login.password:
        raise LoginError("give the password")
    data_dir = options.data_dir / _safe(bare)
    client = InterlinkClient(
        f"{bare}/{resource or options.resource}",
        login.password,
        data_dir=data_dir,
        host=options.host,
        port=options.port,
        direct_tls=options.direct_tls,
        ca_file=options.ca_file,
        http_url=options.http_url,
    )
    await _connect(client)
    return Session(client, bare, False, options, data_dir)


async def _kit_user(login: KitLogin, options: ServerOptions) -> Session:
    if not (login.kit_url and login.username and login.password):
        raise LoginError("give the provider kit's URL, your username and your password")
    host = urlsplit(login.kit_url).netloc or login.kit_url
    data_dir = options.data_dir / _safe(f"kit-{login.username}@{host}")
    thumbprint = await identity_thumbprint(data_dir)  # creates the device's keys on first run

    async def token() -> str:
        return await fetch_token(
            login.kit_url, login.username, login.password, thumbprint, ca_file=options.ca_file
        )

    try:
        jid = await _enlisted_jid(data_dir, token, options)
    except EnlistmentFailed as exc:
        raise LoginError(f"enlistment refused: {_problem_text(exc)}") from None
    except (OSError, httpx.HTTPError, ValueError) as exc:  # no answer, or not JSON
        raise LoginError(f"could not reach the kit or the hub: {exc}") from None
    uploader = KitUploader(login.kit_url, login.username, login.password, ca_file=options.ca_file)
    client = InterlinkClient(
        f"{jid}/{options.resource}",
        "",
        data_dir=data_dir,
        host=options.host,
        port=options.port,
        direct_tls=options.direct_tls,
        ca_file=options.ca_file,
        http_url=options.http_url,
        token_provider=token,
        uploader=uploader,
    )
    await _connect(client)
    return Session(client, jid, True, options, data_dir, token)


async def _enlisted_jid(
    data_dir: Path, token: Callable[[], Awaitable[str]], options: ServerOptions
) -> str:
    """The JID this device was enlisted under, enlisting it first if it never was."""
    remembered = data_dir / ACCOUNT_FILE
    if remembered.exists():
        text = await asyncio.to_thread(remembered.read_text, "utf-8")
        jid = json.loads(text).get("jid")
        if isinstance(jid, str) and jid:
            return jid
    if options.http_url is None or options.hub_domain is None:
        raise LoginError(
            "the first login of a provider's user enlists it: give --http-url and --domain"
        )
    enlisted = await enlist(
        data_dir, options.http_url, options.hub_domain, await token(), ca_file=options.ca_file
    )
    await asyncio.to_thread(remembered.write_text, json.dumps({"jid": enlisted.jid}), "utf-8")
    return enlisted.jid
