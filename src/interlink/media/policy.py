"""What may be uploaded: filenames and content types. Pure functions, no I/O.

Content types. Files from Interlink's SDK are ciphertext sent as ``application/octet-stream``, and
every response carries ``Content-Disposition: attachment`` and ``X-Content-Type-Options: nosniff``,
so no uploaded file should ever be rendered by a browser. As a second line, the default policy
admits any well-formed type except those a browser would run or render as a document if it ever
did display one inline: HTML, XHTML, SVG, XML (``*/xml`` and any ``+xml`` suffix, which XSLT can
turn into a document), JavaScript and ECMAScript, and ``multipart/x-mixed-replace``. An operator
can narrow it to an allowlist (``type/subtype`` or ``type/*``) and extend the denylist. Types are
compared and stored by their essence (RFC 9110 §8.3.1: lower-case ``type/subtype``, parameters
dropped); a missing type means ``application/octet-stream``.

Filenames. The name only labels the URL and the download; it must be one non-empty path segment
without control characters, at most ``max_filename_bytes`` of UTF-8.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from interlink.media.errors import BadSlotRequest, ContentTypeRefused
from interlink.media.model import DEFAULT_CONTENT_TYPE

_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_ESSENCE = re.compile(rf"^({_TCHARS})/({_TCHARS})$")

# Bidirectional overrides make "gpj.exe" display as "exe.jpg".
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/xsl",
        "application/xslt+xml",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "text/ecmascript",
        "multipart/x-mixed-replace",
    }
)


def content_type_essence(value: str | None) -> str:
    """``type/subtype`` of a Content-Type value, lower-cased; raises
    :class:`ContentTypeRefused` when it is malformed."""
    if value is None or not value.strip():
        return DEFAULT_CONTENT_TYPE
    essence = value.split(";", 1)[0].strip().lower()
    if len(value) > 255 or not _ESSENCE.match(essence):
        raise ContentTypeRefused(f"'{value[:64]}' is not a media type (type/subtype)")
    return essence


def _matches(essence: str, patterns: frozenset[str]) -> bool:
    return essence in patterns or essence.split("/", 1)[0] + "/*" in patterns


@dataclass(frozen=True, slots=True)
class ContentTypePolicy:
    allow: frozenset[str] | None = None  # None: any type not denied
    deny: frozenset[str] = field(default=ACTIVE_TYPES)
    deny_xml: bool = True  # also refuse every ``+xml`` suffix and ``*/xml``

    def check(self, value: str | None) -> str:
        """The essence of an acceptable ``value``; raises :class:`ContentTypeRefused`."""
        essence = content_type_essence(value)
        subtype = essence.split("/", 1)[1]
        if _matches(essence, self.deny) or (
            self.deny_xml and (subtype == "xml" or subtype.endswith("+xml"))
        ):
            raise ContentTypeRefused(
                f"content type {essence} is not accepted here; upload it as {DEFAULT_CONTENT_TYPE}"
            )
        if self.allow is not None and not _matches(essence, self.allow):
            raise ContentTypeRefused(
                f"content type {essence} is not accepted here; "
                f"accepted: {', '.join(sorted(self.allow))}"
            )
        return essence


def check_filename(filename: str, max_bytes: int) -> str:
    """``filename`` if it is one acceptable path segment; raises :class:`BadSlotRequest`."""
    if not filename or filename in (".", ".."):
        raise BadSlotRequest("a filename is required")
    if len(filename.encode("utf-8", "surrogatepass")) > max_bytes:
        raise BadSlotRequest(f"the filename is longer than {max_bytes} bytes")
    if "/" in filename or "\\" in filename:
        raise BadSlotRequest("the filename must not contain '/' or '\\'")
    if any(unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI_CONTROLS for c in filename):
        raise BadSlotRequest("the filename must not contain control characters")
    return filename
