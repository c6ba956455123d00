"""Benchmark datasets: what an item is, and how the rows of a JSONL or CSV file become items.

Three layouts are recognised by their fields, and any other is mapped by naming its fields
(`FieldMapping`, the CLI's --question-field etc.):

- multiple choice (MMLU-style): `question`, the choices as a list `choices` or as columns
  `A`..`D` (or `choice_a`.., `option_a`..), `answer` a letter or a 0-based index;
- number (GSM8K-style): `question` and `answer` whose last line is `#### N`;
- code (HumanEval-style): `prompt`, `test`, `entry_point` (and `canonical_solution`, unused).

An item keeps one normalised answer: the letter for multiple choice, the number as written
without thousands separators for numbers, the tests for code.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
LETTERS = "ABCDEFGHIJ"
_CHOICE_COLUMNS = (
    tuple(LETTERS),
    tuple(f"choice_{c.lower()}" for c in LETTERS),
    tuple(f"option_{c.lower()}" for c in LETTERS),
)
_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.S)


class Kind(StrEnum):
    MULTIPLE_CHOICE = "multiple_choice"
    NUMBER = "number"
    CODE = "code"
    TEXT = "text"  # an exact (trimmed, case-blind) answer


class DatasetItem(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    kind: Kind
    question: str
    answer: str  # the letter, the number, the expected text; for code its tests
    choices: list[str] | None = None
    entry_point: str | None = None


class Dataset(msgspec.Struct, kw_only=True):
    name: str
    kind: Kind
    item_count: int
    source: str
    owner: str
    created_at: datetime
    demo: bool = False


class FieldMapping(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Which field of a row holds what, for layouts that are not recognised."""

    question_field: str | None = None
    answer_field: str | None = None
    choices_field: str | None = None  # a list, or choices separated by `|`
    id_field: str | None = None
    kind: Kind | None = None


class DatasetError(ValueError):
    """A row that cannot become an item; `line` is its 1-based line (or row) number."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


def check_name(name: str) -> str | None:
    """What is wrong with a dataset name, or None."""
    if not DATASET_NAME.match(name):
        return "a dataset name is 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit"
    return None


def read_rows(text: str, file_format: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a JSONL or CSV text."""
    if file_format == "jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"not JSON: {exc.msg}", number) from None
            if not isinstance(row, dict):
                raise DatasetError("a JSONL line must be an object", number)
            yield number, row
    elif file_format == "csv":
        reader = csv.DictReader(io.StringIO(text))
        for number, row in enumerate(reader, 2):
            yield number, {key: value for key, value in row.items() if key is not None}
    else:
        raise DatasetError(f"format {file_format!r} is not one of jsonl, csv")


def format_of(filename: str) -> str | None:
    lowered = filename.lower()
    if lowered.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if lowered.endswith(".csv"):
        return "csv"
    return None


def to_items(rows: Iterable[tuple[int, dict[str, Any]]], mapping: FieldMapping | None = None) -> Iterator[DatasetItem]:
    mapping = mapping or FieldMapping()
    for position, (line, row) in enumerate(rows):
        yield to_item(row, line, position, mapping)


def to_item(row: dict[str, Any], line: int, position: int, mapping: FieldMapping) -> DatasetItem:
    item_id = _text(row.get(mapping.id_field or "id") or row.get("task_id") or f"item-{position + 1}")
    if mapping.question_field or mapping.answer_field or mapping.kind:
        return _mapped(row, line, item_id, mapping)
    if {"prompt", "test", "entry_point"} <= row.keys():
        return DatasetItem(
            id=item_id,
            kind=Kind.CODE,
            question=_required(row, "prompt", line),
            answer=_required(row, "test", line),
            entry_point=_required(row, "entry_point", line),
        )
    if "question" not in row or "answer" not in row:
        raise DatasetError(
            "no known layout (question+answer, with choices for multiple choice; prompt+test+entry_point for code):"
            " name the fields with --question-field and --answer-field",
            line,
        )
    question = _required(row, "question", line)
    choices = _choices(row, None, line)
    if choices:
        return DatasetItem(
            id=item_id,
            kind=Kind.MULTIPLE_CHOICE,
            question=question,
            choices=choices,
            answer=_letter(row, choices, line),
        )
    answer = _text(row["answer"])
    final = _GSM8K_FINAL.search(answer)
    if final:
        return DatasetItem(id=item_id, kind=Kind.NUMBER, question=question, answer=_number(final.group(1), line))
    return DatasetItem(id=item_id, kind=Kind.TEXT, question=question, answer=answer.strip())


def _mapped(row: dict[str, Any], line: int, item_id: str, mapping: FieldMapping) -> DatasetItem:
    question = _required(row, mapping.question_field or "question", line)
    answer_field = mapping.answer_field or "answer"
    choices = _choices(row, mapping.choices_field, line)
    kind = mapping.kind or (Kind.MULTIPLE_CHOICE if choices else Kind.TEXT)
    if kind is Kind.MULTIPLE_CHOICE:
        if not choices:
            raise DatasetError("multiple choice without choices: name them with --choices-field", line)
        return DatasetItem(
            id=item_id,
            kind=kind,
            question=question,
            choices=choices,
            answer=_letter({"answer": row.get(answer_field)}, choices, line),
        )
    answer = _required(row, answer_field, line)
    if kind is Kind.NUMBER:
        final = _GSM8K_FINAL.search(answer)
        return DatasetItem(
            id=item_id, kind=kind, question=question, answer=_number(final.group(1) if final else answer, line)
        )
    if kind is Kind.CODE:
        raise DatasetError("code items need the HumanEval layout (prompt, test, entry_point)", line)
    return DatasetItem(id=item_id, kind=kind, question=question, answer=answer.strip())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _required(row: dict[str, Any], field: str, line: int) -> str:
    value = row.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DatasetError(f"field {field!r} is missing or empty", line)
    return _text(value)


def _choices(row: dict[str, Any], field: str | None, line: int) -> list[str] | None:
    if field is not None or "choices" in row:
        value = row.get(field or "choices")
        if isinstance(value, dict) and isinstance(value.get("text"), list):  # {"label": [...], "text": [...]}
            value = value["text"]
        if isinstance(value, str):
            value = [part.strip() for part in value.split("|")]
        if not isinstance(value, list) or not 2 <= len(value) <= len(LETTERS):
            raise DatasetError(f"choices must be a list of 2 to {len(LETTERS)} answers", line)
        return [_text(choice) for choice in value]
    for columns in _CHOICE_COLUMNS:
        present = [row[c] for c in columns if c in row and row[c] not in (None, "")]
        if len(present) >= 2:
            return [_text(choice) for choice in present]
    return None


def _letter(row: dict[str, Any], choices: list[str], line: int) -> str:
    value = row.get("answer")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(choices):
        return LETTERS[value]
    if isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in LETTERS[: len(choices)]:
        return value.strip().upper()
    raise DatasetError(
        f"answer {value!r} is not a letter A-{LETTERS[len(choices) - 1]} nor an index 0-{len(choices) - 1}", line
    )


def _number(text: str, line: int) -> str:
    cleaned = text.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        float(cleaned)
    except ValueError:
        raise DatasetError(f"answer {text!r} is not a number", line) from None
    return cleaned


def dataset_kind(items: list[DatasetItem]) -> Kind:
    kinds = {item.kind for item in items}
    return kinds.pop() if len(kinds) == 1 else Kind.TEXT
