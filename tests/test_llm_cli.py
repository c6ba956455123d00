"""`appliance eval`, `appliance suite ...` and `appliance prompt ...` as a user runs them:
the real commands, in a process of their own, against a running appliance whose
default model is a scripted model server on loopback."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.llm_servers import Reply
from tests.support import ROOT


def appliance(llm, *args: str) -> subprocess.CompletedProcess[str]:
    connection = ["--url", llm.url, "--api-key-file", str(llm.data_dir / "admin.key")]
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args, *connection],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_eval_prints_each_grader_and_exits_by_the_verdict(llm, scripted):
    passed = appliance(
        llm, "eval", "--prompt", "example", "--input", "user_request=Hi", "--evaluator", "icontains:hello"
    )
    assert passed.returncode == 0, passed.stderr
    assert "Hello! How can I help you today?" in passed.stdout
    assert "PASS  icontains" in passed.stdout and "passed: score 1.00" in passed.stdout

    failed = appliance(
        llm, "eval", "--prompt", "example", "--input", "user_request=Hi", "--evaluator", "contains:goodbye", "--json"
    )
    assert failed.returncode == 1, failed.stderr
    body = json.loads(failed.stdout)
    assert body["passed"] is False and body["evaluations"][0]["type"] == "contains"


def test_eval_says_the_servers_error(llm, scripted):
    missing = appliance(llm, "eval", "--prompt", "example", "--evaluator", "contains:x")
    assert missing.returncode == 1
    assert "400 INVALID_REQUEST" in missing.stderr and "user_request" in missing.stderr
    scripted.reset(lambda seen: Reply(status=400, body=b'{"error": {"message": "no such model"}}'))
    refused = appliance(llm, "eval", "--prompt", "example", "--input", "user_request=x", "--no-cache")
    assert refused.returncode == 1 and "502 PROVIDER_ERROR" in refused.stderr


def test_a_suite_runs_with_a_progress_bar(llm, scripted):
    done = appliance(llm, "suite", "run", "example-tests", "--trials", "4", "--k", "2", "--no-cache")
    assert done.returncode == 0, done.stderr
    # Not a terminal: a line per tenth of the answers, then of the grading.
    lines = done.stderr.splitlines()
    assert lines and lines[-1] == "[grading] 20/20", done.stderr
    assert all(line.startswith(("[answers] ", "[grading] ")) for line in lines), done.stderr
    assert "PASS@2" in done.stdout and "example-tests: 2/5 passed" in done.stdout
    run_id = done.stdout.rsplit("run ", 1)[1].strip()

    transcript = appliance(llm, "suite", "transcript", run_id, "--case", "test-1")
    assert transcript.returncode == 0, transcript.stderr
    page = json.loads(transcript.stdout)
    assert page["total_transcripts"] == 4 and {t["case_id"] for t in page["transcripts"]} == {"test-1"}
    runs = appliance(llm, "suite", "runs")
    assert run_id in runs.stdout


def test_prompts_and_suites_are_made_from_yaml_and_promptfoo(llm, scripted, tmp_path):
    prompt = tmp_path / "shouter.yaml"
    prompt.write_text("template: 'Say {{.word}} loudly.'\n")
    made = appliance(llm, "prompt", "create", str(prompt))
    assert made.returncode == 0 and made.stdout.strip() == "prompt shouter version 1.0", made.stderr
    prompt.write_text("template: 'Shout {{.word}}.'\n")
    assert appliance(llm, "prompt", "create", str(prompt)).stdout.strip() == "prompt shouter version 1.1"
    shown = appliance(llm, "prompt", "show", "shouter", "--version", "1.0")
    assert "Say {{.word}} loudly." in shown.stdout and "variables:\n- word" in shown.stdout
    assert "shouter" in appliance(llm, "prompt", "list").stdout

    suite = tmp_path / "shouts.yaml"
    suite.write_text(
        "prompt: shouter\ncases:\n  - input: {word: hi}\n    evaluators: [{type: icontains, expected: hello}]\n"
    )
    assert appliance(llm, "suite", "create", str(suite)).stdout.strip() == "suite shouts version 1.0 (1 cases)"
    assert "shouts" in appliance(llm, "suite", "list").stdout
    assert "id: test-1" in appliance(llm, "suite", "show", "shouts").stdout

    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(
        "prompts: ['Capital of {{country}}?']\nproviders: [openai:gpt-4o]\n"
        "tests:\n  - vars: {country: France}\n    assert: [{type: icontains, value: paris}]\n"
    )
    imported = appliance(llm, "suite", "import", str(config), "--name", "capitals")
    assert imported.returncode == 0, imported.stderr
    assert "suite capitals version 1.0 (1 cases, prompt capitals)" in imported.stdout
    assert "openai:gpt-4o" in imported.stderr  # the note on the providers it did not take

    bad = tmp_path / "bad.yaml"
    bad.write_text("- not a mapping\n")
    refused = appliance(llm, "suite", "create", str(bad))
    assert refused.returncode == 2 and "one YAML mapping" in refused.stderr


def test_a_cli_without_an_appliance_says_so(tmp_path):
    (tmp_path / "key").write_text("ak_x\n")
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "prompt", "list", "--url", "http://127.0.0.1:9", "--api-key-file"]
        + [str(tmp_path / "key")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 1 and "nothing answers at http://127.0.0.1:9" in done.stderr
