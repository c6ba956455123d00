"""The README's client example runs as written against a real server."""

from __future__ import annotations

import contextlib
import io
import re

from appliance.client import ApplianceClient
from tests.support import ROOT


def test_readme_client_example_runs(server):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(from appliance.client import ApplianceClient\n.*?)```", readme, re.S).group(1)
    code = block.replace('"http://127.0.0.1:8080"', repr(server.url)).replace(
        'open("/root/.local/share/appliance/admin.key").read()', repr(server.admin_key)
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0] == "Hello, World!"
    assert lines[1].strip().startswith("0 ")  # exit code and execution time
    with ApplianceClient(server.url, api_key=server.admin_key) as client:
        for sandbox in client.list_sandboxes(limit=1000).sandboxes:
            if sandbox.name == "scratch":
                client.delete_sandbox(sandbox.sandbox_id, force=True)
