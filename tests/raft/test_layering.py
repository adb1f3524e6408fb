"""The core is pure: it imports only the standard library and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import uhaha.raft

CORE = Path(uhaha.raft.__file__).parent
FORBIDDEN = {"asyncio", "socket", "time", "threading", "os", "selectors", "ssl", "subprocess"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def test_core_imports_only_the_standard_library() -> None:
    files = sorted(CORE.glob("*.py"))
    assert len(files) >= 8
    bad = []
    for path in files:
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top == "__future__":
                continue
            if top not in sys.stdlib_module_names or top in FORBIDDEN:
                bad.append(f"{path.name}:{line} imports {module}")
    assert not bad, "the Raft core must stay pure:\n" + "\n".join(bad)


def test_the_layering_check_can_fail(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import asyncio\nfrom httpx import AsyncClient\nfrom .log import RaftLog\n")
    assert [m for _, m in _imports(sample)] == ["asyncio", "httpx"]
