"""Short-lived bearer tokens for the media proxy (DESIGN Flow 5).

A gatekeeper client asks the hub for a token over its authenticated XMPP stream and presents it to
``GET /v1/media-proxy``; the HTTP side then needs no session lookup. The token is stateless:

    v1.<base64url(account JID)>.<expiry, Unix seconds>.<base64url(HMAC-SHA256)>

The MAC covers a purpose label, the version and the two fields, so a token of another purpose or
version signed with the same secret never verifies here. Comparison is constant-time. Time is passed
in (``now``); nothing here reads a clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from interlink.media.errors import MediaProxyRefusal

VERSION = "v1"
DEFAULT_LIFETIME = 600.0
_PURPOSE = b"interlink-media-proxy\x00"
_MAX_TOKEN = 2048


class MediaTokenError(MediaProxyRefusal):
    """The bearer token is malformed, forged or expired (HTTP 401)."""

    def __init__(self, detail: str) -> None:
        super().__init__(401, "media-token-invalid", detail)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class MediaTokens:
    """Issues and verifies media-proxy tokens with one server secret (at least 32 bytes)."""

    def __init__(self, secret: bytes, *, lifetime: float = DEFAULT_LIFETIME) -> None:
        if len(secret) < 32:
            raise ValueError("the media token secret must be at least 32 bytes")
        if lifetime <= 0:
            raise ValueError("the token lifetime must be positive")
        self._secret = secret
        self.lifetime = lifetime

    def _mac(self, signed: str) -> bytes:
        return hmac.new(self._secret, _PURPOSE + signed.encode("ascii"), hashlib.sha256).digest()

    def issue(self, account_jid: str, now: float) -> str:
        """A token for ``account_jid`` (a bare JID) valid until ``now + lifetime``."""
        if not account_jid or "/" in account_jid:
            raise ValueError("tokens are issued to bare JIDs")
        signed = f"{VERSION}.{_b64(account_jid.encode('utf-8'))}.{int(now + self.lifetime)}"
        return f"{signed}.{_b64(self._mac(signed))}"

    def verify(self, token: str, now: float) -> str:
        """The account JID the token was issued to.

        Raises :class:`MediaTokenError` when the token is malformed, of another version, forged or
        expired (the MAC is checked before anything the token says is believed).
        """
        if len(token) > _MAX_TOKEN:
            raise MediaTokenError("the token is too long")
        if not token.isascii():
            raise MediaTokenError("the token is malformed")
        parts = token.split(".")
        if len(parts) != 4:
            raise MediaTokenError("the token is malformed")
        version, jid_part, expiry_part, mac_part = parts
        if version != VERSION:
            raise MediaTokenError(f"unknown token version '{version[:8]}'")
        try:
            signed = f"{version}.{jid_part}.{expiry_part}"
            given = _unb64(mac_part)
        except (UnicodeError, binascii.Error, ValueError):
            raise MediaTokenError("the token is malformed") from None
        if not hmac.compare_digest(given, self._mac(signed)):
            raise MediaTokenError("the token signature does not verify")
        try:
            jid = _unb64(jid_part).decode("utf-8")
            expiry = int(expiry_part)
        except (UnicodeError, binascii.Error, ValueError):
            raise MediaTokenError("the token is malformed") from None
        if now >= expiry:
            raise MediaTokenError("the token has expired; ask the hub for a new one")
        return jid


def load_or_create_secret(path: Path) -> bytes:
    """The secret in ``path``, created (32 random bytes, mode 0600) when the file does not exist.

    Every hub process that serves the media proxy must share it, so it lives in the data directory.
    """
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        secret = secrets.token_bytes(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return load_or_create_secret(path)
        try:
            os.write(fd, secret)
        finally:
            os.close(fd)
        return secret
    if len(secret) < 32:
        raise ValueError(f"{path} holds fewer than 32 bytes")
    return secret
