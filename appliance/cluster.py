"""Run and grade code on the appliance's cluster nodes from your own Ray jobs (docs/cluster.md).

    from appliance.cluster import Sandboxes

    sandboxes = Sandboxes(api_key="ak_...", source="reward")
    result = sandboxes.run("def add(a, b):\\n    return a + b", tests="assert add(1, 2) == 3")
    result.passed, result.eval_id

Needs the `cluster` extra; Ray is imported only when a name of this module is used, so
importing it costs nothing where Ray is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from appliance.services.cluster.direct import Sandboxes, SandboxResult

__all__ = ["SandboxResult", "Sandboxes"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from appliance.services.cluster import direct

        return getattr(direct, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
