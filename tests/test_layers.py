"""The dependency rule of DESIGN.md, checked on the source:

http and tui call services; services call runtime and store; core depends on nothing
of ours and on no framework. Like Harlequin keeping its core free of Textual.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "appliance"

# layer -> modules of ours (and third-party roots) it must not import
FORBIDDEN = {
    "core": {
        "appliance.store",
        "appliance.runtime",
        "appliance.services",
        "appliance.http",
        "appliance.tui",
        "appliance.app",
        "appliance.cli",
        "docker",
        "aiosqlite",
        "sqlite3",
        "litestar",
        "textual",
    },
    "store": {
        "appliance.runtime",
        "appliance.services",
        "appliance.http",
        "appliance.tui",
        "appliance.app",
        "appliance.cli",
        "docker",
        "litestar",
        "textual",
    },
    "runtime": {
        "appliance.store",
        "appliance.services",
        "appliance.http",
        "appliance.tui",
        "appliance.app",
        "appliance.cli",
        "aiosqlite",
        "sqlite3",
        "litestar",
        "textual",
    },
    "services": {"appliance.http", "appliance.tui", "appliance.app", "appliance.cli", "litestar", "textual"},
    "http": {
        "appliance.store",
        "appliance.runtime",
        "appliance.tui",
        "appliance.cli",
        "docker",
        "aiosqlite",
        "sqlite3",
        "textual",
    },
    "tui": {"appliance.store", "appliance.runtime", "appliance.http", "docker", "aiosqlite", "sqlite3", "litestar"},
    # The client ships to team scripts: it speaks HTTP only, knows nothing of the server.
    "client": {
        "appliance.core",
        "appliance.store",
        "appliance.runtime",
        "appliance.services",
        "appliance.http",
        "appliance.tui",
        "appliance.app",
        "appliance.cli",
        "docker",
        "aiosqlite",
        "sqlite3",
        "litestar",
        "textual",
    },
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(layer: str, root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted((root / layer).rglob("*.py")):
        for name in imports_of(path):
            for banned in FORBIDDEN[layer]:
                if name == banned or name.startswith(banned + "."):
                    found.append(f"{path.relative_to(root.parent)} imports {name}")
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(layer):
    assert violations(layer) == []


def test_the_checker_sees_a_violation(tmp_path):
    """Guard against a checker that passes because it reads nothing."""
    fake = tmp_path / "appliance" / "core"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("import docker\nfrom appliance.store.database import Database\n")
    assert len(violations("core", tmp_path / "appliance")) == 2


def test_no_module_grows_past_a_single_job():
    """No 3,000-line modules: anything past 600 lines should be split by job."""
    big = [
        f"{p.relative_to(PACKAGE.parent)}: {n}"
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600
    ]
    assert big == []
