"""The export endpoints of experiments-api.md through a real server: what they refuse
(422 naming the field, 404 for an experiment the caller may not see) and their own
rate limit (`rate_limit_export`, apart from reads and writes). The files themselves are
tested in tests/test_reports.py on experiments made there, until experiments are served."""

from __future__ import annotations

import pytest

from tests.experiments_support import assert_invalid, assert_v1_error, start_v1_server


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    server = start_v1_server(tmp_path_factory.mktemp("v1-exports"))
    yield server
    server.stop()


def test_refusals_name_the_field_and_unknown_experiments_are_404(v1):
    with v1.admin() as admin:
        assert_invalid(admin.post("/api/v1/experiments/exp_x/export", json={"format": "xml"}), "format")
        assert_invalid(
            admin.post("/api/v1/experiments/exp_x/export", json={"format": "csv", "include": ["runs", "results"]}),
            "include",
        )
        assert_v1_error(
            admin.post("/api/v1/experiments/exp_x/export", json={"format": "json"}), 404, "not_found", "exp_x"
        )
        assert_invalid(
            admin.post("/api/v1/export/comparison", json={"experiment_ids": [], "format": "pdf", "template": "x"}),
            "experiment_ids",
            "format",
            "template",
        )
        assert_v1_error(
            admin.post("/api/v1/export/comparison", json={"experiment_ids": ["exp_1", "exp_2"], "format": "latex"}),
            404,
            "not_found",
        )


def test_exports_have_their_own_rate_limit(tmp_path):
    limited_server = start_v1_server(tmp_path / "limited", env={"APPLIANCE_RATE_LIMIT_EXPORT": "4"})
    try:
        check_export_limit(limited_server)
    finally:
        limited_server.stop()


def check_export_limit(v1):
    with v1.admin() as admin:
        answers = [
            admin.post("/api/v1/export/comparison", json={"experiment_ids": ["exp_1"]}) for _ in range(9)
        ]  # 9: one clock minute of two holds 5
        limited = [a for a in answers if a.status_code == 429]
        assert limited, [a.status_code for a in answers]
        error = assert_v1_error(limited[0], 429, "rate_limited")
        assert error["details"]["retry_after"] >= 0 and limited[0].headers["X-RateLimit-Limit"] == "4"
        # reads are counted apart
        assert admin.get("/api/v1/statistical-results").status_code == 200
