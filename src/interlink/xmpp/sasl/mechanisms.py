"""SASL mechanism state machines, server side.

Flow: :func:`start_exchange` → :meth:`SaslExchange.begin` with the initial response, which returns
:class:`NeedCredentials`; → :meth:`SaslExchange.supply` with the stored credentials (or ``None``
for an unknown user) → a :class:`SaslChallenge` or :class:`SaslSuccess`; →
:meth:`SaslExchange.respond` for each client response. Every failure raises
:class:`~interlink.errors.SaslFailure`.
"""

from __future__ import annotations

from dataclasses import dataclass

from scramp import ScramException, ScramMechanism
from scramp.utils import saslprep

from interlink.errors import SaslCondition, SaslFailure
from interlink.xmpp.sasl.credentials import (
    SCRAM_SHA_1,
    SCRAM_SHA_256,
    ScramCredentials,
    StoredCredentials,
    check_password,
    decoy_credentials,
)

PLAIN = "PLAIN"
OAUTHBEARER = "OAUTHBEARER"
MECHANISMS = (SCRAM_SHA_256, SCRAM_SHA_1, PLAIN)
_MAX_USERNAME = 1023


@dataclass(frozen=True, slots=True)
class NeedCredentials:
    username: str


@dataclass(frozen=True, slots=True)
class NeedTokenCheck:
    """OAUTHBEARER: the bearer token must be verified (provider keys, claims, replay)."""

    token: str
    authzid: str


@dataclass(frozen=True, slots=True)
class SaslChallenge:
    data: bytes


@dataclass(frozen=True, slots=True)
class SaslSuccess:
    username: str
    data: bytes


SaslStep = NeedCredentials | NeedTokenCheck | SaslChallenge | SaslSuccess


def _malformed(text: str) -> SaslFailure:
    return SaslFailure(SaslCondition.MALFORMED_REQUEST, text)


def _not_authorized() -> SaslFailure:
    return SaslFailure(SaslCondition.NOT_AUTHORIZED, "authentication failed")


class SaslExchange:
    """One authentication attempt with one mechanism."""

    mechanism: str

    def begin(self, initial: bytes) -> SaslStep:
        raise NotImplementedError

    def supply(self, credentials: StoredCredentials | None) -> SaslStep:
        raise NotImplementedError

    def respond(self, data: bytes) -> SaslStep:
        raise _malformed("this mechanism expects no further response")


class _Scram(SaslExchange):
    def __init__(self, mechanism: str, decoy_secret: bytes, decoy_iterations: int) -> None:
        self.mechanism = mechanism
        self._decoy_secret = decoy_secret
        self._decoy_iterations = decoy_iterations
        self._client_first = ""
        self._username = ""
        self._server = ScramMechanism(mechanism).make_server(self._auth_info)
        self._creds: ScramCredentials | None = None
        self._stage = 0

    def _auth_info(self, _username: str) -> tuple[bytes, bytes, bytes, int]:
        c = self._creds
        assert c is not None
        return c.salt, c.stored_key, c.server_key, c.iterations

    def begin(self, initial: bytes) -> SaslStep:
        if self._stage != 0:
            raise _malformed("exchange already started")
        try:
            text = initial.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("client-first-message is not UTF-8") from None
        parts = text.split(",", 3)
        if len(parts) < 4 or parts[0] not in ("n", "y"):
            # 'p=' asks for channel binding, which we do not advertise (no -PLUS mechanisms yet).
            raise _malformed("invalid or unsupported GS2 header in client-first-message")
        authzid = parts[1]
        if not parts[2].startswith("n="):
            raise _malformed("client-first-message lacks the username")
        username = parts[2][2:].replace("=2C", ",").replace("=3D", "=")
        if not username or len(username) > _MAX_USERNAME:
            raise _malformed("empty or too long username")
        try:
            username = saslprep(username)
        except ScramException:
            raise _malformed("username is not a valid SASLprep string") from None
        if authzid and authzid != "a=" + username:
            raise SaslFailure(SaslCondition.INVALID_AUTHZID, "authorization identity not allowed")
        self._client_first = text
        self._username = username
        self._stage = 1
        return NeedCredentials(username)

    def supply(self, credentials: StoredCredentials | None) -> SaslStep:
        if self._stage != 1:
            raise _malformed("credentials supplied out of order")
        creds = credentials.for_mechanism(self.mechanism) if credentials else None
        if creds is None:
            creds = decoy_credentials(self._decoy_secret, self._username, self._decoy_iterations)
        self._creds = creds
        try:
            self._server.set_client_first(self._client_first)
            server_first: str = self._server.get_server_first()
        except ScramException as exc:
            raise _malformed(f"invalid client-first-message: {exc}") from None
        self._stage = 2
        return SaslChallenge(server_first.encode())

    def respond(self, data: bytes) -> SaslStep:
        if self._stage != 2:
            raise _malformed("unexpected response")
        self._stage = 3
        try:
            self._server.set_client_final(data.decode("utf-8"))
            server_final: str = self._server.get_server_final()
        except (ScramException, UnicodeDecodeError):
            raise _not_authorized() from None
        return SaslSuccess(self._username, server_final.encode())


class _Plain(SaslExchange):
    """RFC 4616; offered only inside TLS."""

    mechanism = PLAIN

    def __init__(self, decoy_secret: bytes, decoy_iterations: int) -> None:
        self._decoy_secret = decoy_secret
        self._decoy_iterations = decoy_iterations
        self._username = ""
        self._password = ""

    def begin(self, initial: bytes) -> SaslStep:
        try:
            authzid, authcid, password = initial.decode("utf-8").split("\0")
        except (UnicodeDecodeError, ValueError):
            raise _malformed("PLAIN message must be authzid NUL authcid NUL password") from None
        if not authcid or not password or len(authcid) > _MAX_USERNAME:
            raise _malformed("PLAIN needs a username and a password")
        try:
            authcid = saslprep(authcid)
            password = saslprep(password)
        except ScramException:
            raise _malformed("username or password is not a valid SASLprep string") from None
        if authzid and authzid != authcid and authzid.split("@", 1)[0] != authcid:
            raise SaslFailure(SaslCondition.INVALID_AUTHZID, "authorization identity not allowed")
        self._username = authcid
        self._password = password
        return NeedCredentials(authcid)

    def supply(self, credentials: StoredCredentials | None) -> SaslStep:
        password, self._password = self._password, ""
        creds = credentials.for_mechanism(SCRAM_SHA_256) if credentials else None
        if creds is None:
            # Spend the same work as a real check so timing does not reveal the account.
            decoy = decoy_credentials(self._decoy_secret, self._username, self._decoy_iterations)
            check_password(decoy, SCRAM_SHA_256, password)
            raise _not_authorized()
        try:
            ok = check_password(creds, SCRAM_SHA_256, password)
        except ScramException:
            ok = False
        if not ok:
            raise _not_authorized()
        return SaslSuccess(self._username, b"")


class _OAuthBearer(SaslExchange):
    """RFC 7628, client message ``gs2-header %x01 auth=Bearer <token> %x01 %x01``. Offered only
    inside TLS. A refused token ends the exchange with a failure whose text says why (the RFC's
    JSON error challenge is not used; XMPP clients read the failure)."""

    mechanism = OAUTHBEARER

    def begin(self, initial: bytes) -> SaslStep:
        try:
            text = initial.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("OAUTHBEARER message is not UTF-8") from None
        gs2, sep, rest = text.partition("\x01")
        parts = gs2.split(",")
        if not sep or len(parts) != 3 or parts[0] not in ("n", "y") or parts[2]:
            raise _malformed("OAUTHBEARER message must start with a GS2 header")
        authzid = parts[1][2:] if parts[1].startswith("a=") else ""
        if parts[1] and not parts[1].startswith("a="):
            raise _malformed("invalid GS2 authzid")
        if not rest.endswith("\x01\x01") and rest != "\x01":
            raise _malformed("OAUTHBEARER message must end with two ^A")
        token = ""
        for pair in rest.split("\x01"):
            key, _, value = pair.partition("=")
            if key == "auth":
                scheme, _, token = value.partition(" ")
                if scheme.lower() != "bearer":
                    raise _malformed("only Bearer tokens are accepted")
        if not token:
            raise _malformed("no bearer token")
        return NeedTokenCheck(token.strip(), authzid)

    def supply(self, credentials: StoredCredentials | None) -> SaslStep:
        raise _malformed("OAUTHBEARER takes a token, not credentials")

    def token_checked(self, username: str) -> SaslStep:
        return SaslSuccess(username, b"")


def start_exchange(
    mechanism: str,
    *,
    secure: bool,
    decoy_secret: bytes,
    decoy_iterations: int = 4096,
    oauthbearer: bool = False,
) -> SaslExchange:
    """Start an exchange, or raise ``invalid-mechanism`` / ``encryption-required``."""
    if mechanism in (SCRAM_SHA_256, SCRAM_SHA_1):
        return _Scram(mechanism, decoy_secret, decoy_iterations)
    if mechanism == PLAIN or (mechanism == OAUTHBEARER and oauthbearer):
        if not secure:
            raise SaslFailure(
                SaslCondition.ENCRYPTION_REQUIRED, f"{mechanism} is only allowed inside TLS"
            )
        if mechanism == PLAIN:
            return _Plain(decoy_secret, decoy_iterations)
        return _OAuthBearer()
    raise SaslFailure(SaslCondition.INVALID_MECHANISM, f"mechanism '{mechanism}' not supported")
