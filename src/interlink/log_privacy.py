"""What the hub's logs keep about people: pseudonyms and truncated addresses, never raw phone
numbers, JIDs or IP addresses.

Theory of operation. A :class:`LogRedactor` is a :class:`logging.Filter` put on every log handler
(the CLI installs it on the handlers ``setup_logging`` made; tests put it on theirs). It rewrites
each record's message and every field before any formatter sees them
(:meth:`LogRedactor.scrub_value`: strings, integers that read as phone numbers, containers
recursively, any other object by its ``str()``):

* a JID (``local@domain/resource``) becomes ``~<pseudonym>@domain``: the service or provider
  domain stays (operators need it), the user part becomes a pseudonym and the resource is dropped;
* an IPv4 address becomes its /24 network plus a pseudonym (``192.0.2.0/24~3f9a0c1d``), an IPv6
  address its /48 plus a pseudonym: abuse handling can still tell a source's requests apart and
  see which network floods, nobody can read the address;
* a phone number (7 to 15 digits, ``+`` optional) becomes ``#<pseudonym>``.

Fields named in ``RedactionSettings.own_fields`` are left alone: they carry what the hub itself was
configured with (``host`` of the "listening" lines is its own bind address), never a person's.

A traceback is formatted, scrubbed and kept as the record's ``exc`` field (the JSON formatter
writes it under that name), since exception messages name JIDs as freely as log calls do.

A pseudonym is an HMAC-SHA-256 under a key held only in memory (:class:`Pseudonyms`) and rotated
every ``retention`` seconds: within one period the same person has the same pseudonym (so an
incident can be followed through the logs), across periods and restarts they cannot be linked,
and no key that could re-identify anyone is ever written down. Time is passed in (``clock``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

_JID = re.compile(
    r"(?<![\w.+~-])([^\s@\"'<>/:,;=()\[\]{}~]+)@([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
    r"(/[^\s\"',;)\]}]*)?"
)
_IPV4 = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.]|/\d)")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])([0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![0-9A-Fa-f:])")
_MAX_DEPTH = 8  # nested containers deeper than this are scrubbed as one string
_PHONE = re.compile(r"(?<![\w.~#/])(\+?\d{7,15})(?![\w.])")


@dataclass(frozen=True, slots=True)
class RedactionSettings:
    """``retention``: seconds a pseudonym stays linkable; prefixes: what is kept of addresses;
    ``own_fields``: record fields that hold the hub's own configuration (kept as they are)."""

    retention: float = 86_400.0
    ipv4_prefix: int = 24
    ipv6_prefix: int = 48
    own_fields: frozenset[str] = frozenset({"host"})

    def __post_init__(self) -> None:
        if self.retention <= 0:
            raise ValueError("retention must be positive")
        if not 0 <= self.ipv4_prefix <= 32 or not 0 <= self.ipv6_prefix <= 128:
            raise ValueError("address prefixes: 0-32 for IPv4, 0-128 for IPv6")


class Pseudonyms:
    """Keyed hashes, linkable within one retention period; the key of a period that ended is
    forgotten. ``clock`` gives the wall-clock time."""

    def __init__(self, retention: float, clock: Callable[[], float] = time.time) -> None:
        self._retention = retention
        self._clock = clock
        self._epoch = -1
        self._key = b""

    def of(self, kind: str, value: str) -> str:
        epoch = int(self._clock() // self._retention)
        if epoch != self._epoch:
            self._epoch, self._key = epoch, secrets.token_bytes(32)  # the old key is gone
        digest = hmac.new(self._key, f"{kind}\0{value}".encode(), hashlib.sha256)
        return digest.hexdigest()[:8]


class LogRedactor(logging.Filter):
    """Rewrites records in place (see the module docstring); never drops one."""

    def __init__(self, settings: RedactionSettings, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.settings = settings
        self.pseudonyms = Pseudonyms(settings.retention, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.scrub(record.getMessage())
        record.args = None
        if record.exc_info:  # a traceback's messages may name anyone: kept, scrubbed, as "exc"
            formatter = logging.Formatter()
            record.exc = self.scrub(formatter.formatException(record.exc_info))
            record.exc_info, record.exc_text = None, None
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD or key.startswith("_") or key in self.settings.own_fields:
                continue
            setattr(record, key, self.scrub_value(value))
        return True

    def scrub_value(self, value: object, depth: int = 0) -> object:
        """A field's value with everything that may name a person scrubbed: strings; integers
        that read as phone numbers (others stay integers); containers, recursively (a list,
        tuple or set becomes a list, a dict keeps its shape with keys scrubbed too); any other
        object (a JID, an address tuple's parts, an exception) by its ``str()``. Booleans,
        floats and ``None`` cannot name anyone and are kept."""
        if value is None or isinstance(value, bool | float):
            return value
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, int):
            text = str(value)
            scrubbed = self.scrub(text)
            return value if scrubbed == text else scrubbed
        if depth < _MAX_DEPTH:
            if isinstance(value, dict):
                return {
                    self.scrub(str(k)): self.scrub_value(v, depth + 1) for k, v in value.items()
                }
            if isinstance(value, list | tuple | set | frozenset):
                return [self.scrub_value(v, depth + 1) for v in value]
        return self.scrub(str(value))

    def scrub(self, text: str) -> str:
        """``text`` with every JID, IP address and phone number replaced."""
        if not any(c in text for c in "@.:") and not any(c.isdigit() for c in text):
            return text
        text = _JID.sub(self._jid, text)
        text = _IPV4.sub(self._ipv4, text)
        text = _IPV6.sub(self._ipv6, text)
        return _PHONE.sub(lambda m: "#" + self.pseudonyms.of("phone", m[1].lstrip("+")), text)

    def _jid(self, match: re.Match[str]) -> str:
        local, domain = match[1], match[2].lower()
        return f"~{self.pseudonyms.of('jid', f'{local}@{domain}'.lower())}@{domain}"

    def _ipv4(self, match: re.Match[str]) -> str:
        try:
            ip = ipaddress.IPv4Address(match[1])
        except ValueError:
            return match[0]
        net = ipaddress.IPv4Network((ip, self.settings.ipv4_prefix), strict=False)
        return f"{net}~{self.pseudonyms.of('ip', str(ip))}"

    def _ipv6(self, match: re.Match[str]) -> str:
        try:
            ip = ipaddress.IPv6Address(match[1])
        except ValueError:
            return match[0]
        net = ipaddress.IPv6Network((ip, self.settings.ipv6_prefix), strict=False)
        return f"{net}~{self.pseudonyms.of('ip', str(ip))}"


def install(redactor: LogRedactor, handlers: Iterable[logging.Handler]) -> None:
    """Put ``redactor`` on each handler (once)."""
    for handler in handlers:
        if redactor not in handler.filters:
            handler.addFilter(redactor)
