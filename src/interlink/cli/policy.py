"""``interlink user phone``, ``interlink reports …`` and ``interlink provider reports``: the
operator's side of the consent and abuse rules. Like ``interlink user``, these work on the data
directory directly, also while the hub runs."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from interlink.cli.common import ConfigOpt, DataDirOpt, cli_settings, home_account, hub_data, run
from interlink.errors import AccountNotFoundError, PhoneInUseError
from interlink.interop.discovery import normalize_phone
from interlink.storage.policy import Report

reports_app = typer.Typer(help="Abuse reports users filed (XEP-0377).", no_args_is_help=True)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user_phone(
    jid: str,
    phone: Annotated[str | None, typer.Argument(help="E.164 number, e.g. +4915112345678")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="remove the account's number")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Show, set or remove the phone number by which an account can be discovered (only if the
    user also turns on third-party chats and discoverability)."""
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})
    number = None
    if phone is not None:
        number = normalize_phone(phone)
        if number is None:
            typer.echo(f"error: '{phone}' is not an E.164 number like +4915112345678", err=True)
            raise typer.Exit(2)

    async def go() -> tuple[str, str | None]:
        async with hub_data(settings, data_dir) as hub:
            account = home_account(hub.services, jid)
            if remove or number is not None:
                await hub.storage.policy.set_phone(account, None if remove else number)
            return account, await hub.storage.policy.phone_of(account)

    try:
        account, current = run(go())
    except (AccountNotFoundError, PhoneInUseError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{account}: {current or 'no phone number'}")


async def _reports(settings_dir: tuple[Path | None, Path | None], limit: int) -> list[Report]:
    settings = cli_settings(settings_dir[0], {"hub": {"data_dir": settings_dir[1]}})
    async with hub_data(settings, settings_dir[1]) as hub:
        return await hub.storage.policy.reports(limit)


@reports_app.command("list")
def reports_list(
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List reports, newest first: id, time, reporter, reported, reason, forwarding state."""
    for r in run(_reports((config, data_dir), limit)):
        if as_json:
            typer.echo(json.dumps(asdict(r), ensure_ascii=False))
            continue
        forwarded = (
            f"forwarded {_when(r.forwarded_at)}"
            if r.forwarded_at
            else (r.forward_error or "not forwarded")
            if r.provider_id
            else "operator only"
        )
        typer.echo(
            f"{r.id}\t{_when(r.created_at)}\t{r.reporter}\t{r.reported}\t"
            f"{r.reason.rsplit(':', 1)[-1]}\t{len(r.messages)} messages\t{forwarded}"
        )


@reports_app.command("show")
def reports_show(report_id: int, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """One report in full, with the messages the reporter attached."""
    settings = cli_settings(config, {"hub": {"data_dir": data_dir}})

    async def go() -> Report | None:
        async with hub_data(settings, data_dir) as hub:
            return await hub.storage.policy.report(report_id)

    report = run(go())
    if report is None:
        typer.echo(f"error: no report {report_id}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(asdict(report), ensure_ascii=False, indent=2))


def provider_reports(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="the provider kit's data directory")
    ] = Path("./provider-kit-data"),
) -> None:
    """The abuse reports the hub forwarded to this provider kit (one JSON object per line)."""
    from interlink.provider.serve import store_path
    from interlink.provider.store import KitStore

    async def go() -> list[dict[str, object]]:
        store = await KitStore.open(store_path(data_dir))
        try:
            return await store.reports()
        finally:
            await store.close()

    for claims in run(go()):
        typer.echo(json.dumps(claims, ensure_ascii=False))
