"""Write packaging/requirements.lock: the exact versions the binary is built from.

    .venv/bin/python packaging/write_lock.py            write the lock
    BUILD_VENV/bin/python packaging/write_lock.py --check   do installed versions meet pyproject?

They are the versions installed in the dev venv (`pip freeze --all`, where the tests ran)
restricted to what the appliance and its `build` extra need: the appliance itself and
the test-only packages (pytest and friends) stay out. packaging/build.sh installs from
this file, so the binary is built from what was tested. Run it again after changing the
dependencies in pyproject.toml or upgrading the venv.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

LOCK = Path(__file__).resolve().parent / "requirements.lock"
PYPROJECT = LOCK.parent.parent / "pyproject.toml"
EXTRAS = {"build"}
HEADER = """\
# The versions packaging/build.sh builds the binary from: the dev venv's, restricted to
# the appliance's dependencies and its `build` extra (packaging/write_lock.py wrote it).
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def project_requirements() -> list[str]:
    """The appliance's own requirements and its EXTRAS', read from pyproject.toml (the
    installed metadata of an editable install may predate the latest edit)."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    return [*project["dependencies"], *(line for extra in sorted(EXTRAS) for line in optional[extra])]


def needed() -> set[str]:
    """The distributions the appliance and its EXTRAS pull in, following markers for this Python."""
    found: set[str] = set()
    pending = [(Requirement(line).name, set(Requirement(line).extras)) for line in project_requirements()]
    while pending:
        name, wanted_extras = pending.pop()
        if canonical(name) in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            sys.exit(
                f"write_lock: {name} is needed but not installed in this venv; install "
                "the appliance with its extras first: pip install -e '.[test,build]'"
            )
        found.add(canonical(name))
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in wanted_extras | {""}):
                continue
            pending.append((req.name, set(req.extras)))
    return found


def check() -> int:
    """Exit status 0 when this environment meets the appliance's requirements and its
    EXTRAS' (packaging/build.sh asks this of the build venv it made from the lock)."""
    unmet = []
    for line in project_requirements():
        req = Requirement(line)
        if req.marker and not req.marker.evaluate():
            continue
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or not req.specifier.contains(installed, prereleases=True):
            unmet.append(f"{line} (installed: {installed or 'nothing'})")
    for line in unmet:
        print(f"write_lock: unmet requirement {line}", file=sys.stderr)
    return 1 if unmet else 0


def main() -> int:
    if sys.argv[1:] == ["--check"]:
        return check()
    wanted = needed()
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    pins = sorted((line for line in frozen if "==" in line and canonical(line.split("==")[0]) in wanted), key=str.lower)
    missing = wanted - {canonical(p.split("==")[0]) for p in pins}
    if missing:
        sys.exit(f"write_lock: no pinned version for {', '.join(sorted(missing))} in pip freeze")
    LOCK.write_text(HEADER + "\n".join(pins) + "\n")
    print(f"wrote {LOCK} ({len(pins)} packages)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
