"""`appliance doctor`'s cluster check on the nodes' offers: the versions must match.

The check against a live cluster is in tests/test_cluster.py; here what it makes of the
offers, one of them from a node with another Ray. Skipped without Ray (the `cluster` extra).
"""

from __future__ import annotations

import platform

import pytest

from appliance import __version__
from appliance.core.cluster import NodeOffer

ray = pytest.importorskip("ray")

from appliance.services.operations.doctor_cluster import check_cluster, versions_check  # noqa: E402


def offer(name: str, ray_version: str = ray.__version__) -> NodeOffer:
    return NodeOffer(
        name=name,
        ray_node_id="n",
        slots={"docker": 2},
        languages=["python"],
        appliance_version=__version__,
        ray_version=ray_version,
        python_version=platform.python_version(),
    )


def test_matching_nodes_are_ok() -> None:
    check = versions_check([offer("a"), offer("b")], ray.__version__)
    assert check.status == "OK"
    assert f"2 node(s), all as here: python {platform.python_version()}, ray {ray.__version__}" in check.found


def test_a_node_with_another_ray_fails_naming_it_and_the_fix() -> None:
    check = versions_check([offer("a"), offer("b", ray_version="2.9.3")], ray.__version__)
    assert check.status == "FAIL"
    assert check.found == f"node b: ray 2.9.3, here {ray.__version__}"
    assert check.fix is not None and "same Python, Ray and appliance on every machine" in check.fix


def test_a_node_that_does_not_answer_fails() -> None:
    check = versions_check([offer("a"), "b: GetTimeoutError"], ray.__version__)
    assert check.status == "FAIL" and "node b: GetTimeoutError" in check.found


def test_no_node_yet_warns() -> None:
    check = versions_check([], ray.__version__)
    assert check.status == "WARN" and "appliance node start" in (check.fix or "")


def test_no_check_without_cluster_mode() -> None:
    from appliance.config import load_settings

    assert check_cluster(load_settings({"data_dir": "/nonexistent"}, environ={})) is None
