"""``interlink``: serve the hub and administer it.

``interlink user …`` works on the hub's database directly (SQLite in WAL mode allows it while the
hub runs; PostgreSQL through ``storage.dsn``): an added account can log in at once, a changed
password applies to the next login.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from interlink.app import HubServer
from interlink.cli import chat_cmd, proxy_cmd
from interlink.cli import policy as policy_cli
from interlink.cli.common import (
    ConfigOpt,
    DataDirOpt,
    ask_password,
    cli_settings,
    home_account,
    hub_data,
    run,
)
from interlink.cli.workers import supervise
from interlink.config import Settings
from interlink.errors import AccountExistsError, AccountNotFoundError, ConfigError
from interlink.interop.providers import ProviderError, ProviderRegistry
from interlink.logs import setup_logging
from interlink.settings_map import log_redactor, password_rules
from interlink.storage.providers import AuditEntry, Provider, ProviderMode, ProviderStatus
from interlink.xmpp.sasl import derive_credentials
from interlink.xmpp.sasl.credentials import PasswordRules

app = typer.Typer(help="Interlink: the interoperability hub.", no_args_is_help=True)
user_app = typer.Typer(help="Manage accounts on the hub's services.", no_args_is_help=True)
app.add_typer(user_app, name="user")
provider_app = typer.Typer(help="Onboard and manage third-party providers.", no_args_is_help=True)
app.add_typer(provider_app, name="provider")


_SERVE_HELP = (
    "Run the hub until SIGTERM or SIGINT.\n\nThe flags override the --config file, whose "
    f"sections are {', '.join(Settings.model_fields)}; every key, its default and its "
    "meaning are in docs/operations.md (Configuration keys)."
)


@app.command(help=_SERVE_HELP)
def serve(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    domain: Annotated[
        list[str] | None,
        typer.Option(
            help="a gatekeeper service's XMPP domain (repeat for several; first: default)"
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="address to listen on [127.0.0.1]")] = None,
    c2s_port: Annotated[int | None, typer.Option(help="c2s STARTTLS port [5222]")] = None,
    c2s_tls_port: Annotated[int | None, typer.Option(help="c2s direct TLS port [5223]")] = None,
    http_port: Annotated[int | None, typer.Option(help="HTTP/WebSocket port [5280]")] = None,
    component_port: Annotated[
        int | None,
        typer.Option(help="XEP-0114 component port, used if components.secrets is set [5347]"),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=1024,
            help="hub processes sharing the ports (SO_REUSEPORT), one per core; needs a "
            "cluster (cluster.redis_url, storage.engine = postgres)",
        ),
    ] = 1,
    node_id: Annotated[
        str | None, typer.Option(help="this process's name in the cluster [cluster.node_id]")
    ] = None,
    reuse_port: Annotated[
        bool, typer.Option(hidden=True, help="share the ports with other processes")
    ] = False,
) -> None:
    """Run the hub until SIGTERM or SIGINT. Every other setting (limits, [push], [csi],
    [components], …) is a key of the --config file: docs/operations.md lists them all."""
    settings = cli_settings(
        config,
        {
            "hub": {"data_dir": data_dir, "domains": domain or None},
            "net": {
                "host": host,
                "c2s_port": c2s_port,
                "c2s_tls_port": c2s_tls_port,
                "http_port": http_port,
                "component_port": component_port,
                "reuse_port": reuse_port or None,
            },
            "cluster": {"node_id": node_id},
        },
    )
    setup_logging(settings.log.level, settings.log.format, log_redactor(settings))
    if workers > 1:
        if not settings.cluster.redis_url:
            typer.echo(
                "error: --workers needs a cluster: cluster.redis_url and storage.engine = "
                "postgres (docs/operations.md)",
                err=True,
            )
            raise typer.Exit(2)
        net = settings.net
        if 0 in (net.c2s_port, net.c2s_tls_port, net.http_port):
            typer.echo("error: --workers needs fixed ports (not 0) to share", err=True)
            raise typer.Exit(2)
        base = settings.cluster.node_id or f"{socket.gethostname()}-{os.getpid()}"

        def argv_for(i: int) -> list[str]:
            argv = [sys.executable, "-m", "interlink", "serve", "--reuse-port"]
            argv += ["--node-id", f"{base}-w{i}"]
            if config is not None:
                argv += ["--config", str(config)]
            if data_dir is not None:
                argv += ["--data-dir", str(data_dir)]
            for d in domain or ():
                argv += ["--domain", d]
            argv += ["--host", net.host, "--c2s-port", str(net.c2s_port)]
            argv += ["--c2s-tls-port", str(net.c2s_tls_port), "--http-port", str(net.http_port)]
            if component_port is not None:
                argv += ["--component-port", str(component_port)]
            return argv

        raise typer.Exit(supervise(argv_for, workers))
    try:
        run(HubServer(settings).run())
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


PasswordOpt = Annotated[
    str | None, typer.Option("--password", help="password (prompted if absent)")
]


@user_app.command("add")
def user_add(
    jid: str, password: PasswordOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Create an account, e.g. 4915112345678@hub.example."""
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})
    secret = ask_password(password, password_rules(settings))

    async def go() -> str:
        async with hub_data(settings, data_dir) as hub:
            account = home_account(hub.services, jid)
            creds = derive_credentials(secret, settings.sasl.scram_iterations)
            await hub.storage.accounts.create(account, creds, time.time())
            return account

    try:
        account = run(go())
    except AccountExistsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {account}")


@user_app.command("passwd")
def user_passwd(
    jid: str, password: PasswordOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Set a new password for an account (its sessions stay; the next login needs it)."""
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})
    secret = ask_password(password, password_rules(settings))

    async def go() -> str:
        async with hub_data(settings, data_dir) as hub:
            account = home_account(hub.services, jid)
            creds = derive_credentials(secret, settings.sasl.scram_iterations)
            await hub.storage.accounts.set_credentials(account, creds)
            return account

    try:
        account = run(go())
    except AccountNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"password changed for {account}")


@user_app.command("remove")
def user_remove(jid: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Delete an account with its roster and stored messages (a running hub ends its sessions
    at once: it follows the change feed)."""
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})

    async def go() -> str:
        async with hub_data(settings, data_dir) as hub:
            account = home_account(hub.services, jid)
            await hub.storage.accounts.delete(account)
            return account

    try:
        account = run(go())
    except AccountNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"removed {account}")


def _set_disabled(jid: str, disabled: bool, config: Path | None, data_dir: Path | None) -> str:
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})

    async def go() -> str:
        async with hub_data(settings, data_dir) as hub:
            account = home_account(hub.services, jid)
            await hub.storage.moderation.set_disabled(account, disabled, time.time())
            return account

    try:
        result: str = run(go())
    except AccountNotFoundError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    return result


@user_app.command("disable")
def user_disable(jid: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Disable an account: it can no longer log in, and a running hub ends its sessions (it
    follows the change feed)."""
    typer.echo(f"disabled {_set_disabled(jid, True, config, data_dir)}")


@user_app.command("enable")
def user_enable(jid: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Enable a disabled account again."""
    typer.echo(f"enabled {_set_disabled(jid, False, config, data_dir)}")


@user_app.command("list")
def user_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """List the accounts."""
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})

    async def go() -> list[str]:
        async with hub_data(settings, data_dir) as hub:
            return await hub.storage.accounts.list_jids()

    jids: list[str] = run(go())
    for j in jids:
        typer.echo(j)


async def _with_registry(settings: Settings, data_dir: Path | None, action: Any) -> Any:
    async with hub_data(settings, data_dir) as hub:
        registry = ProviderRegistry(
            hub.storage.providers,
            time.time,
            services=hub.services,
            allow_insecure_loopback=settings.interop.allow_insecure_loopback,
        )
        return await action(registry)


def _provider_call(settings: Settings, data_dir: Path | None, action: Any) -> Any:
    """Run ``action`` on a registry over the hub's database. A running hub follows the change
    feed, so what is done here takes effect there at once (a suspension ends sessions)."""
    try:
        return run(_with_registry(settings, data_dir, action))
    except ProviderError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from None


def _show(provider: Provider) -> None:
    typer.echo(json.dumps(provider.public_view(), indent=2, sort_keys=True))


@provider_app.command("add")
def provider_add(
    provider_id: Annotated[str, typer.Argument(help="DNS label, e.g. examplechat")],
    name: Annotated[str, typer.Option("--name", help="display name shown to users")],
    callback: Annotated[str, typer.Option("--callback", help="https base URL of its endpoints")],
    jwks_file: Annotated[Path | None, typer.Option(help="file with its JWK set (public)")] = None,
    jwks_url: Annotated[str | None, typer.Option(help="or the https URL of its JWK set")] = None,
    media_host: Annotated[list[str] | None, typer.Option(help="allowed media host")] = None,
    feature: Annotated[list[str] | None, typer.Option(help="enabled feature")] = None,
    rate_tier: Annotated[str, typer.Option(help="small | standard | large")] = "standard",
    service: Annotated[
        list[str] | None,
        typer.Option(help="gatekeeper service (domain) it joins; repeat; default: the first"),
    ] = None,
    mode: Annotated[
        str, typer.Option(help="plug-and-play | federated (its own XMPP server, s2s) | both")
    ] = "plug-and-play",
    server_domain: Annotated[
        list[str] | None, typer.Option(help="XMPP domain of its server (s2s); repeat")
    ] = None,
    s2s_fingerprint: Annotated[
        list[str] | None, typer.Option(help="pinned SHA-256 fingerprint of its server cert")
    ] = None,
    s2s_ca: Annotated[Path | None, typer.Option(help="PEM file: the CA of its servers")] = None,
    s2s_address: Annotated[
        str | None, typer.Option(help="host:port of its server, instead of the SRV lookup")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Register a provider (status: pending until approved)."""
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})
    jwks = None
    if jwks_file is not None:
        try:
            jwks = json.loads(jwks_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            typer.echo(f"error: cannot read the JWK set in {jwks_file}: {exc}", err=True)
            raise typer.Exit(2) from None
    provider = Provider(
        id=provider_id,
        display_name=name,
        callback_url=callback,
        jwks=jwks,
        jwks_url=jwks_url,
        media_hosts=tuple(media_host or ()),
        features=tuple(feature or ("messaging",)),
        rate_tier=rate_tier,
        services=tuple(service or ()),
        mode=_mode(mode),
        server_domains=tuple(server_domain or ()),
        s2s_fingerprints=tuple(s2s_fingerprint or ()),
        s2s_ca=_read_text(s2s_ca, "the CA"),
        s2s_address=s2s_address,
    )
    _show(_provider_call(settings, data_dir, lambda r: r.add(provider, "cli")))


def _mode(text: str) -> ProviderMode:
    try:
        return ProviderMode(text)
    except ValueError:
        typer.echo(f"error: --mode must be one of {[str(m) for m in ProviderMode]}", err=True)
        raise typer.Exit(2) from None


def _read_text(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        typer.echo(f"error: cannot read {what} in {path}: {exc}", err=True)
        raise typer.Exit(2) from None


@provider_app.command("update")
def provider_update(
    provider_id: str,
    name: Annotated[str | None, typer.Option("--name", help="display name")] = None,
    callback: Annotated[str | None, typer.Option("--callback", help="https base URL")] = None,
    jwks_file: Annotated[Path | None, typer.Option(help="file with its JWK set")] = None,
    jwks_url: Annotated[str | None, typer.Option(help="or the https URL of its JWK set")] = None,
    media_host: Annotated[
        list[str] | None,
        typer.Option(help="allowed media host (replaces the list; repeat); host or host:port"),
    ] = None,
    no_media_hosts: Annotated[
        bool, typer.Option("--no-media-hosts", help="empty the media host list")
    ] = False,
    feature: Annotated[list[str] | None, typer.Option(help="feature (replaces the list)")] = None,
    rate_tier: Annotated[str | None, typer.Option(help="small | standard | large")] = None,
    service: Annotated[
        list[str] | None, typer.Option(help="gatekeeper service (replaces the list; repeat)")
    ] = None,
    mode: Annotated[str | None, typer.Option(help="plug-and-play | federated | both")] = None,
    server_domain: Annotated[
        list[str] | None, typer.Option(help="XMPP domain of its server; repeat; replaces the list")
    ] = None,
    s2s_fingerprint: Annotated[
        list[str] | None, typer.Option(help="pinned SHA-256 fingerprint; repeat; replaces")
    ] = None,
    s2s_ca: Annotated[Path | None, typer.Option(help="PEM file: the CA of its servers")] = None,
    s2s_address: Annotated[str | None, typer.Option(help="host:port instead of SRV")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Change a provider's record: only the options given (lists are replaced whole). Audited;
    a running hub applies it at once (it follows the change feed)."""
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})
    changes: dict[str, object] = {}
    if jwks_file is not None:
        try:
            changes["jwks"] = json.loads(jwks_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            typer.echo(f"error: cannot read the JWK set in {jwks_file}: {exc}", err=True)
            raise typer.Exit(2) from None
        changes["jwks_url"] = None
    if jwks_url is not None:
        changes["jwks_url"] = jwks_url
        changes.setdefault("jwks", None)
    if media_host is not None and no_media_hosts:
        typer.echo("error: --media-host and --no-media-hosts exclude each other", err=True)
        raise typer.Exit(2)
    options: dict[str, object] = {
        "display_name": name,
        "callback_url": callback,
        "media_hosts": [] if no_media_hosts else media_host,
        "features": feature,
        "rate_tier": rate_tier,
        "services": service,
        "mode": None if mode is None else str(_mode(mode)),
        "server_domains": server_domain,
        "s2s_fingerprints": s2s_fingerprint,
        "s2s_ca": _read_text(s2s_ca, "the CA"),
        "s2s_address": s2s_address,
    }
    changes.update({k: v for k, v in options.items() if v is not None})
    if not changes:
        typer.echo("error: nothing to change (see --help)", err=True)
        raise typer.Exit(2)
    _show(_provider_call(settings, data_dir, lambda r: r.update(provider_id, changes, "cli")))


@provider_app.command("federate")
def provider_federate(
    provider_id: str,
    mode: Annotated[str, typer.Option(help="plug-and-play | federated | both")] = "federated",
    server_domain: Annotated[
        list[str] | None, typer.Option(help="XMPP domain of its server; repeat; replaces the list")
    ] = None,
    s2s_fingerprint: Annotated[
        list[str] | None, typer.Option(help="pinned SHA-256 fingerprint; repeat; replaces")
    ] = None,
    s2s_ca: Annotated[Path | None, typer.Option(help="PEM file: the CA of its servers")] = None,
    s2s_address: Annotated[str | None, typer.Option(help="host:port instead of SRV")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Set how a provider federates (server-to-server); options not given are kept."""
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})
    changes: dict[str, object] = {"mode": str(_mode(mode))}
    if server_domain is not None:
        changes["server_domains"] = list(server_domain)
    if s2s_fingerprint is not None:
        changes["s2s_fingerprints"] = list(s2s_fingerprint)
    if s2s_ca is not None:
        changes["s2s_ca"] = _read_text(s2s_ca, "the CA")
    if s2s_address is not None:
        changes["s2s_address"] = s2s_address
    _show(_provider_call(settings, data_dir, lambda r: r.update(provider_id, changes, "cli")))


@provider_app.command("approve")
def provider_approve(
    provider_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Approve a provider: its users may enlist, log in and be reached."""
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})
    _show(
        _provider_call(
            settings, data_dir, lambda r: r.set_status(provider_id, ProviderStatus.APPROVED, "cli")
        )
    )


@provider_app.command("suspend")
def provider_suspend(
    provider_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None
) -> None:
    """Suspend a provider: a running hub ends its users' sessions at once."""
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})
    _show(
        _provider_call(
            settings, data_dir, lambda r: r.set_status(provider_id, ProviderStatus.SUSPENDED, "cli")
        )
    )


@provider_app.command("list")
def provider_list(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """One line per provider: id, status, display name."""
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})
    for p in _provider_call(settings, data_dir, lambda r: r.all()):
        typer.echo(f"{p.id}\t{p.status}\t{p.display_name}")


@provider_app.command("show")
def provider_show(provider_id: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """A provider's record and its audit log."""
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})

    async def both(r: ProviderRegistry) -> tuple[Provider, list[AuditEntry]]:
        return await r.get(provider_id), await r.audit(provider_id)

    provider, audit = _provider_call(settings, data_dir, both)
    _show(provider)
    for entry in audit:
        typer.echo(f"{entry.at:.0f}\t{entry.actor}\t{entry.action}\t{json.dumps(entry.details)}")


kit_user_app = typer.Typer(help="The provider kit's own users.", no_args_is_help=True)
provider_app.add_typer(kit_user_app, name="user")
KitDirOpt = Annotated[Path, typer.Option("--data-dir", help="the provider kit's data directory")]


@provider_app.command("serve")
def provider_serve(
    provider_id: Annotated[str, typer.Option(help="this provider's id at the hub")],
    hub_domain: Annotated[str, typer.Option(help="the hub's domain (token audience)")],
    hub_url: Annotated[str, typer.Option(help="https base URL of the hub")],
    data_dir: KitDirOpt = Path("./provider-kit-data"),
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8443,
    hub_ca_file: Annotated[Path | None, typer.Option(help="CA to trust for the hub")] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="certificate (PEM); default: one generated in data-dir/tls")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="its private key (PEM)")] = None,
    plain_http: Annotated[
        bool, typer.Option("--plain-http", help="no TLS (only behind a TLS-terminating proxy)")
    ] = False,
    public_url: Annotated[
        str | None, typer.Option(help="base URL as users and the hub reach the kit")
    ] = None,
    log_format: Annotated[str, typer.Option(help="text or json")] = "text",
) -> None:
    """Run the reference provider kit over HTTPS: JWT issuer with JWKS, introspection, push and
    report receiver, media host. Logs where it listens and each token, introspection, push,
    report and media request at INFO."""
    from interlink.provider.serve import KitSettings, serve_kit

    if log_format not in ("text", "json"):
        typer.echo("error: --log-format is text or json", err=True)
        raise typer.Exit(2)
    setup_logging("INFO", log_format)
    settings = KitSettings(
        data_dir,
        provider_id,
        hub_domain,
        hub_url,
        host,
        port,
        hub_ca_file,
        public_url=public_url,
        tls_cert=tls_cert,
        tls_key=tls_key,
        plain_http=plain_http,
    )
    try:
        run(serve_kit(settings))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@provider_app.command("cert")
def provider_cert(
    data_dir: KitDirOpt = Path("./provider-kit-data"),
    host: Annotated[str, typer.Option(help="the address or name the kit serves on")] = "127.0.0.1",
) -> None:
    """Generate the kit's self-signed TLS certificate now (``provider serve`` does it on first
    start) and print its path: give it to the hub (``providers.ca_file``) and your apps."""
    from interlink.provider.serve import KitSettings, kit_tls_files

    files = kit_tls_files(KitSettings(data_dir, "-", "-", "-", host))
    assert files is not None
    typer.echo(str(files[0]))


async def _kit_store(data_dir: Path) -> Any:
    from interlink.provider.serve import store_path
    from interlink.provider.store import KitStore

    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    return await KitStore.open(store_path(data_dir))


@kit_user_app.command("add")
def kit_user_add(
    username: str, password: PasswordOpt = None, data_dir: KitDirOpt = Path("./provider-kit-data")
) -> None:
    """Create a user of the provider kit."""
    secret = ask_password(password, PasswordRules())

    async def go() -> str:
        store = await _kit_store(data_dir)
        try:
            user = await store.add_user(username, secret)
        finally:
            await store.close()
        return str(user.username)

    try:
        typer.echo(f"created {run(go())}")
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@kit_user_app.command("deactivate")
def kit_user_deactivate(username: str, data_dir: KitDirOpt = Path("./provider-kit-data")) -> None:
    """Mark a user inactive: introspection then refuses its logins at the hub."""

    async def go() -> None:
        store = await _kit_store(data_dir)
        try:
            await store.set_active(username, False)
        finally:
            await store.close()

    try:
        run(go())
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"deactivated {username}")


@app.command()
def demo() -> None:
    """Run a hub and a provider kit on loopback with temporary data, onboard the provider,
    enlist a third-party user and hold a conversation (request, E2EE text, receipts, a push, an
    image); print what each person saw beside what the hub and the provider saw."""
    from rich.console import Console

    from interlink.demo import run_demo

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a transcript in a file or pipe stays readable
    raise typer.Exit(run(run_demo(console)))


user_app.command("phone")(policy_cli.user_phone)
app.add_typer(policy_cli.reports_app, name="reports")
provider_app.command("reports")(policy_cli.provider_reports)
provider_app.command("proxy")(proxy_cmd.proxy)
provider_app.command("proxy-key")(proxy_cmd.proxy_key)
app.command("chat")(chat_cmd.chat)


def main() -> None:
    app(prog_name="interlink")


if __name__ == "__main__":  # pragma: no cover
    main()
