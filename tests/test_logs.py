"""Log lines people can read: the text format carries the JSON format's fields, every failure
has a reason, lifecycle events are logged once, and no phone number reaches INFO."""

from __future__ import annotations

import io
import json
import logging
import ssl
import time
from dataclasses import replace

import pytest

from interlink.config import Settings
from interlink.errors import reason
from interlink.hub.addressing import Addressing, ProviderDirectory
from interlink.hub.session import SessionRegistry
from interlink.interop.operator import OperatorState
from interlink.logs import JsonFormatter, TextFormatter, setup_logging
from interlink.settings_map import log_redactor
from interlink.storage.providers import Provider, ProviderStatus


def record(msg: str, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("interlink", level, __file__, 1, msg, None, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_the_text_format_carries_the_fields_of_the_json_format() -> None:
    rec = record("listening", transport="c2s-starttls", host="127.0.0.1", port=5222)
    line = TextFormatter().format(rec)
    assert line.endswith(
        "INFO interlink: listening transport=c2s-starttls host=127.0.0.1 port=5222"
    )
    entry = json.loads(JsonFormatter().format(rec))
    assert (entry["transport"], entry["port"]) == ("c2s-starttls", 5222)


def test_text_values_with_spaces_quotes_or_nothing_are_quoted() -> None:
    rec = record("stream error", text='bad "xml" here', condition="", peer="a=b")
    line = TextFormatter().format(rec)
    assert 'text="bad \\"xml\\" here"' in line
    assert 'condition=""' in line
    assert 'peer="a=b"' in line


def test_a_traceback_stays_below_the_line_with_its_fields() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    rec.provider = "chat"
    first, *rest = TextFormatter().format(rec).splitlines()
    assert first.endswith("failed provider=chat")
    assert "ValueError: boom" in rest[-1]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), "TimeoutError"),
        (ssl.SSLEOFError(), "SSLEOFError"),
        (ConnectionResetError(104, "Connection reset by peer"), "ConnectionResetError: "),
        (ValueError("  "), "ValueError"),
        (OSError("OSError already named"), "OSError already named"),
    ],
)
def test_every_failure_has_a_non_empty_reason(exc: BaseException, expected: str) -> None:
    text = reason(exc)
    assert text.strip()
    assert text.startswith(expected)


def test_the_hubs_logs_carry_no_phone_number() -> None:
    """``setup_logging`` puts the hub's ``[log_privacy]`` redactor on its handler (one
    redaction, in :mod:`interlink.log_privacy`)."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        setup_logging("INFO", "text", log_redactor(Settings()))
        handler = root.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        logging.getLogger("interlink.test-logs").info(
            "session bound %s", "4915112345678@wa.test/a", extra={"jid": "4915112345678@wa.test"}
        )
    finally:
        root.handlers[:], root.level = saved, level
    assert "4915112345678" not in stream.getvalue()
    assert "@wa.test" in stream.getvalue()


CHAT = Provider(
    "chat",
    "Chat",
    "https://chat.example",
    jwks_url="https://chat.example/jwks",
    services=("wa.test",),
    created_at=time.time(),
)


def test_provider_lifecycle_is_logged_once_at_info(caplog: pytest.LogCaptureFixture) -> None:
    state = OperatorState(Addressing(("wa.test",), ProviderDirectory()), SessionRegistry())
    caplog.set_level(logging.INFO, "interlink.operator")
    state.provider_changed(CHAT)
    approved = replace(CHAT, status=ProviderStatus.APPROVED)
    state.provider_changed(approved)
    state.provider_changed(approved)  # the same change, again through the change feed
    state.provider_changed(replace(approved, display_name="Chat!"))  # no new status
    state.provider_changed(replace(CHAT, status=ProviderStatus.SUSPENDED))
    state.provider_removed("chat")
    events = [(r.getMessage(), r.levelno) for r in caplog.records if r.msg.startswith("provider")]
    assert events == [
        ("provider onboarded", logging.INFO),
        ("provider approved", logging.INFO),
        ("provider suspended", logging.INFO),
        ("provider sessions ended", logging.INFO),
        ("provider removed", logging.INFO),
    ]


async def test_loading_the_state_at_start_logs_no_lifecycle_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = OperatorState(Addressing(("wa.test",), ProviderDirectory()), SessionRegistry())
    caplog.set_level(logging.INFO, "interlink.operator")
    await state.load([CHAT])
    assert caplog.records == []
