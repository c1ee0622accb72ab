"""Enlisting this device's identity key with the hub (DESIGN Flow 2), for third-party users.

The identity key is the device's OMEMO identity key (Ed25519), created on first use in the SDK's
data directory. The application gets a provider token bound to :func:`identity_thumbprint` (the
``cnf.jkt`` claim), then calls :func:`enlist`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from omemo.identity_key_pair import IdentityKeyPair, IdentityKeyPairSeed

from interlink.client.errors import ClientError
from interlink.client.store import SqliteOmemoStorage


class EnlistmentFailed(ClientError):
    """The hub (or the provider kit) refused; ``status`` is the HTTP status (0: refused before
    asking) and ``problem`` its RFC 9457 answer."""

    def __init__(self, status: int, problem: dict[str, object]) -> None:
        super().__init__(f"{status}: {problem.get('detail') or problem}")
        self.status = status
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Enlisted:
    jid: str
    created: bool
    key_changed: bool


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def _identity(data_dir: Path) -> tuple[bytes, Ed25519PrivateKey]:
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    storage = await SqliteOmemoStorage.open(data_dir / "omemo.sqlite3")
    try:
        pair = await IdentityKeyPair.get(storage)
    finally:
        await storage.close()
    if not isinstance(pair, IdentityKeyPairSeed):
        raise EnlistmentFailed(0, {"detail": "this device's identity key cannot sign (no seed)"})
    return pair.identity_key, Ed25519PrivateKey.from_private_bytes(pair.seed)


async def identity_thumbprint(data_dir: Path) -> str:
    """RFC 7638 thumbprint of the device's identity key: what the provider binds as cnf.jkt.
    Creates the device's keys on first use.

    Raises:
        EnlistmentFailed: (status 0) the stored identity key cannot sign.
        OSError: the data directory could not be written.
    """
    public, _ = await _identity(data_dir)
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(public)}
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    return _b64url(hashlib.sha256(canonical).digest())


async def fetch_token(
    kit_url: str,
    username: str,
    password: str,
    thumbprint: str,
    *,
    ca_file: Path | None = None,
) -> str:
    """A fresh token from a provider kit (``POST /v1/token``), bound to ``thumbprint``.

    Raises:
        EnlistmentFailed: the kit refused (wrong password, inactive user), with its problem.
            httpx.HTTPError: no answer (network, TLS, timeout).
            ValueError: the answer was not JSON.
    """
    verify: ssl.SSLContext | bool = True
    if ca_file is not None:
        verify = ssl.create_default_context(cafile=str(ca_file))
    async with httpx.AsyncClient(base_url=kit_url, verify=verify, timeout=10) as http:
        answer = await http.post(
            "/v1/token", json={"username": username, "password": password, "thumbprint": thumbprint}
        )
    if answer.status_code != 200:
        raise EnlistmentFailed(answer.status_code, answer.json())
    token: str = answer.json()["token"]
    return token


async def enlist(
    data_dir: Path, hub_url: str, hub_domain: str, token: str, *, ca_file: Path | None = None
) -> Enlisted:
    """Enlist this device with a provider token bound to its identity key (``POST
    /v1/enlistments/challenge``, then ``POST /v1/enlistments`` with the signed challenge).

    Raises:
        EnlistmentFailed: the hub refused (bad or replayed token, key not bound, provider not
            approved, ...), with its RFC 9457 problem; or (status 0) the identity key cannot sign.
            httpx.HTTPError: no answer (network, TLS, timeout).
            ValueError: the answer was not JSON.
    """
    public, private = await _identity(data_dir)
    verify: ssl.SSLContext | bool = True
    if ca_file is not None:
        verify = ssl.create_default_context(cafile=str(ca_file))
    async with httpx.AsyncClient(base_url=hub_url, verify=verify, timeout=10) as http:
        challenge = await http.post("/v1/enlistments/challenge")
        if challenge.status_code != 201:
            raise EnlistmentFailed(challenge.status_code, challenge.json())
        nonce = challenge.json()["challenge"]
        signature = private.sign(nonce.encode() + hub_domain.encode())
        answer = await http.post(
            "/v1/enlistments",
            json={
                "token": token,
                "identity_key": _b64url(public),
                "challenge": nonce,
                "signature": _b64url(signature),
            },
        )
    if answer.status_code not in (200, 201):
        raise EnlistmentFailed(answer.status_code, answer.json())
    body = answer.json()
    return Enlisted(body["jid"], body["created"], body["key_changed"])


async def discover(
    hub_url: str, token: str, phone: str, *, ca_file: Path | None = None
) -> str | None:
    """The interop address of the gatekeeper user with ``phone`` (``POST /v1/discovery`` with a
    fresh provider token), or ``None`` if the hub reports none.

    Raises:
        EnlistmentFailed: for every other answer, with the problem document (429 carries
            ``retry_after``).
            httpx.HTTPError: no answer (network, TLS, timeout).
            ValueError: the answer was not JSON.
    """
    verify: ssl.SSLContext | bool = True
    if ca_file is not None:
        verify = ssl.create_default_context(cafile=str(ca_file))
    async with httpx.AsyncClient(base_url=hub_url, verify=verify, timeout=10) as http:
        answer = await http.post(
            "/v1/discovery", json={"phone": phone}, headers={"Authorization": f"Bearer {token}"}
        )
    if answer.status_code == 404:
        return None
    if answer.status_code != 200:
        problem = dict(answer.json())
        if "Retry-After" in answer.headers:
            problem["retry_after"] = int(answer.headers["Retry-After"])
        raise EnlistmentFailed(answer.status_code, problem)
    jid: str = answer.json()["jid"]
    return jid
