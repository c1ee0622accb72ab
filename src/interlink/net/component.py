"""The XEP-0114 component listener: a thin asyncio shell around
:class:`~interlink.xmpp.stream.component.ComponentStream`, and :class:`ComponentGateway`, the
hub's way to the connected components (it is the
:class:`~interlink.hub.app_push.AppServerLink` of XEP-0357 push).

One connection per component domain: a second one for a domain already connected is closed with
``<conflict/>``. The hub sends a request to a component and awaits its answer by ``id``
(:meth:`ComponentGateway.request`); stanzas a component sends that answer nothing the hub asked
are refused (``service-unavailable`` for a request, dropped otherwise): components serve the hub
here, they do not yet exchange stanzas with users.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import cast

from interlink.errors import StanzaError, StanzaErrorCondition, StreamError, StreamErrorCondition
from interlink.xmpp.stanza import Iq, IqType, Stanza, error_reply, is_error_stanza
from interlink.xmpp.stream.component import (
    ComponentAuthenticated,
    ComponentClosed,
    ComponentConfig,
    ComponentEvent,
    ComponentStanza,
    ComponentStream,
)

log = logging.getLogger("interlink.component")


class ComponentGateway:
    """The connected components by domain, and the hub's requests waiting for their answers."""

    def __init__(
        self, config: ComponentConfig, on_change: Callable[[str, bool], None] | None = None
    ) -> None:
        """``on_change(domain, connected)`` hears of each component that connects or leaves
        (in a cluster: so the other nodes know where it is)."""
        self.config = config
        self._on_change = on_change
        self._connected: dict[str, ComponentProtocol] = {}
        self._waiting: dict[tuple[str, str], asyncio.Future[Iq]] = {}

    def reaches(self, domain: str) -> bool:
        return domain in self.config.secrets

    def connected(self, domain: str) -> bool:
        return domain in self._connected

    async def request(self, iq: Iq, reply_within: float) -> Iq | None:
        to = iq.to
        assert to is not None
        connection = self._connected.get(to.domain)
        if connection is None:
            return None
        key = (to.domain, iq.id or "")
        waiter: asyncio.Future[Iq] = asyncio.get_running_loop().create_future()
        self._waiting[key] = waiter
        try:
            connection.send(iq)
            return await asyncio.wait_for(waiter, reply_within)
        except (TimeoutError, ConnectionError):
            return None  # no answer in time, or the component went away meanwhile
        finally:
            self._waiting.pop(key, None)

    # -- from the connections -----------------------------------------------------------------
    def attach(self, domain: str, connection: ComponentProtocol) -> bool:
        if domain in self._connected:
            return False
        self._connected[domain] = connection
        log.info("component connected", extra={"domain": domain})
        if self._on_change is not None:
            self._on_change(domain, True)
        return True

    def detach(self, domain: str, connection: ComponentProtocol) -> None:
        if self._connected.get(domain) is connection:
            del self._connected[domain]
            log.info("component disconnected", extra={"domain": domain})
            if self._on_change is not None:
                self._on_change(domain, False)
            for (waiting_domain, _), waiter in list(self._waiting.items()):
                if waiting_domain == domain and not waiter.done():
                    waiter.set_exception(ConnectionError(f"component {domain} disconnected"))

    def received(self, domain: str, stanza: Stanza, connection: ComponentProtocol) -> None:
        if isinstance(stanza, Iq) and stanza.type in (IqType.RESULT, IqType.ERROR):
            waiter = self._waiting.get((domain, stanza.id or ""))
            if waiter is not None and not waiter.done():
                waiter.set_result(stanza)
            return
        if is_error_stanza(stanza) or not (isinstance(stanza, Iq) and stanza.type.is_request):
            return
        err = StanzaError(
            StanzaErrorCondition.SERVICE_UNAVAILABLE, "components only answer the hub here"
        )
        connection.send(error_reply(stanza, err, from_=stanza.to))

    def shutdown(self) -> None:
        error = StreamError(StreamErrorCondition.SYSTEM_SHUTDOWN, "the server is shutting down")
        for connection in list(self._connected.values()):
            connection.terminate(error)


class ComponentProtocol(asyncio.Protocol):
    """One component's TCP connection."""

    def __init__(self, gateway: ComponentGateway) -> None:
        self.gateway = gateway
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self.stream = ComponentStream(gateway.config, now=self._loop.time())
        self._timer: asyncio.TimerHandle | None = None
        self._domain: str | None = None  # once attached

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        deadline = self.stream.get_timer()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def data_received(self, data: bytes) -> None:
        self._handle(self.stream.receive_data(data))

    def send(self, stanza: Stanza) -> None:
        self.stream.send_stanza(stanza)
        self._flush()

    def terminate(self, error: StreamError | None) -> None:
        self._handle(self.stream.close(error))

    def _on_timer(self) -> None:
        self._timer = None
        self._handle(self.stream.handle_timer(self._loop.time()))

    def _handle(self, events: list[ComponentEvent]) -> None:
        for ev in events:
            if isinstance(ev, ComponentAuthenticated):
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                if self.gateway.attach(ev.domain, self):
                    self._domain = ev.domain
                else:
                    self._handle(
                        self.stream.close(
                            StreamError(
                                StreamErrorCondition.CONFLICT,
                                f"a component for '{ev.domain}' is already connected",
                            )
                        )
                    )
                    return
            elif isinstance(ev, ComponentStanza):
                assert self._domain is not None
                self.gateway.received(self._domain, ev.stanza, self)
            elif isinstance(ev, ComponentClosed):
                if ev.error is not None:
                    log.info(
                        "component stream error",
                        extra={"condition": str(ev.error.condition), "text": ev.error.text},
                    )
                self._flush()
                if self.transport is not None:
                    self.transport.close()
                self._gone()
                return
        self._flush()

    def _flush(self) -> None:
        data = self.stream.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _gone(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._domain is not None:
            self.gateway.detach(self._domain, self)
            self._domain = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.stream.close()
        self._gone()
        self.transport = None


async def start_component_listener(
    gateway: ComponentGateway, sock: socket.socket
) -> asyncio.Server:
    """Serve XEP-0114 components on ``sock``, bound already by the composition root."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: ComponentProtocol(gateway), sock=sock)


__all__ = ["ComponentGateway", "ComponentProtocol", "start_component_listener"]
