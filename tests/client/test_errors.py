"""The SDK's exceptions have one root, exported from ``interlink.client`` (client/errors.py)."""

from __future__ import annotations

import interlink.client as sdk
from interlink.chat.session import LoginError
from interlink.errors import InterlinkError


def test_every_sdk_error_has_the_one_root() -> None:
    exported = [getattr(sdk, name) for name in sdk.__all__]
    errors = [e for e in exported if isinstance(e, type) and issubclass(e, BaseException)]
    assert {e.__name__ for e in errors} == {
        "ClientError",
        "ConsentError",
        "EnlistmentFailed",
        "MalformedEncrypted",
        "MediaError",
        "NotConnected",
        "OutboxFull",
        "SceError",
    }
    assert all(issubclass(e, sdk.ClientError) for e in [*errors, LoginError])
    assert issubclass(sdk.ClientError, InterlinkError)
    # The parse errors stay ValueErrors for code that caught them as such.
    assert issubclass(sdk.SceError, ValueError)
    assert issubclass(sdk.MalformedEncrypted, ValueError)
