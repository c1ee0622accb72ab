"""The SDK and the chat client stand on their own: they share protocol code with the hub only
through ``interlink.xmpp`` (the wire formats of ``xmpp/ext/``, the address rule) and
``interlink.errors``, never by importing the hub, the interop control plane, media, network or
storage code (docs/architecture.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import interlink

ALLOWED = {"client", "chat", "xmpp", "errors"}
PACKAGE = Path(interlink.__file__).parent


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_sdk_and_chat_import_only_shared_packages() -> None:
    wrong = []
    for package in ("client", "chat"):
        for path in sorted((PACKAGE / package).glob("*.py")):
            for module in sorted(_imports(path)):
                parts = module.split(".")
                if parts[0] == "interlink" and len(parts) > 1 and parts[1] not in ALLOWED:
                    wrong.append(f"{path.relative_to(PACKAGE)}: {module}")
    assert wrong == []


def test_importing_the_sdk_and_chat_loads_no_hub_code() -> None:
    code = (
        "import sys, interlink.client, interlink.chat.app, interlink.chat.session\n"
        "print(sorted(m for m in sys.modules if m.startswith('interlink.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = {name.split(".")[1] for name in ast.literal_eval(out)}
    assert loaded <= ALLOWED


def test_the_sdk_s_own_limits_are_checked_when_the_client_is_made(tmp_path: Path) -> None:
    import pytest

    from interlink.client import Backoff, InterlinkClient

    with pytest.raises(ValueError, match="device_list_max_age"):
        InterlinkClient("a@h.test/x", "pw", data_dir=tmp_path, device_list_max_age=0)
    InterlinkClient("a@h.test/x", "pw", data_dir=tmp_path, device_list_max_age=0.001)
    with pytest.raises(ValueError, match="backoff"):
        InterlinkClient("a@h.test/x", "pw", data_dir=tmp_path, backoff=Backoff(max_attempts=0))
