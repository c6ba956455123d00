"""Programs that run inside containers, made of modules of this package.

They stay modules here, to be read, linted, typed and tested as Python; each program is
shipped as one `python3 -c` text that registers every module under its own name before
running the last one's main(), so their imports of each other work in the container,
whose python3 has the standard library only. The one-file binary bundles these modules
as data (appliance.spec reads SHIPPED_MODULES).
"""

from __future__ import annotations

from pathlib import Path

BATCH_SERVER_MODULES = ("appliance.runtime.batch_child", "appliance.runtime.batch_server")
EGRESS_PROXY_MODULES = ("appliance.core.allowed_hosts", "appliance.runtime.egress_proxy")
SHIPPED_MODULES = (*BATCH_SERVER_MODULES, *EGRESS_PROXY_MODULES)

_PACKAGE = Path(__file__).resolve().parent.parent
_BOOTSTRAP = """import sys, types
for name, source in {modules!r}:
    module = sys.modules[name] = types.ModuleType(name)
    exec(compile(source, name.replace(".", "/") + ".py", "exec"), module.__dict__)
sys.exit(module.main())
"""


def module_path(name: str) -> Path:
    """Where a module of this package is (also inside the one-file binary's unpack dir)."""
    return (_PACKAGE / Path(*name.split(".")[1:])).with_suffix(".py")


def program(modules: tuple[str, ...]) -> str:
    """The `python3 -c` text: each module registered under its name, then the last one's main()."""
    return _BOOTSTRAP.format(modules=tuple((name, module_path(name).read_text()) for name in modules))
