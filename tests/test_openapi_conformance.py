"""Schemathesis against GET /api/openapi.yaml of a live server: what the server answers
is what the document says (any status answered is documented, every body fits its
schema) and nothing is a 5xx.

It runs the schemathesis CLI (the `test` extra pins it) in its examples, coverage,
fuzzing and stateful phases with a bounded number of cases per operation, as a team
script's generated client would meet the API: with the admin key in X-API-Key and,
since the document offers bearer tokens too, now and then an Authorization header beside
it.

Every operation but one is included: DELETE /auth/api-keys/{key_id} would revoke the
admin key the run authenticates with (its id is in GET /auth/api-keys, and the stateful
phase follows it there), after which every call is a 401 and the rest tests nothing;
tests/test_openapi_document.py checks its statuses against the document instead.

The operations that start containers or run code are bounded by
the server's own settings instead, whose refusals are documented statuses too:
sandbox_max_count (409 past 2 sandboxes), max_timeout (a program runs 5 s at most),
max_batch_size (5) and the execute and batch rate limits (429 past them). So a run starts
a few dozen short programs and two sandboxes, not hundreds. The queue is left long: its
503 when full is documented, but not_a_server_error counts any 5xx as a failure, and so
it should here (tests/test_openapi_document.py fills the queue on purpose).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time

import pytest

from tests.support import ServerProcess

CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"
PHASES = "examples,coverage,fuzzing,stateful"
# Cases per operation and phase: about 3 minutes here, on two cores others use too.
MAX_EXAMPLES = 60
# Only a hang reaches this (a run takes minutes); not --max-time, with which schemathesis
# repeats fuzzing and stateful testing until the time is spent.
MAX_SECONDS = 600

# Revoking a key: see the module's docstring.
REVOKE_KEY = "AuthApiKeysKeyIdRevoke"

SETTINGS = {
    # The standard budget: no 429 where a client within its limits would get none.
    "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "1000000",
    "APPLIANCE_RATE_LIMIT_ANONYMOUS": "1000000",
    "APPLIANCE_RATE_LIMIT_UPLOAD": "1000000",
    # What starts containers: a few, then a documented refusal.
    "APPLIANCE_RATE_LIMIT_EXECUTE": "30",
    "APPLIANCE_RATE_LIMIT_BATCH": "60",
    "APPLIANCE_MAX_BATCH_SIZE": "5",
    "APPLIANCE_MAX_TIMEOUT": "5",
    "APPLIANCE_SANDBOX_MAX_COUNT": "2",
    "APPLIANCE_WORKERS": "2",
}


def schemathesis_run(server: ServerProcess, workdir) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("schemathesis") is None:
        pytest.fail("schemathesis is not installed: pip install -e '.[test]' (scripts/setup.sh does)", pytrace=False)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{server.url}/api/openapi.yaml",
        "--checks",
        CHECKS,
        "--phases",
        PHASES,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--exclude-operation-id",
        REVOKE_KEY,
        "--header",
        f"X-API-Key: {server.admin_key}",
        "--request-timeout",
        "60",
        # Nothing written into the repository: no example database, no report directory.
        "--generation-database",
        "none",
        "--no-color",
    ]
    return subprocess.run(
        command,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=MAX_SECONDS,
        # Its output is wide: lines are not cut to a terminal's width.
        env={**os.environ, "COLUMNS": "200"},
    )


def server_errors(server: ServerProcess) -> str:
    """The server's tracebacks and error lines: where a 5xx came from."""
    lines = server.log().splitlines()
    starts = [i for i, line in enumerate(lines) if " ERROR " in line]
    return "\n".join("\n".join(lines[i : i + 40]) for i in starts[:5])[:10000]


@pytest.mark.slow
# Its own bound is MAX_SECONDS; the suite's 300 s is less than a run over every
# operation takes on a busy machine.
@pytest.mark.timeout(MAX_SECONDS + 60)
def test_the_server_answers_as_its_openapi_document_says(fresh_server, tmp_path):
    server = fresh_server(env=SETTINGS)
    started = time.monotonic()
    result = schemathesis_run(server, tmp_path)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    summary = output[output.rfind("SUMMARY") :] if "SUMMARY" in output else output[-6000:]
    print(f"schemathesis: {elapsed:.0f} s\n{summary}")
    if result.returncode != 0:
        failures = output[output.find("FAILURES") :] if "FAILURES" in output else output
        pytest.fail(
            f"schemathesis found failures ({elapsed:.0f} s):\n{failures[:20000]}\n"
            f"--- the server's log of errors:\n{server_errors(server)}",
            pytrace=False,
        )
    assert "passed" in summary, output[-6000:]
