"""``interlink chat``: the terminal chat client (Textual, on the SDK)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def chat(
    host: Annotated[str, typer.Option(help="the hub's address")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(help="c2s port (default 5222, or 5223 with --direct-tls)")
    ] = None,
    direct_tls: Annotated[
        bool, typer.Option("--direct-tls", help="TLS from the first byte instead of STARTTLS")
    ] = False,
    ca_file: Annotated[
        Path | None, typer.Option("--ca-file", help="CA certificate to trust (dev certificate)")
    ] = None,
    http_url: Annotated[
        str | None,
        typer.Option(
            "--http-url", help="the hub's HTTPS URL: enlistment, discovery, third-party media"
        ),
    ] = None,
    domain: Annotated[
        str | None, typer.Option(help="the hub's domain (to enlist a provider's user)")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="where this client keeps its devices' keys")
    ] = None,
    history_lines: Annotated[
        int,
        typer.Option(
            "--history-lines", min=1, help="messages kept on this device per account (oldest go)"
        ),
    ] = 10_000,
    catch_up: Annotated[
        int,
        typer.Option(
            "--catch-up", min=1, help="messages read from the hub's archive per connection"
        ),
    ] = 500,
    jid: Annotated[str, typer.Option(help="fill in the login form: a hub account")] = "",
    kit_url: Annotated[str, typer.Option(help="fill in the login form: a provider kit")] = "",
    kit_user: Annotated[str, typer.Option(help="fill in the login form: the kit username")] = "",
) -> None:
    """Chat end to end encrypted in the terminal, as a hub user or a provider's user."""
    # Textual is imported here, not at module level, so that other commands start fast.
    from interlink.chat.app import ChatApp, default_data_dir
    from interlink.chat.session import ServerOptions

    options = ServerOptions(
        host=host,
        port=port if port is not None else (5223 if direct_tls else 5222),
        direct_tls=direct_tls,
        ca_file=ca_file,
        http_url=http_url,
        hub_domain=domain,
        data_dir=data_dir if data_dir is not None else default_data_dir(),
        history_lines=history_lines,
        catch_up=catch_up,
    )
    prefill = {"jid": jid, "kit_url": kit_url, "kit_user": kit_user}
    ChatApp(options, prefill).run()
