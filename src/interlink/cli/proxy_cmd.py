"""``interlink provider proxy`` and ``interlink provider proxy-key``: the reference provider proxy
(:mod:`interlink.provider.proxy`)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated

import typer

from interlink.cli.common import run
from interlink.logs import setup_logging

KeyOpt = Annotated[
    Path, typer.Option("--key-file", help="the proxy's Ed25519 signing key (created if absent)")
]


def proxy_key(key_file: KeyOpt = Path("./proxy.key")) -> None:
    """Print the fingerprint of the proxy's key (created if absent): the hub's operator
    registers it with the proxy's addresses under [[proxies.registered]]."""
    from interlink.provider.proxy import key_fingerprint, load_or_create_key

    typer.echo(key_fingerprint(load_or_create_key(key_file)))


def proxy(
    route: Annotated[
        list[str],
        typer.Option(help="domain=host:port of the hub's direct-TLS port; repeat for several"),
    ],
    key_file: KeyOpt = Path("./proxy.key"),
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 5223,
    mode: Annotated[
        str, typer.Option(help="blind (default: TLS stays end to end) or terminating")
    ] = "blind",
    cert_file: Annotated[
        Path | None, typer.Option(help="terminating: the proxy's certificate chain")
    ] = None,
    cert_key_file: Annotated[
        Path | None, typer.Option(help="terminating: the certificate's private key")
    ] = None,
    hub_ca_file: Annotated[
        Path | None, typer.Option(help="terminating: CA to trust for the hub")
    ] = None,
    upstream_source: Annotated[
        str | None, typer.Option(help="local address to connect to the hub from")
    ] = None,
    client_bytes_per_second: Annotated[
        int, typer.Option(help="terminating: one client's byte rate (0 = unlimited)")
    ] = 0,
) -> None:
    """Run the provider proxy: one hub connection per client connection, nothing stored. Blind
    mode relays TLS it cannot read (it sees addresses, times and sizes); terminating mode reads
    the stream in clear (JIDs, presence, timing) and is the leakier choice."""
    from interlink.provider.proxy import (
        Mode,
        ProxyConfig,
        ProxyLimits,
        Route,
        load_or_create_key,
        run_proxy,
    )

    setup_logging("INFO", "json")
    client_tls: ssl.SSLContext | None = None
    hub_tls: ssl.SSLContext | None = None
    chosen = Mode(mode)
    if chosen is Mode.TERMINATING:
        if cert_file is None or cert_key_file is None:
            raise typer.BadParameter("terminating mode needs --cert-file and --cert-key-file")
        client_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        client_tls.minimum_version = ssl.TLSVersion.TLSv1_2
        client_tls.load_cert_chain(str(cert_file), str(cert_key_file))
        hub_tls = ssl.create_default_context(
            cafile=str(hub_ca_file) if hub_ca_file is not None else None
        )
        hub_tls.minimum_version = ssl.TLSVersion.TLSv1_2
    config = ProxyConfig(
        routes=[Route.parse(r) for r in route],
        key=load_or_create_key(key_file),
        mode=chosen,
        client_tls=client_tls,
        hub_tls=hub_tls,
        upstream_source=upstream_source,
        limits=ProxyLimits(client_bytes_per_second=client_bytes_per_second),
    )
    run(run_proxy(config, host, port))
