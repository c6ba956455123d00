"""The dependency rule of docs/architecture.md ("Layers"), checked on the source of every
module of the package:

http and tui call services; services call runtime and store; core depends on nothing
of ours and on no framework (like Harlequin keeping its core free of Textual). The
docker SDK (docker, and requests beneath it) stays inside runtime. Imports inside
functions count, and relative imports are resolved.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import msgspec
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "appliance"

# The parts of the package: its subpackages and its top-level modules ("appliance" is
# the package's own __init__, which holds the version).
LAYERS = (
    "core",
    "store",
    "runtime",
    "services",
    "http",
    "tui",
    "client",
    "cli",
    "app",
    "cluster",
    "config",
    "logging_setup",
    "__main__",
    "appliance",
)
DOCKER_SDK = frozenset({"docker", "requests"})
DATABASE = frozenset({"aiosqlite", "sqlite3"})
STDLIB = frozenset(sys.stdlib_module_names)


def ours(*layers: str) -> frozenset[str]:
    return frozenset(f"appliance.{layer}" for layer in layers)


class Rule(msgspec.Struct, frozen=True):
    # Parts of ours (appliance.<layer>) and third-party roots it must not import.
    forbidden: frozenset[str] = frozenset()
    # When set, all it may import besides the standard library and its own layer.
    only: frozenset[str] | None = None


RULES = {
    # Of ours nothing; of the rest only msgspec: no framework, no engine, no database.
    "core": Rule(DATABASE, only=frozenset({"msgspec"})),
    "store": Rule(ours("runtime", "services", "http", "tui", "app", "cli") | DOCKER_SDK | {"litestar", "textual"}),
    "runtime": Rule(ours("store", "services", "http", "tui", "app", "cli") | DATABASE | {"litestar", "textual"}),
    "services": Rule(ours("http", "tui", "app", "cli") | DOCKER_SDK | {"litestar", "textual"}),
    "http": Rule(ours("store", "runtime", "tui", "cli") | DOCKER_SDK | DATABASE | {"textual"}),
    # The TUI talks to the appliance only through appliance.client (and core's plain types).
    "tui": Rule(ours("services", "store", "runtime", "app", "http", "cli") | DOCKER_SDK | DATABASE | {"litestar"}),
    # The client ships to team scripts: it speaks HTTP only, knows nothing of the server.
    "client": Rule(only=frozenset({"httpx", "websockets"})),
    # The CLI reaches store and runtime through the composition root (app) and services.
    "cli": Rule(ours("store", "runtime") | DOCKER_SDK | DATABASE),
    # The composition root builds everything but what is built on it.
    "app": Rule(ours("tui", "cli") | DOCKER_SDK),
    # The Python API for users' own Ray jobs: it calls services, as http does.
    "cluster": Rule(ours("store", "runtime", "http", "tui", "app", "cli") | DOCKER_SDK | DATABASE | {"litestar"}),
    "config": Rule(only=ours("core") | {"msgspec"}),
    "logging_setup": Rule(only=ours("core")),
    "__main__": Rule(only=ours("cli")),
    "appliance": Rule(only=frozenset()),
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    """`appliance.services.x` -> services, `appliance.app` -> app; `appliance` and what it
    holds itself (`appliance.__version__`) -> appliance."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "appliance"


def imports_of(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every module `path` imports, relative imports made absolute; for `from X import y`
    both X and X.y (y may be a module)."""
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def violation(layer: str, name: str) -> bool:
    rule = RULES[layer]
    root = name.split(".")[0]
    if root == "__future__":
        return False
    if root == "appliance":
        target = layer_of(name)
        if target == layer:
            return False
        root = f"appliance.{target}"
    elif rule.only is not None and root in STDLIB:
        return root in rule.forbidden
    return root not in rule.only if rule.only is not None else root in rule.forbidden


def modules(root: Path = PACKAGE) -> list[Path]:
    return sorted(root.rglob("*.py"))


def write(root: Path, relative: str, text: str) -> None:
    path = root / "appliance" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def violations(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in modules(root):
        layer = layer_of(module_name(path, root))
        for name in sorted(imports_of(path, root)):
            if violation(layer, name):
                found.append(f"{path.relative_to(root.parent)} ({layer}) imports {name}")
    return found


def unclassified(root: Path = PACKAGE) -> list[str]:
    """Modules in no layer: a new subpackage or top-level module needs its rule."""
    return [
        str(p.relative_to(root.parent))
        for p in modules(root)
        if (name := module_name(p, root)) != "appliance" and name.split(".")[1] not in LAYERS
    ]


def test_every_module_belongs_to_a_layer_with_a_rule(tmp_path):
    assert set(RULES) == set(LAYERS)
    assert unclassified() == [], "a new part of the package needs its rule in RULES"
    write(tmp_path, "plugins/extra.py", "")
    write(tmp_path, "extra.py", "")
    write(tmp_path, "core/clock.py", "")
    assert unclassified(tmp_path / "appliance") == ["appliance/extra.py", "appliance/plugins/extra.py"]


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_only_what_it_may(layer):
    assert [v for v in violations() if f"({layer})" in v] == []


def test_the_checker_sees_each_kind_of_violation(tmp_path):
    """Guard against a checker that passes because it reads nothing."""
    write(tmp_path, "core/bad.py", "import docker\nfrom appliance.store.database import Database\n")
    # Relative imports, of a module and from a package, also inside a function.
    write(tmp_path, "tui/screens/bad.py", "from ...services import evaluations\n\ndef f():\n    from ... import app\n")
    write(tmp_path, "tui/__init__.py", "from ..runtime.engine import DockerEngine\n")
    # Top-level modules are checked too.
    write(tmp_path, "config.py", "from appliance.services.access.auth import AuthService\n")
    write(tmp_path, "__main__.py", "import litestar\nfrom appliance.cli import main\n")
    write(tmp_path, "client/bad.py", "import msgspec\nfrom appliance.core.clock import utc_now\nimport httpx\n")
    write(tmp_path, "services/bad.py", "import requests.exceptions\nfrom appliance.runtime import engine\n")
    write(tmp_path, "cli/bad.py", "from appliance.app import Appliance\nfrom appliance.store import database\n")
    found = violations(tmp_path / "appliance")
    expected = [
        "appliance/__main__.py (__main__) imports litestar",
        "appliance/cli/bad.py (cli) imports appliance.store",
        "appliance/cli/bad.py (cli) imports appliance.store.database",
        "appliance/client/bad.py (client) imports appliance.core.clock",
        "appliance/client/bad.py (client) imports appliance.core.clock.utc_now",
        "appliance/client/bad.py (client) imports msgspec",
        "appliance/config.py (config) imports appliance.services.access.auth",
        "appliance/config.py (config) imports appliance.services.access.auth.AuthService",
        "appliance/core/bad.py (core) imports appliance.store.database",
        "appliance/core/bad.py (core) imports appliance.store.database.Database",
        "appliance/core/bad.py (core) imports docker",
        "appliance/services/bad.py (services) imports requests.exceptions",
        "appliance/tui/__init__.py (tui) imports appliance.runtime.engine",
        "appliance/tui/__init__.py (tui) imports appliance.runtime.engine.DockerEngine",
        "appliance/tui/screens/bad.py (tui) imports appliance.app",
        "appliance/tui/screens/bad.py (tui) imports appliance.services",
        "appliance/tui/screens/bad.py (tui) imports appliance.services.evaluations",
    ]
    assert found == expected


def test_relative_imports_resolve_against_the_module_or_package(tmp_path):
    write(tmp_path, "services/evaluation/queue.py", "from . import evaluations\nfrom ..access.auth import x\n")
    write(tmp_path, "services/evaluation/__init__.py", "from .queue import EvaluationQueue\n")
    root = tmp_path / "appliance"
    assert imports_of(root / "services/evaluation/queue.py", root) == {
        "appliance.services.evaluation",
        "appliance.services.evaluation.evaluations",
        "appliance.services.access.auth",
        "appliance.services.access.auth.x",
    }
    assert imports_of(root / "services/evaluation/__init__.py", root) == {
        "appliance.services.evaluation.queue",
        "appliance.services.evaluation.queue.EvaluationQueue",
    }


def test_no_module_grows_past_a_single_job():
    """No 3,000-line modules: anything past 600 lines should be split by job."""
    big = [
        f"{p.relative_to(PACKAGE.parent)}: {n}"
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600
    ]
    assert big == []
