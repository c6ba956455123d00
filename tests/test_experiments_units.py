"""The parts of experiments that need no sandbox: planning hyperparameter points, config
validation per type, reading a program's output, the state machine, and the stores'
filters, order and pages on a real (migrated) database."""

from __future__ import annotations

import itertools
from datetime import timedelta

import msgspec
import pytest

from appliance.core.clock import iso_z, utc_now
from appliance.core.errors import ValidationError
from appliance.core.experiments import (
    ALLOWED_ACTIONS,
    Experiment,
    ExperimentStatus,
    LogLevel,
    Run,
    RunStatus,
)
from appliance.runtime.limits import SandboxLimits
from appliance.services.engines.readiness import EnginePolicy
from appliance.services.engines.specs import SandboxSpecs
from appliance.services.experiments.config import ExperimentLimits
from appliance.services.experiments.output import MAX_LINE_CHARS, LineSplitter, RunOutputParser
from appliance.services.experiments.recorder import RunRecorder
from appliance.services.experiments.run_tags import check_patterns, check_tags
from appliance.services.experiments.runners.base import RunnerRegistry
from appliance.services.experiments.runners.code import CodeConfig, CodeRunner
from appliance.services.experiments.runners.external import ExternalRunner
from appliance.services.experiments.search import RandomParameter, RandomSearch, check_search, plan_points
from appliance.store.database import Database
from appliance.store.experiments import ExperimentStore
from appliance.store.runs import Report, RunStore
from tests.experiment_service_support import experiment_query, run_query

LIMITS = ExperimentLimits(max_runs=100, run_max_metric_points=6, run_max_log_lines=4, run_max_log_bytes=10_000)


def registry() -> RunnerRegistry:
    # The sandbox file service is only used for programs from a sandbox, not here.
    code = CodeRunner(SandboxSpecs(SandboxLimits()), EnginePolicy(engines=("docker",)), None, LIMITS)
    return RunnerRegistry([code, ExternalRunner(LIMITS)])


# --- planning -----------------------------------------------------------------------------


def test_a_grid_plans_every_combination_in_order():
    grid = {"lr": [0.1, 0.01], "bs": [16, 32, 64], "opt": ["sgd"]}
    points = plan_points(grid, None, None, seed=1)
    assert [p.hyperparameters for p in points] == [
        {"lr": lr, "bs": bs, "opt": "sgd"} for lr, bs in itertools.product([0.1, 0.01], [16, 32, 64])
    ]
    assert len({p.seed for p in points}) == 6
    assert [p.seed for p in plan_points(grid, None, None, seed=1)] == [p.seed for p in points], "stable"
    assert check_search(grid, None, None, max_runs=6) == 6
    with pytest.raises(ValidationError, match="more than 5 runs") as refused:
        check_search(grid, None, None, max_runs=5)
    assert refused.value.details == {"field": "config.grid", "reason": refused.value.detail}


def test_a_seeded_random_sample_is_reproducible_and_in_range():
    search = RandomSearch(
        samples=50,
        parameters={
            "lr": RandomParameter(min=1e-5, max=1e-1, log=True),
            "layers": RandomParameter(min=1, max=4, integer=True),
            "opt": RandomParameter(choices=["sgd", "adam"]),
            "dropout": RandomParameter(min=0.0, max=0.5),
        },
    )
    assert check_search(None, None, search, max_runs=100) == 50
    first = plan_points(None, None, search, seed=42)
    assert [p.hyperparameters for p in first] == [p.hyperparameters for p in plan_points(None, None, search, seed=42)]
    assert [p.hyperparameters for p in first] != [p.hyperparameters for p in plan_points(None, None, search, seed=43)]
    for point in first:
        hp = point.hyperparameters
        assert 1e-5 <= hp["lr"] <= 1e-1 and hp["layers"] in (1, 2, 3, 4) and hp["opt"] in ("sgd", "adam")
        assert 0.0 <= hp["dropout"] <= 0.5
    assert {p.hyperparameters["layers"] for p in first} == {1, 2, 3, 4}
    with pytest.raises(ValidationError, match="above 0 for a log range"):
        check_search(None, None, RandomSearch(samples=1, parameters={"x": RandomParameter(min=0, max=1, log=True)}), 9)
    with pytest.raises(ValidationError, match="choices, or min and max"):
        check_search(None, None, RandomSearch(samples=1, parameters={"x": RandomParameter(min=0)}), 9)


def test_a_list_plans_its_points_and_nothing_plans_one_run():
    assert [p.hyperparameters for p in plan_points(None, [{"a": 1}, {"a": [1, 2]}], None, seed=0)] == [
        {"a": 1},
        {"a": [1, 2]},
    ]
    assert [p.hyperparameters for p in plan_points(None, None, None, seed=0)] == [{}]
    with pytest.raises(ValidationError, match="give one of grid, list or random, not grid and list"):
        check_search({"a": [1]}, [{"a": 1}], None, max_runs=9)
    with pytest.raises(ValidationError, match="config.grid.a has no values"):
        check_search({"a": []}, None, None, max_runs=9)


# --- config -------------------------------------------------------------------------------


def test_an_unknown_type_names_it_and_the_known_types():
    with pytest.raises(ValidationError) as refused:
        registry().validate({"type": "ensemble", "models": ["gpt-4"]})
    assert "'ensemble'" in refused.value.detail and "known types: code, external" in refused.value.detail
    assert refused.value.details == {
        "field": "config.type",
        "reason": "unknown type",
        "known_types": ["code", "external"],
    }
    with pytest.raises(ValidationError, match="config.type missing"):
        registry().validate({"code": "print(1)"})
    with pytest.raises(ValidationError, match='an object with a "type"'):
        registry().validate(["code"])


@pytest.mark.parametrize(
    ("config", "field", "words"),
    [
        ({"code": "print(1)", "gird": {}}, "config.gird", "unknown field"),
        ({"code": "print(1)", "max_parallel": "2"}, "config.max_parallel", "Expected `int`"),
        ({"code": "print(1)", "max_parallel": 0}, "config.max_parallel", "between 1 and"),
        ({"code": "print(1)", "timeout": 10**9}, "config.timeout", "experiment_run_timeout_max"),
        ({"code": "print(1)", "language": "cobol"}, "config.language", "unknown"),
        ({"code": "print(1)", "engine": "gvisor"}, "config.engine", "not available"),
        ({}, "config.code", "give the program as code, or as sandbox_id and entrypoint"),
        ({"code": "print(1)", "sandbox_id": "sb_1"}, "config.code", "give the program"),
        ({"sandbox_id": "sb_1"}, "config.entrypoint", "required"),
        ({"code": " "}, "config.code", "empty"),
        ({"code": "print(1)", "random": {"samples": 0, "parameters": {}}}, "config.random.samples", "at least 1"),
        ({"code": "print(1)", "objective": {"metric": "a\nb"}}, "config.objective.metric", "no metric name"),
        ({"code": "print(1)", "list": [{"a": 1}, 5]}, "config.list.1", "Expected `object`"),
    ],
)
def test_a_bad_code_config_names_its_field(config, field, words):
    with pytest.raises(ValidationError) as refused:
        registry().validate({"type": "code", **config})
    assert refused.value.details is not None and refused.value.details["field"] == field, refused.value.details
    assert words in refused.value.detail


def test_a_code_config_is_normalized():
    _, config = registry().validate({"type": "code", "code": "print(1)", "language": "py", "grid": {"a": [1, 2]}})
    assert isinstance(config, CodeConfig)
    assert (config.language, config.engine, config.timeout) == ("python", "docker", LIMITS.run_timeout_default)
    assert config.seed is not None and config.max_parallel == 1


# --- output -------------------------------------------------------------------------------


class _NoStore(RunStore):
    """The recorder's store, never flushed in these tests."""

    def __init__(self) -> None:
        pass


def recorder(limits: ExperimentLimits = LIMITS) -> RunRecorder:
    now = utc_now()
    run = Run(id="run_x", experiment_id="exp_x", owner="o", created_at=now, updated_at=now)
    return RunRecorder(_NoStore(), run, limits)


def test_output_lines_become_metrics_progress_and_logs():
    rec = recorder(ExperimentLimits(run_max_log_lines=100))
    parser = RunOutputParser(rec)
    parser.feed("stdout", '{"metrics": {"loss": 0.5, "acc": 1}, "step": 3}\n{"progress": 0.25}\nplain')
    parser.feed("stdout", ' line\nWARNING: careful\n[error] bad\n{"level": "debug", "message": "hm"}\n')
    parser.feed("stdout", '{"metrics": {"loss": 0.25, "name": "x", "nan": 1e999}}\n{"not": "special"}\n\n')
    parser.feed("stderr", "Traceback (most recent call last):\nsomething\nINFO: fine\n")
    parser.feed("stdout", "no newline at the end")
    parser.close()
    report = rec._report
    assert [(m.name, m.step, m.value) for m in report.metrics] == [("loss", 3, 0.5), ("acc", 3, 1), ("loss", 4, 0.25)]
    assert report.latest == {"loss": 0.25, "acc": 1} and report.step == 4 and report.progress == 0.25
    assert [(line.level, line.message) for line in report.logs] == [
        (LogLevel.INFO, "plain line"),
        (LogLevel.WARNING, "WARNING: careful"),
        (LogLevel.ERROR, "[error] bad"),
        (LogLevel.DEBUG, "hm"),
        (LogLevel.WARNING, "[appliance] metrics must be finite numbers; left out: name, nan"),
        (LogLevel.INFO, '{"not": "special"}'),
        (LogLevel.ERROR, "Traceback (most recent call last):"),
        (LogLevel.WARNING, "something"),
        (LogLevel.INFO, "INFO: fine"),
        (LogLevel.INFO, "no newline at the end"),
    ]
    assert not rec.logs_full


def test_the_log_cap_is_said_once():
    rec = recorder()
    for i in range(10):
        rec.log(LogLevel.INFO, f"line {i}")
    assert [line.message for line in rec._report.logs][:4] == ["line 0", "line 1", "line 2", "line 3"]
    assert len(rec._report.logs) == 5 and "reached its log cap (4 lines" in rec._report.logs[4].message
    assert rec.logs_full


def test_past_the_caps_output_is_dropped_unread_but_progress_counts():
    rec = recorder()
    parser = RunOutputParser(rec)
    parser.feed("stdout", '{"metrics": {"a": 1, "b": 2}}\n' * 10)
    assert rec.metrics_full and len(rec._report.metrics) == 6
    parser.feed("stdout", "x\n" * 10)
    assert rec.saturated
    parser.feed("stdout", '{"metrics": {"a": 1}, "progress": 0.5}\n' * 1000 + '{"progress": 0.9}\n')
    assert rec._report.progress == 0.9 and len(rec._report.metrics) == 6


def test_a_line_is_cut_at_its_cap():
    splitter = LineSplitter()
    assert splitter.feed("a" * (MAX_LINE_CHARS + 10)) == []
    assert splitter.feed("b" * 10 + "\nshort\n") == ["a" * MAX_LINE_CHARS, "short"]
    assert splitter.feed("x" * (MAX_LINE_CHARS * 2) + "\n") == ["x" * MAX_LINE_CHARS]
    assert splitter.feed("tail") == [] and splitter.flush() == ["tail"]


# --- the state machine --------------------------------------------------------------------


def test_the_state_machine():
    table = {status.value: [a.value for a in actions] for status, actions in ALLOWED_ACTIONS.items()}
    assert table == {
        "pending": ["start", "cancel", "clone"],
        "running": ["pause", "cancel", "clone"],
        "paused": ["resume", "cancel", "clone"],
        "completed": ["clone"],
        "failed": ["clone"],
        "cancelled": ["clone"],
    }


# --- stores -------------------------------------------------------------------------------


@pytest.fixture
async def db(tmp_path):
    database = Database(tmp_path / "appliance.db")
    await database.open()
    yield database
    await database.close()


async def test_experiment_lists_filter_sort_and_page(db):
    store = ExperimentStore(db)
    start = utc_now() - timedelta(hours=1)
    statuses = [ExperimentStatus.PENDING, ExperimentStatus.RUNNING, ExperimentStatus.COMPLETED]
    for i in range(12):
        moment = start + timedelta(minutes=i)
        await store.insert(
            Experiment(
                id=f"exp_{i:02d}",
                owner="alice" if i % 2 else "bob",
                name=f"Model {'Alpha' if i < 6 else 'Beta'} {i:02d}",
                status=statuses[i % 3],
                config={"type": "external"},
                created_at=moment,
                updated_at=moment,
            )
        )
    newest = await store.list(experiment_query(per_page=5))
    assert [e.id for e in newest.items] == ["exp_11", "exp_10", "exp_09", "exp_08", "exp_07"]
    assert newest.total == 12 and newest.has_more and newest.last is not None
    seen = [e.id for e in newest.items]
    page = newest
    while page.has_more:
        page = await store.list(experiment_query(per_page=5, after=page.last))
        seen += [e.id for e in page.items]
    assert seen == [f"exp_{i:02d}" for i in range(11, -1, -1)]
    offset = await store.list(experiment_query(per_page=5, page=3))
    assert [e.id for e in offset.items] == ["exp_01", "exp_00"] and not offset.has_more

    alice_beta = await store.list(experiment_query(name="beta"), owner="alice")
    assert [e.id for e in alice_beta.items] == ["exp_11", "exp_09", "exp_07"] and alice_beta.total == 3
    running = await store.list(experiment_query(status="running"))
    assert {e.id for e in running.items} == {"exp_01", "exp_04", "exp_07", "exp_10"}
    window = await store.list(
        experiment_query(
            created_after=iso_z(start + timedelta(minutes=3)), created_before=iso_z(start + timedelta(minutes=5))
        )
    )
    assert [e.id for e in window.items] == ["exp_04", "exp_03"]
    by_name = await store.list(experiment_query("name", per_page=3))
    assert [e.name for e in by_name.items] == ["Model Alpha 00", "Model Alpha 01", "Model Alpha 02"]
    by_status = await store.list(experiment_query("status"))
    assert [e.status.value for e in by_status.items] == sorted(e.status.value for e in by_status.items)


async def test_runs_sort_by_a_metric_with_those_lacking_it_last(db):
    experiments, runs = ExperimentStore(db), RunStore(db)
    now = utc_now()
    await experiments.insert(
        Experiment(id="exp_1", owner="o", name="e", config={"type": "external"}, created_at=now, updated_at=now)
    )
    losses = [0.5, None, 0.1, 0.9, None, 0.3, 0.1]
    for i, loss in enumerate(losses):
        run = Run(id=f"run_{i}", experiment_id="exp_1", owner="o", position=i, created_at=now, updated_at=now)
        await runs.insert(run)
        if loss is not None:
            await runs.record(run.id, Report(latest={"val.loss": loss}), now)
    await runs.finish("run_0", RunStatus.COMPLETED, now)

    async def order(descending: bool, limit: int) -> list[str]:
        ids, cursor = [], None
        while True:
            sort = "-metrics.val.loss" if descending else "metrics.val.loss"
            page = await runs.list(run_query(sort, per_page=limit, after=cursor), experiment_id="exp_1")
            ids += [r.id for r in page.items]
            if not page.has_more:
                return ids
            cursor = page.last

    ascending = ["run_2", "run_6", "run_5", "run_0", "run_3", "run_1", "run_4"]
    for limit in (1, 2, 3, 100):
        assert await order(False, limit) == ascending
        assert await order(True, limit) == ["run_3", "run_0", "run_5", "run_6", "run_2", "run_4", "run_1"]
    completed = await runs.list(run_query(status="completed"))
    assert [r.id for r in completed.items] == ["run_0"] and completed.total == 1
    by_position = await runs.list(run_query("position", per_page=3, page=2))
    assert [r.id for r in by_position.items] == ["run_3", "run_4", "run_5"] and by_position.total == 7
    started = await runs.list(run_query("-started_at"))
    assert len(started.items) == 7, "runs without a start time sort last, not away"


# --- run tags -------------------------------------------------------------------------------


def test_run_tag_patterns_take_each_points_hyperparameters():
    config = CodeConfig(
        type="code",
        code="print(1)",
        grid={"model": ["gpt4", "llama"], "n": [1, 2.0], "fast": [True]},
        run_tags=["sweep", "model:{model}", "n={n}/{fast}"],
    )
    runner_config = registry().validate(msgspec.to_builtins(config))[1]
    planned = registry().get("code").plan(runner_config)
    assert [p.tags for p in planned] == [
        ["sweep", "model:gpt4", "n=1/true"],
        ["sweep", "model:gpt4", "n=2/true"],
        ["sweep", "model:llama", "n=1/true"],
        ["sweep", "model:llama", "n=2/true"],
    ]
    with pytest.raises(ValidationError, match=r"\{lr\} names no hyperparameter") as missing:
        check_patterns(["lr:{lr}"], [{"model": "a"}])
    assert missing.value.details == {"field": "config.run_tags.0", "reason": str(missing.value)}
    with pytest.raises(ValidationError, match="at most 32 tags"):
        check_patterns([f"t{i}" for i in range(33)], [{}])
    assert check_tags(["b", "a", "b"], "tags", ["a"]) == ["a", "b"]


def test_a_program_adds_tags_by_printing_them():
    rec = recorder(ExperimentLimits(run_max_log_lines=100))
    parser = RunOutputParser(rec)
    parser.feed("stdout", '{"tags": ["model:gpt4"]}\n{"tags": ["model:gpt4", "split:test"], "progress": 0.5}\n')
    assert rec._report.tags == ["model:gpt4", "split:test"] and rec._report.progress == 0.5
    parser.feed("stdout", '{"tags": ["ok", "not ok"]}\n{"tags": ["x y"]}\n')
    assert rec._report.tags == ["model:gpt4", "split:test"], "a line with a bad tag is left out whole"
    warnings = [line.message for line in rec._report.logs]
    assert len(warnings) == 1 and "tags left out" in warnings[0] and "'not ok' is no tag" in warnings[0]
