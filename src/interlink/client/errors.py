"""The SDK's exceptions: one root, :class:`ClientError`, so that an application can catch
everything the SDK raises on purpose with one ``except``. Each part of the SDK has its own
subclass, defined beside the code that raises it and exported from :mod:`interlink.client`:

- :class:`ClientError` itself: the connection, login, encryption or sending failed;
  :class:`NotConnected` when a call needs a connection and there is none;
- :class:`~interlink.client.outbox.OutboxFull`: too many sent messages wait for the hub's
  acknowledgement (``outbox_limit``); the message was not sent;
- :class:`~interlink.client.consent.ConsentError`: the hub refused a settings, request or block
  call (with its stanza error condition);
- :class:`~interlink.client.media.MediaError`: a file could not be sent or received (names the
  check that failed);
- :class:`~interlink.client.enlist.EnlistmentFailed`: the hub or provider kit refused an HTTP call
  (with its RFC 9457 problem);
- :class:`~interlink.client.sce.SceError` and
  :class:`~interlink.client.omemo2_parse.MalformedEncrypted`: a peer's envelope or OMEMO element is
  malformed (the client turns both into :class:`~interlink.client.events.DecryptionFailed`
  events; they are also ``ValueError``);
- ``interlink.chat.session.LoginError``: the terminal client could not log in.

Errors of the libraries below (``OSError`` from sockets and files, ``httpx.HTTPError`` from an HTTP
call that got no answer) are not wrapped; the docstrings say where they can occur.
"""

from __future__ import annotations

from interlink.errors import InterlinkError


class ClientError(InterlinkError):
    """Root of the SDK's errors; raised itself when the client could not do what was asked
    (connection, login, encryption, sending)."""


class NotConnected(ClientError):
    """The call needs a connection: call ``connect()`` first (or again, after ``close()``)."""

    def __init__(self, text: str = "not connected") -> None:
        super().__init__(text)
