"""Fixtures of the integration tests."""

from __future__ import annotations

import pytest

from tests.integration.federationkit import SERVERS, StockServer


@pytest.fixture(params=SERVERS)
def stock_server(request: pytest.FixtureRequest) -> StockServer:
    """The stock XMPP server a federated provider runs: each test that takes it runs once with
    Prosody and once with ejabberd (tests/integration/federationkit.py), skipped, with the
    reason, where that server is not installed. A test for one server alone parametrises it
    directly: ``@pytest.mark.parametrize("stock_server", servers(EJABBERD_SERVER))``."""
    server: StockServer = request.param
    return server
