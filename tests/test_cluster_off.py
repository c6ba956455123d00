"""Cluster mode is off by default: a single machine never imports Ray, and asking for
cluster mode without Ray installed is one clear line, not a traceback."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.support import ROOT

NO_RAY = importlib.util.find_spec("ray") is None


def test_a_single_machine_never_imports_ray(tmp_path) -> None:
    code = (
        "import sys\n"
        "from appliance.app import Appliance\n"
        "from appliance.cli import build_parser\n"
        "from appliance.config import load_settings\n"
        "from appliance.http.app_factory import create_app\n"
        f"create_app(Appliance(load_settings({{'data_dir': {str(tmp_path)!r}}}, environ={{}})))\n"
        "build_parser()\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.skipif(not NO_RAY, reason="Ray is installed here")
def test_cluster_mode_without_ray_says_what_to_install(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "serve", "--cluster", "127.0.0.1:6379", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 2
    assert "install the `cluster` extra" in result.stderr and "Traceback" not in result.stderr
