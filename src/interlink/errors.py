"""The one error hierarchy of Interlink, each class carrying its wire mapping.

Every error a peer can cause or see derives from :class:`InterlinkError`. Each layer has one parent
class; each concrete error says how it is shown on the wire:

* :class:`StreamError` ends an XML stream with an RFC 6120 §4.9 condition;
* :class:`StanzaError` answers one stanza with an RFC 6120 §8.3 condition and error type;
* :class:`SaslFailure` answers a SASL exchange with an RFC 6120 §6.5 condition;
* :class:`HttpProblem` becomes RFC 9457 problem+json with its ``status``, the problem type
  ``urn:interlink:problem:<kind>``, its ``title`` and ``detail``, and any ``headers()``.

Errors are converted at the boundary (the asyncio shells; for HTTP, the one exception handler of
:func:`interlink.net.problems.install_problem_handler`); a bare traceback never reaches a peer.

The HTTP mappings: :class:`~interlink.interop.providers.ProviderError`,
:class:`~interlink.interop.enlistment.EnlistmentError`,
:class:`~interlink.interop.discovery.DiscoveryError`, :class:`~interlink.media.errors.MediaError`
(with its XEP-0363 stanza condition too), :class:`~interlink.media.errors.MediaProxyRefusal`
(media tokens and the proxy), ``AdminAuthError`` and the provider kit's ``KitRefusal``.

The SDK's errors have their own root under this one, :class:`interlink.client.ClientError`
(:mod:`interlink.client.errors`): what an application catches, never shown to a peer.
"""

from __future__ import annotations

from enum import StrEnum


class InterlinkError(Exception):
    """Root of every error Interlink raises on purpose."""


def reason(exc: BaseException) -> str:
    """A non-empty reason for a log line: the exception's text, else its type (a timeout or a
    TLS error often has no text at all: ``TimeoutError()``, ``SSLEOFError()``)."""
    text = str(exc).strip()
    name = type(exc).__name__
    if not text:
        return name
    return text if name in text else f"{name}: {text}"


PROBLEM_TYPE_PREFIX = "urn:interlink:problem:"


class HttpProblem(InterlinkError):
    """An error an HTTP API answers with as an RFC 9457 problem (``application/problem+json``).

    Subclasses set ``status``, ``kind`` (the problem type is ``urn:interlink:problem:<kind>``) and
    ``title`` as class attributes, or per instance when one class covers several answers.
    ``detail`` is written for the person whose client shows it."""

    status: int = 400
    kind: str = "bad-request"
    title: str = "request refused"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def problem_type(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.kind

    def problem(self) -> dict[str, object]:
        """The problem document (RFC 9457 §3.1 members)."""
        return {
            "type": self.problem_type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }

    def headers(self) -> dict[str, str]:
        """Response headers that go with the problem (``WWW-Authenticate``, ``Retry-After``...)."""
        return {}


class ConfigError(InterlinkError):
    """The configuration is invalid; raised at start-up, shown to the operator."""


class StorageError(InterlinkError):
    """A repository could not complete an operation."""


class StorageBusyError(StorageError):
    """The database could not be had in time (no free connection within the pool's wait):
    nothing was done, and the request may be tried again. On the wire: the stanza's
    ``resource-constraint`` error (RFC 6120 §8.3.3.18, type ``wait``), not the stream's end."""


class AccountExistsError(StorageError):
    """An account with that JID already exists."""


class AccountNotFoundError(StorageError):
    """No account with that JID exists."""


class PhoneInUseError(StorageError):
    """Another account already has that phone number."""


class RoomExistsError(StorageError):
    """A room with that address already exists (the group service, XEP-0045)."""


class AuthenticationRefused(InterlinkError):
    """A bearer token was not accepted for login. ``temporary`` means the provider could not be
    asked (its endpoint was down or slow): the client may retry (SASL temporary-auth-failure)."""

    def __init__(self, text: str, *, temporary: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.temporary = temporary


class XmppError(InterlinkError):
    """Parent of all XMPP protocol errors."""


class StreamErrorCondition(StrEnum):
    """Stream error conditions, RFC 6120 §4.9.3."""

    BAD_FORMAT = "bad-format"
    CONFLICT = "conflict"
    CONNECTION_TIMEOUT = "connection-timeout"
    HOST_UNKNOWN = "host-unknown"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    INVALID_FROM = "invalid-from"
    INVALID_NAMESPACE = "invalid-namespace"
    INVALID_XML = "invalid-xml"
    NOT_AUTHORIZED = "not-authorized"
    NOT_WELL_FORMED = "not-well-formed"
    POLICY_VIOLATION = "policy-violation"
    REMOTE_CONNECTION_FAILED = "remote-connection-failed"
    RESET = "reset"  # §4.9.3.16: e.g. the account's password changed
    RESOURCE_CONSTRAINT = "resource-constraint"
    RESTRICTED_XML = "restricted-xml"
    SYSTEM_SHUTDOWN = "system-shutdown"
    UNDEFINED_CONDITION = "undefined-condition"
    UNSUPPORTED_ENCODING = "unsupported-encoding"
    UNSUPPORTED_STANZA_TYPE = "unsupported-stanza-type"
    UNSUPPORTED_VERSION = "unsupported-version"


class StreamError(XmppError):
    """A fatal error for the whole stream; the stream is closed after it is sent.

    ``local`` says whose fault it is: ``False`` (the default) means the peer sent something wrong.
    ``app_condition`` is an optional application-specific condition element, already serialized
    with its own namespace (RFC 6120 §4.9.4), e.g. XEP-0198's ``<handled-count-too-high/>``.
    """

    def __init__(
        self,
        condition: StreamErrorCondition,
        text: str,
        *,
        local: bool = False,
        app_condition: str = "",
    ) -> None:
        super().__init__(f"{condition}: {text}")
        self.condition = condition
        self.text = text
        self.local = local
        self.app_condition = app_condition


class StanzaErrorType(StrEnum):
    """Error types, RFC 6120 §8.3.2."""

    AUTH = "auth"
    CANCEL = "cancel"
    CONTINUE = "continue"
    MODIFY = "modify"
    WAIT = "wait"


class StanzaErrorCondition(StrEnum):
    """Stanza error conditions, RFC 6120 §8.3.3, with their usual error type."""

    BAD_REQUEST = "bad-request"
    CONFLICT = "conflict"
    FEATURE_NOT_IMPLEMENTED = "feature-not-implemented"
    FORBIDDEN = "forbidden"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    ITEM_NOT_FOUND = "item-not-found"
    JID_MALFORMED = "jid-malformed"
    NOT_ACCEPTABLE = "not-acceptable"
    NOT_ALLOWED = "not-allowed"
    NOT_AUTHORIZED = "not-authorized"
    POLICY_VIOLATION = "policy-violation"
    RECIPIENT_UNAVAILABLE = "recipient-unavailable"
    REGISTRATION_REQUIRED = "registration-required"  # XEP-0045 §7.2.6: members-only rooms
    REMOTE_SERVER_NOT_FOUND = "remote-server-not-found"
    REMOTE_SERVER_TIMEOUT = "remote-server-timeout"
    RESOURCE_CONSTRAINT = "resource-constraint"
    SERVICE_UNAVAILABLE = "service-unavailable"
    UNEXPECTED_REQUEST = "unexpected-request"

    @property
    def default_type(self) -> StanzaErrorType:
        return _DEFAULT_TYPES.get(self, StanzaErrorType.CANCEL)

    @property
    def legacy_code(self) -> int | None:
        """XEP-0086's numeric code, which older clients still read (profanity 0.13 takes a
        device-list error for "no list yet" only with ``code='404'``); None where it has none."""
        return _LEGACY_CODES.get(self)


# XEP-0086 §3 (Table 1); policy-violation came after it and has no code.
_LEGACY_CODES = {
    StanzaErrorCondition.BAD_REQUEST: 400,
    StanzaErrorCondition.CONFLICT: 409,
    StanzaErrorCondition.FEATURE_NOT_IMPLEMENTED: 501,
    StanzaErrorCondition.FORBIDDEN: 403,
    StanzaErrorCondition.INTERNAL_SERVER_ERROR: 500,
    StanzaErrorCondition.ITEM_NOT_FOUND: 404,
    StanzaErrorCondition.JID_MALFORMED: 400,
    StanzaErrorCondition.NOT_ACCEPTABLE: 406,
    StanzaErrorCondition.NOT_ALLOWED: 405,
    StanzaErrorCondition.NOT_AUTHORIZED: 401,
    StanzaErrorCondition.RECIPIENT_UNAVAILABLE: 404,
    StanzaErrorCondition.REGISTRATION_REQUIRED: 407,
    StanzaErrorCondition.REMOTE_SERVER_NOT_FOUND: 404,
    StanzaErrorCondition.REMOTE_SERVER_TIMEOUT: 504,
    StanzaErrorCondition.RESOURCE_CONSTRAINT: 500,
    StanzaErrorCondition.SERVICE_UNAVAILABLE: 503,
    StanzaErrorCondition.UNEXPECTED_REQUEST: 400,
}

_DEFAULT_TYPES = {
    StanzaErrorCondition.BAD_REQUEST: StanzaErrorType.MODIFY,
    StanzaErrorCondition.JID_MALFORMED: StanzaErrorType.MODIFY,
    StanzaErrorCondition.NOT_ACCEPTABLE: StanzaErrorType.MODIFY,
    StanzaErrorCondition.POLICY_VIOLATION: StanzaErrorType.MODIFY,
    StanzaErrorCondition.FORBIDDEN: StanzaErrorType.AUTH,
    StanzaErrorCondition.NOT_AUTHORIZED: StanzaErrorType.AUTH,
    StanzaErrorCondition.RESOURCE_CONSTRAINT: StanzaErrorType.WAIT,
    StanzaErrorCondition.RECIPIENT_UNAVAILABLE: StanzaErrorType.WAIT,
    StanzaErrorCondition.REGISTRATION_REQUIRED: StanzaErrorType.AUTH,
    StanzaErrorCondition.UNEXPECTED_REQUEST: StanzaErrorType.WAIT,
}


class StanzaError(XmppError):
    """An error answering one stanza; the stream stays open."""

    def __init__(
        self,
        condition: StanzaErrorCondition,
        text: str = "",
        *,
        type_: StanzaErrorType | None = None,
        app_condition: str | None = None,
    ) -> None:
        super().__init__(f"{condition}: {text}" if text else str(condition))
        self.condition = condition
        self.text = text
        self.type = type_ or condition.default_type
        # An application-specific condition element in Clark notation (RFC 6120 §8.3.2), e.g.
        # "{http://jabber.org/protocol/pubsub#errors}precondition-not-met".
        self.app_condition = app_condition


class SaslCondition(StrEnum):
    """SASL failure conditions, RFC 6120 §6.5."""

    ABORTED = "aborted"
    ACCOUNT_DISABLED = "account-disabled"
    CREDENTIALS_EXPIRED = "credentials-expired"
    ENCRYPTION_REQUIRED = "encryption-required"
    INCORRECT_ENCODING = "incorrect-encoding"
    INVALID_AUTHZID = "invalid-authzid"
    INVALID_MECHANISM = "invalid-mechanism"
    MALFORMED_REQUEST = "malformed-request"
    MECHANISM_TOO_WEAK = "mechanism-too-weak"
    NOT_AUTHORIZED = "not-authorized"
    TEMPORARY_AUTH_FAILURE = "temporary-auth-failure"


class SaslFailure(XmppError):
    """A failed SASL exchange; the client may try again (up to a configured number of times)."""

    def __init__(self, condition: SaslCondition, text: str = "") -> None:
        super().__init__(f"{condition}: {text}" if text else str(condition))
        self.condition = condition
        self.text = text
