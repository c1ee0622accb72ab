"""Storage sits below the hub, interop and media: its modules import only storage, xmpp and
errors of ours, so records and protocols cannot drift back into the domain packages."""

from __future__ import annotations

import ast
from pathlib import Path

import interlink.storage

ALLOWED = ("interlink.storage", "interlink.xmpp", "interlink.errors")


def _our_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.update(n for n in names if n == "interlink" or n.startswith("interlink."))
    return found


def test_storage_imports_only_storage_xmpp_and_errors() -> None:
    root = Path(interlink.storage.__file__).parent
    offending = {
        f"{path.relative_to(root)}: {name}"
        for path in sorted(root.rglob("*.py"))
        for name in _our_imports(path)
        if not any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED)
    }
    assert offending == set()
