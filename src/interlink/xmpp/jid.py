"""JIDs, RFC 7622.

Localparts and domainparts are compared case-insensitively after Unicode normalisation; the
resourcepart is case-sensitive. We apply the essential PRECIS rules without a full PRECIS library:
NFC for all parts, case folding for local and domain parts, the forbidden localpart characters of
RFC 7622 §3.3.1, no control or whitespace characters, and each part at most 1023 octets.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

_LOCAL_FORBIDDEN = frozenset("\"&'/:<>@")
_MAX_PART = 1023


class InvalidJID(ValueError):
    """The string is not a valid JID; maps to the ``jid-malformed`` stanza error."""


def _check_chars(part: str, what: str) -> None:
    for ch in part:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs", "Co", "Cn") or (cat.startswith("Z") and what != "resourcepart"):
            raise InvalidJID(f"{what} contains a forbidden character U+{ord(ch):04X}")
        if cat == "Zl" or cat == "Zp" or ch in "\t\n\r":
            raise InvalidJID(f"{what} contains a forbidden character U+{ord(ch):04X}")


def _prep_local(local: str) -> str:
    local = unicodedata.normalize("NFC", local).casefold()
    if not local:
        raise InvalidJID("empty localpart")
    if any(ch in _LOCAL_FORBIDDEN for ch in local):
        raise InvalidJID("localpart contains a forbidden character")
    _check_chars(local, "localpart")
    if len(local.encode()) > _MAX_PART:
        raise InvalidJID("localpart longer than 1023 octets")
    return local


def _prep_domain(domain: str) -> str:
    domain = unicodedata.normalize("NFC", domain).casefold().rstrip(".")
    if not domain:
        raise InvalidJID("empty domainpart")
    if domain.startswith("[") and domain.endswith("]"):
        return domain  # IPv6 literal
    for label in domain.split("."):
        try:
            encoded = label.encode("idna" if not label.isascii() else "ascii")
        except UnicodeError:  # IDNA refuses the label (a control character, say)
            raise InvalidJID("domainpart has a label IDNA cannot encode") from None
        if not label or len(encoded) > 63:
            raise InvalidJID("domainpart has an empty or too long label")
        if any(ch in _LOCAL_FORBIDDEN or ch in " ,;[]\\" for ch in label):
            raise InvalidJID("domainpart contains a forbidden character")
    _check_chars(domain, "domainpart")
    if len(domain.encode()) > _MAX_PART:
        raise InvalidJID("domainpart longer than 1023 octets")
    return domain


def _prep_resource(resource: str) -> str:
    resource = unicodedata.normalize("NFC", resource)
    if not resource:
        raise InvalidJID("empty resourcepart")
    _check_chars(resource, "resourcepart")
    if len(resource.encode()) > _MAX_PART:
        raise InvalidJID("resourcepart longer than 1023 octets")
    return resource


@dataclass(frozen=True, slots=True, eq=False)
class JID:
    """A parsed, normalised JID. ``str(jid)`` is its canonical form; equality and hashing use
    it (JIDs are dictionary keys on every routed stanza's path)."""

    local: str | None
    domain: str
    resource: str | None
    _text: str = field(init=False, repr=False, compare=False, hash=False)
    _bare: JID | None = field(init=False, repr=False, compare=False, hash=False, default=None)

    def __post_init__(self) -> None:
        text = self.domain if self.local is None else f"{self.local}@{self.domain}"
        if self.resource is not None:
            text = f"{text}/{self.resource}"
        object.__setattr__(self, "_text", text)  # str() is on every routed stanza's path

    @staticmethod
    def parse(text: str) -> JID:
        """Parse and normalise ``text``; raises :class:`InvalidJID`."""
        # Only short strings are cached, so a peer cannot fill memory with long distinct JIDs.
        return _parse_cached(text) if len(text) <= _CACHED_LENGTH else _parse(text)

    @staticmethod
    def make(local: str | None, domain: str, resource: str | None = None) -> JID:
        return JID(
            _prep_local(local) if local is not None else None,
            _prep_domain(domain),
            _prep_resource(resource) if resource is not None else None,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JID) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)

    @property
    def bare(self) -> JID:
        if self.resource is None:
            return self
        bare = self._bare
        if bare is None:
            bare = JID(self.local, self.domain, None)
            object.__setattr__(self, "_bare", bare)
        return bare

    @property
    def is_bare(self) -> bool:
        return self.resource is None

    def with_resource(self, resource: str) -> JID:
        return JID(self.local, self.domain, _prep_resource(resource))

    def __str__(self) -> str:
        return self._text


_CACHED_LENGTH = 256


def _parse(text: str) -> JID:
    if len(text) > 3 * _MAX_PART + 2:
        raise InvalidJID("JID too long")
    slash = text.find("/")
    if slash >= 0:
        bare, resource = text[:slash], text[slash + 1 :]
        if not resource:
            raise InvalidJID("empty resourcepart")
    else:
        bare, resource = text, None
    at = bare.find("@")
    if at >= 0:
        local, domain = bare[:at], bare[at + 1 :]
        if not local:
            raise InvalidJID("empty localpart")
    else:
        local, domain = None, bare
    return JID.make(local, domain, resource)


_parse_cached = lru_cache(maxsize=16384)(_parse)
