"""`appliance eval`, `appliance suite ...` and `appliance prompt ...`: LLM evaluation on
a running appliance, through its API (appliance.client), so every rule and error is the
server's. The daemon's address and key come from --url and --api-key-file, or else
from the local settings (host, port, DATA_DIR/admin.key), as for `appliance tui`.

`appliance eval` exits 0 when the evaluation passed and 1 when it did not, so a script
can use it as a check; a suite run shows a progress bar (answers, then grading) and
Ctrl-C cancels it on the server.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from appliance.cli.common import settings_from_args
from appliance.cli.progress import ThrottledBar, cancelled, end_bar
from appliance.client import ApiError, ApplianceClient

EXIT_FAILED = 1
EXIT_USAGE = 2


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the appliance's address (default: the local settings' host and port)")
    parser.add_argument("--api-key-file", help="file holding an API key (default: DATA_DIR/admin.key)")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    evaluate = sub.add_parser("eval", parents=[common], help="evaluate a prompt once (exit 1 when it fails)")
    _connection(evaluate)
    evaluate.add_argument("--prompt", required=True, help="the prompt's name")
    evaluate.add_argument("--version", help="the prompt's version (default: its latest)")
    evaluate.add_argument("--input", action="append", default=[], metavar="NAME=VALUE", help="a template variable")
    evaluate.add_argument("--input-json", help="the template variables as one JSON object")
    evaluate.add_argument(
        "--evaluator", action="append", default=[], metavar="TYPE[:EXPECTED]", help="e.g. contains:hello"
    )
    evaluate.add_argument("--evaluators-json", help="the evaluators as a JSON list of objects")
    evaluate.add_argument("--model", help="a model registry entry (id or name); default: the default model")
    evaluate.add_argument("--no-cache", action="store_true", help="ask the model even if the cache has the answer")
    evaluate.add_argument("--json", action="store_true", help="print the API's JSON answer")
    evaluate.set_defaults(func=_guarded(cmd_eval))

    suite = sub.add_parser("suite", help="test suites").add_subparsers(dest="suite_command", required=True)
    run = suite.add_parser("run", parents=[common], help="run a suite, with a progress bar")
    _connection(run)
    run.add_argument("name")
    run.add_argument("--prompt", help="run the cases with this prompt instead of the suite's")
    run.add_argument("--trials", type=int, default=1)
    run.add_argument("--k", type=int, default=1, help="pass@k's k (at most --trials)")
    run.add_argument("--model")
    run.add_argument("--case", action="append", dest="cases", help="only this case (repeatable)")
    run.add_argument("--no-cache", action="store_true")
    run.add_argument("--json", action="store_true")
    run.set_defaults(func=_guarded(cmd_suite_run))
    for name, helped, func in (
        ("list", "list suites", cmd_suite_list),
        ("runs", "list suite runs, newest first", cmd_suite_runs),
    ):
        command = suite.add_parser(name, parents=[common], help=helped)
        _connection(command)
        command.set_defaults(func=_guarded(func))
    show = suite.add_parser("show", parents=[common], help="print a suite as YAML")
    _connection(show)
    show.add_argument("name")
    show.add_argument("--version")
    show.set_defaults(func=_guarded(cmd_suite_show))
    create = suite.add_parser("create", parents=[common], help="create a suite (or its next version) from YAML")
    _connection(create)
    create.add_argument("file")
    create.set_defaults(func=_guarded(cmd_suite_create))
    imported = suite.add_parser("import", parents=[common], help="import a promptfoo config as prompts and suites")
    _connection(imported)
    imported.add_argument("file")
    imported.add_argument("--name", required=True, help="the suite's (and its prompt's) name")
    imported.set_defaults(func=_guarded(cmd_suite_import))
    transcript = suite.add_parser("transcript", parents=[common], help="print a run's transcripts as JSON")
    _connection(transcript)
    transcript.add_argument("run_id")
    transcript.add_argument("--case", help="only this case's trials")
    transcript.set_defaults(func=_guarded(cmd_suite_transcript))

    prompt = sub.add_parser("prompt", help="prompts").add_subparsers(dest="prompt_command", required=True)
    listed = prompt.add_parser("list", parents=[common], help="list prompts")
    _connection(listed)
    listed.set_defaults(func=_guarded(cmd_prompt_list))
    shown = prompt.add_parser("show", parents=[common], help="print a prompt as YAML")
    _connection(shown)
    shown.add_argument("name")
    shown.add_argument("--version")
    shown.set_defaults(func=_guarded(cmd_prompt_show))
    made = prompt.add_parser("create", parents=[common], help="create a prompt (or its next version) from YAML")
    _connection(made)
    made.add_argument("file")
    made.set_defaults(func=_guarded(cmd_prompt_create))


# --- plumbing -------------------------------------------------------------------------------


def _guarded(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = command(args)
            return code
        except CliError as exc:
            print(f"appliance: {exc.message}", file=sys.stderr)
            return exc.code
        except ApiError as exc:
            print(f"appliance: {exc.status_code} {exc.code}: {exc.message}", file=sys.stderr)
            return EXIT_FAILED

    return run


def _client(args: argparse.Namespace) -> ApplianceClient:
    import httpx

    url, key_path = args.url, Path(args.api_key_file).expanduser() if args.api_key_file else None
    if url is None or key_path is None:
        settings = settings_from_args(args)
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(settings.host, settings.host)
        url = url or (f"http://[{host}]:{settings.port}" if ":" in host else f"http://{host}:{settings.port}")
        key_path = key_path or settings.admin_key_path
    try:
        key = key_path.read_text().strip()
    except OSError as exc:
        raise CliError(f"cannot read the API key file {key_path} ({exc.strerror}): pass --api-key-file") from None
    client = ApplianceClient(url, api_key=key, timeout=3600)
    try:
        client.llm_health()
    except httpx.HTTPError as exc:
        client.close()
        raise CliError(
            f"nothing answers at {url} ({type(exc).__name__}): start the appliance or pass --url", 1
        ) from None
    return client


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def _yaml_mapping(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold one YAML mapping (a prompt or a suite)")
    data.setdefault("name", Path(path).stem)
    for key in ("version", "prompt_version"):
        if isinstance(data.get(key), int | float):
            data[key] = str(data[key])
    return data


def _dump(value: Any) -> None:
    print(yaml.safe_dump(json.loads(json.dumps(value)), sort_keys=False, allow_unicode=True).rstrip())


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# --- eval -------------------------------------------------------------------------------


def _evaluators(args: argparse.Namespace) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if args.evaluators_json:
        loaded = _value(args.evaluators_json)
        if not isinstance(loaded, list):
            raise CliError("--evaluators-json must be a JSON list of objects")
        found.extend(loaded)
    for given in args.evaluator:
        kind, _, expected = given.partition(":")
        found.append({"type": kind, **({"expected": expected} if expected else {})})
    return found


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if args.input_json:
        loaded = _value(args.input_json)
        if not isinstance(loaded, dict):
            raise CliError("--input-json must be a JSON object")
        values.update(loaded)
    for given in args.input:
        name, equals, value = given.partition("=")
        if not equals:
            raise CliError(f"--input {given!r}: write NAME=VALUE")
        values[name] = value
    return values


def cmd_eval(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.evaluate(
            args.prompt,
            _inputs(args),
            _evaluators(args),
            model=args.model,
            version=args.version,
            cache=False if args.no_cache else None,
        )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(result["response"])
        print()
        for item in result["evaluations"]:
            mark = "PASS" if item["passed"] else "FAIL"
            print(f"{mark}  {item['type']:<14} {item['score']:.2f}  {item['message']}")
        verdict = "passed" if result["passed"] else "failed"
        print(
            f"\n{verdict}: score {result['score']:.2f}, {result['latency_ms']} ms, {result['tokens_used']} tokens "
            f"(model {result['model']}{', cached' if result.get('cached') else ''})"
        )
    return 0 if result["passed"] else EXIT_FAILED


# --- suites -----------------------------------------------------------------------------


class _Bars:
    """A suite run's progress: its answers, then its grading."""

    def __init__(self) -> None:
        self.bar = ThrottledBar()

    def __call__(self, run: Any) -> None:
        progress = run["progress"]
        total = progress["total"]
        answered, graded = progress.get("answered", 0), progress["done"]
        label, done = ("grading", graded) if graded or answered >= total else ("answers", answered)
        self.bar.show(label, done, total)
        if run["status"] != "running":
            end_bar()


def cmd_suite_run(args: argparse.Namespace) -> int:
    with _client(args) as client:
        started = client.run_suite(
            args.name,
            prompt=args.prompt,
            trials=args.trials,
            k=args.k,
            wait=False,
            model=args.model,
            cases=args.cases,
            cache=False if args.no_cache else None,
        )
        try:
            run = client.wait_for_suite_run(started["id"], progress=_Bars())
        except KeyboardInterrupt:
            return cancelled(f"run {started['id']}", lambda: client.cancel_suite_run(started["id"]))
    if run["status"] != "completed":
        print(f"appliance: run {run['id']} {run['status']}: {run.get('error')}", file=sys.stderr)
        return EXIT_FAILED
    result = run["suite_result"]
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'CASE':<24} {'PASSED':<7} {'SCORE':>6} {'PASS@' + str(result['k']):>8} {'PASS^' + str(result['k']):>8}")
    for case in result["results"]:
        mark = "yes" if case["passed"] else ("error" if case.get("error") else "no")
        print(
            f"{case['case_id'][:24]:<24} {mark:<7} {case['score']:>6.2f} {case['pass_at_k']:>8.3f} "
            f"{case['pass_hat_k']:>8.3f}"
        )
    print(
        f"\n{result['suite']}: {result['passed_cases']}/{result['total_cases']} passed (pass rate "
        f"{result['pass_rate']:.2f}, average score {result['avg_score']:.2f}, pass@{result['k']} "
        f"{result['pass_at_k']:.3f}); {result['tokens_used']} tokens; run {result['id']}"
    )
    return 0


def cmd_suite_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        suites = client.list_suites()
    print(f"{'NAME':<28} {'VERSION':<10} {'PROMPT':<24} CASES")
    for suite in suites:
        print(f"{suite['name'][:28]:<28} {suite['version'][:10]:<10} {suite['prompt'][:24]:<24} {suite['case_count']}")
    return 0


def cmd_suite_runs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        runs = client.suite_runs()["runs"]
    print(f"{'RUN':<34} {'KIND':<9} {'STATUS':<10} {'SUITE':<20} CREATED")
    for run in runs:
        print(
            f"{run['id']:<34} {run['kind']:<9} {run['status']:<10} {(run.get('suite') or '-')[:20]:<20} "
            f"{run['created_at']}"
        )
    return 0


def cmd_suite_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _dump(client.get_suite(args.name, args.version))
    return 0


def cmd_suite_create(args: argparse.Namespace) -> int:
    with _client(args) as client:
        saved = client.save_suite(_yaml_mapping(args.file))
    print(f"suite {saved['name']} version {saved['version']} ({saved['case_count']} cases)")
    return 0


def cmd_suite_import(args: argparse.Namespace) -> int:
    with _client(args) as client:
        imported = client.import_promptfoo(args.name, _read(args.file))
    for suite in imported["suites"]:
        print(
            f"suite {suite['name']} version {suite['version']} ({suite['case_count']} cases, prompt {suite['prompt']})"
        )
    for note in imported["notes"]:
        print(f"note: {note}", file=sys.stderr)
    return 0


def cmd_suite_transcript(args: argparse.Namespace) -> int:
    with _client(args) as client:
        page = client.suite_run(args.run_id, case_id=args.case, limit=10_000)
    print(json.dumps(page, indent=2))
    return 0


# --- prompts ----------------------------------------------------------------------------


def cmd_prompt_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        prompts = client.list_prompts()
    print(f"{'NAME':<28} {'VERSION':<10} {'SYSTEM':<7} DESCRIPTION")
    for prompt in prompts:
        system = "yes" if prompt["is_system_prompt"] else "no"
        print(f"{prompt['name'][:28]:<28} {prompt['version'][:10]:<10} {system:<7} {prompt.get('description', '')}")
    return 0


def cmd_prompt_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _dump(client.get_prompt(args.name, args.version))
    return 0


def cmd_prompt_create(args: argparse.Namespace) -> int:
    with _client(args) as client:
        saved = client.save_prompt(_yaml_mapping(args.file))
    print(f"prompt {saved['name']} version {saved['version']}")
    return 0
