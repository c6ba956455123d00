"""Benchmark datasets: the layouts recognised and mapped (core/llm/datasets.py), the
import API (an addition to llm-eval-api.md) and `appliance datasets import` against a
real server, and the shipped demos."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from appliance.core.llm.datasets import DatasetError, FieldMapping, Kind, read_rows, to_items
from tests.llm_support import assert_llm_error
from tests.support import ROOT


def items_of(text: str, file_format: str = "jsonl", mapping: FieldMapping | None = None):
    return list(to_items(read_rows(text, file_format), mapping))


# --- layouts ----------------------------------------------------------------------------------


def test_mmlu_style_rows_with_a_choices_list_and_an_index():
    [item] = items_of('{"question": "2+2?", "choices": ["3", "4", "5", "6"], "answer": 1, "subject": "math"}')
    assert (item.kind, item.answer, item.choices, item.id) == (
        Kind.MULTIPLE_CHOICE,
        "B",
        ["3", "4", "5", "6"],
        "item-1",
    )


def test_mmlu_style_csv_with_lettered_columns_and_a_letter():
    text = "question,A,B,C,D,answer\nCapital of France?,Lyon,Paris,Nice,Metz,b\n"
    [item] = items_of(text, "csv")
    assert (item.kind, item.answer, item.choices) == (Kind.MULTIPLE_CHOICE, "B", ["Lyon", "Paris", "Nice", "Metz"])


def test_gsm8k_style_answers_keep_the_final_number():
    [item] = items_of(json.dumps({"question": "q", "answer": "10 * 120 = 1,200 dollars\n#### $1,200"}))
    assert (item.kind, item.answer) == (Kind.NUMBER, "1200")


def test_humaneval_style_rows_are_code():
    row = {"task_id": "HumanEval/0", "prompt": "def f():\n", "test": "def check(c): pass", "entry_point": "f"}
    [item] = items_of(json.dumps(row))
    assert (item.kind, item.id, item.entry_point, item.answer) == (Kind.CODE, "HumanEval/0", "f", row["test"])


def test_other_layouts_are_mapped_by_naming_their_fields():
    text = "id,prompt_text,gold,options\nq7,Pick the even one,2,1|2|3\n"
    mapping = FieldMapping(question_field="prompt_text", answer_field="gold", choices_field="options", id_field="id")
    [item] = items_of(text, "csv", mapping)
    assert (item.id, item.kind, item.question, item.choices, item.answer) == (
        "q7",
        Kind.MULTIPLE_CHOICE,
        "Pick the even one",
        ["1", "2", "3"],
        "C",
    )
    [number] = items_of(
        '{"q": "How many?", "a": "1,024"}', mapping=FieldMapping(question_field="q", answer_field="a", kind=Kind.NUMBER)
    )
    assert number.answer == "1024"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"question": "q", "choices": ["a", "b"], "answer": "E"}\n', ["line 1", "answer"]),
        ('{"question": "q", "answer": "1"}\nnot json\n', ["line 2", "not JSON"]),
        ('{"title": "no layout"}\n', ["line 1", "--question-field"]),
        ('{"question": "q", "answer": "#### many"}\n', ["line 1", "not a number"]),
    ],
)
def test_a_bad_row_is_named_by_its_line(text, words):
    with pytest.raises(DatasetError) as raised:
        items_of(text)
    for word in words:
        assert word in str(raised.value)


# --- the API ----------------------------------------------------------------------------------


@pytest.fixture
def admin(llm):
    with llm.admin() as client:
        yield client


def test_the_shipped_demos_are_listed_and_readable(admin):
    listed = admin.get("/api/v1/datasets")
    assert listed.status_code == 200, listed.text
    names = {d["name"]: d for d in listed.json()["datasets"]}
    assert {"demo_arithmetic", "demo_multiple_choice", "demo_code"} <= set(names)
    assert not any("mmlu" in name for name in names)
    assert names["demo_multiple_choice"]["kind"] == "multiple_choice" and names["demo_multiple_choice"]["demo"]
    shown = admin.get("/api/v1/datasets/demo_arithmetic", params={"limit": 2}).json()
    assert shown["dataset"]["item_count"] == 20 and len(shown["items"]) == 2
    assert shown["items"][0]["kind"] == "number"
    assert_llm_error(admin.delete("/api/v1/datasets/demo_arithmetic"), 409, "CONFLICT", "demo")


def test_a_missing_dataset_says_how_to_import_it(admin):
    error = assert_llm_error(admin.get("/api/v1/datasets/mmlu"), 404, "NOT_FOUND", "appliance datasets import")
    assert "POST /api/v1/datasets" in error["message"]


def test_import_get_append_and_delete(admin):
    content = "question,answer\nWhat is 2+3?,#### 5\nWhat is 4*4?,#### 16\n"
    made = admin.post("/api/v1/datasets", json={"name": "tiny-sums", "format": "csv", "content": content})
    assert made.status_code == 201, made.text
    assert (made.json()["item_count"], made.json()["kind"]) == (2, "number")
    more = admin.post(
        "/api/v1/datasets",
        json={
            "name": "tiny-sums",
            "append": True,
            "items": [{"id": "x", "kind": "number", "question": "1+1?", "answer": "2"}],
        },
    )
    assert more.status_code == 201 and more.json()["item_count"] == 3
    items = admin.get("/api/v1/datasets/tiny-sums").json()["items"]
    assert [i["answer"] for i in items] == ["5", "16", "2"]
    again = admin.post("/api/v1/datasets", json={"name": "tiny-sums", "content": '{"question": "q", "answer": "a"}'})
    assert again.status_code == 201 and again.json()["item_count"] == 1  # an import replaces
    assert admin.delete("/api/v1/datasets/tiny-sums").status_code == 200
    assert_llm_error(admin.get("/api/v1/datasets/tiny-sums"), 404, "NOT_FOUND")


def test_bad_imports_store_nothing(admin):
    bad = admin.post(
        "/api/v1/datasets", json={"name": "broken", "content": '{"question": "q", "answer": "1"}\n{oops\n'}
    )
    error = assert_llm_error(bad, 400, "INVALID_REQUEST", "line 2")
    assert error["details"]["line"] == 2
    assert_llm_error(admin.get("/api/v1/datasets/broken"), 404, "NOT_FOUND")
    assert_llm_error(admin.post("/api/v1/datasets", json={"name": "../x", "content": "{}"}), 400, "INVALID_REQUEST")
    assert_llm_error(
        admin.post("/api/v1/datasets", json={"name": "demo_mine", "content": '{"question": "q", "answer": "a"}'}),
        409,
        "CONFLICT",
    )
    assert_llm_error(admin.post("/api/v1/datasets", json={"name": "empty", "content": ""}), 400, "INVALID_REQUEST")
    assert_llm_error(
        admin.post(
            "/api/v1/datasets",
            json={
                "name": "nothing",
                "append": True,
                "items": [{"id": "1", "kind": "text", "question": "q", "answer": "a"}],
            },
        ),
        404,
        "NOT_FOUND",
    )


# --- the CLI ----------------------------------------------------------------------------------


def run_cli(llm, *args: str) -> subprocess.CompletedProcess[str]:
    connection = ["--url", llm.url, "--api-key-file", str(llm.data_dir / "admin.key")]
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args, *connection], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_the_cli_imports_a_large_file_in_slices_with_a_progress_bar(llm, admin, tmp_path):
    path = tmp_path / "big-choices.jsonl"
    rows = [{"question": f"Q{i}?", "choices": ["w", "x", "y", "z"], "answer": i % 4} for i in range(1200)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    done = run_cli(llm, "datasets", "import", str(path))
    assert done.returncode == 0, done.stderr
    assert "imported 1200 multiple_choice items as dataset 'big-choices'" in done.stdout
    assert done.stderr.splitlines()[-1] == "[sent] 1200/1200", done.stderr
    items = admin.get("/api/v1/datasets/big-choices", params={"limit": 10_000}).json()["items"]
    assert [item["answer"] for item in items[:5]] == ["A", "B", "C", "D", "A"] and len(items) == 1200
    listed = run_cli(llm, "datasets", "list")
    assert "big-choices" in listed.stdout and "demo_arithmetic" in listed.stdout


def test_the_cli_maps_fields_and_names_a_bad_line(llm, admin, tmp_path):
    path = tmp_path / "mapped.csv"
    path.write_text("ask,gold\nCapital of Italy?,Rome\n")
    done = run_cli(
        llm, "datasets", "import", str(path), "--name", "capitals", "--question-field", "ask", "--answer-field", "gold"
    )
    assert done.returncode == 0, done.stderr
    assert admin.get("/api/v1/datasets/capitals").json()["items"][0]["answer"] == "Rome"
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q"}\n')
    failed = run_cli(llm, "datasets", "import", str(broken))
    assert failed.returncode == 1 and "line 2" in failed.stderr
    assert_llm_error(admin.get("/api/v1/datasets/broken"), 404, "NOT_FOUND")
