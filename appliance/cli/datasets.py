"""`appliance datasets import|list|show|delete`: benchmark datasets on a running
appliance, through its API. An import reads the JSONL or CSV file here with the server's
own rules (core/llm/datasets.py), so a bad row is named before anything is sent, then
sends the items in slices (the first replaces a dataset of that name, the next are
appended), with a progress bar over the items read and then sent."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import msgspec

from appliance.cli.llm import EXIT_FAILED, CliError, _client, _connection, _guarded
from appliance.cli.progress import end_bar, render_bar
from appliance.core.llm.datasets import DatasetError, FieldMapping, Kind, check_name, format_of, read_rows, to_items

SLICE_ITEMS = 500
SLICE_BYTES = 1024 * 1024  # under the server's max_body_bytes (2 MiB by default)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("datasets", help="benchmark datasets").add_subparsers(dest="datasets_command", required=True)
    imported = group.add_parser("import", parents=[common], help="import a JSONL or CSV file, with a progress bar")
    _connection(imported)
    imported.add_argument("file")
    imported.add_argument("--name", help="the dataset's name (default: the file's name without its extension)")
    imported.add_argument("--format", choices=["jsonl", "csv"], help="default: from the file's extension")
    imported.add_argument("--question-field", help="the field holding the question")
    imported.add_argument("--answer-field", help="the field holding the answer")
    imported.add_argument("--choices-field", help="the field holding the choices (a list, or separated by |)")
    imported.add_argument("--id-field", help="the field holding each item's id")
    imported.add_argument("--kind", choices=[k.value for k in Kind if k is not Kind.CODE], help="how answers compare")
    imported.set_defaults(func=_guarded(cmd_import))
    listed = group.add_parser("list", parents=[common], help="list datasets")
    _connection(listed)
    listed.set_defaults(func=_guarded(cmd_list))
    shown = group.add_parser("show", parents=[common], help="print a dataset and its first items as JSON")
    _connection(shown)
    shown.add_argument("name")
    shown.add_argument("--limit", type=int, default=5)
    shown.set_defaults(func=_guarded(cmd_show))
    deleted = group.add_parser("delete", parents=[common], help="delete an imported dataset")
    _connection(deleted)
    deleted.add_argument("name")
    deleted.set_defaults(func=_guarded(cmd_delete))


def _mapping(args: argparse.Namespace) -> FieldMapping | None:
    mapping = FieldMapping(
        question_field=args.question_field,
        answer_field=args.answer_field,
        choices_field=args.choices_field,
        id_field=args.id_field,
        kind=Kind(args.kind) if args.kind else None,
    )
    return mapping if mapping != FieldMapping() else None


def read_items(path: Path, file_format: str, mapping: FieldMapping | None) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text") from None
    items: list[dict[str, Any]] = []
    lines = max(1, text.count("\n"))
    try:
        for item in to_items(read_rows(text, file_format), mapping):
            items.append(msgspec.to_builtins(item))
            if len(items) % 1000 == 0:
                render_bar("read", min(len(items), lines), lines)
    except DatasetError as exc:
        raise CliError(f"{path}: {exc}", EXIT_FAILED) from None
    render_bar("read", len(items), len(items))
    end_bar()
    return items


def _slices(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    slices: list[list[dict[str, Any]]] = [[]]
    size = 0
    for item in items:
        weight = len(json.dumps(item))
        if slices[-1] and (len(slices[-1]) >= SLICE_ITEMS or size + weight > SLICE_BYTES):
            slices.append([])
            size = 0
        slices[-1].append(item)
        size += weight
    return slices


def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    file_format = args.format or format_of(path.name)
    if file_format is None:
        raise CliError(f"{path.name}: cannot tell the format from its extension; pass --format jsonl or --format csv")
    name = args.name or path.name.rsplit(".", 1)[0]
    problem = check_name(name)
    if problem:
        raise CliError(f"{name!r}: {problem}; pass --name")
    items = read_items(path, file_format, _mapping(args))
    if not items:
        raise CliError(f"{path} holds no items", EXIT_FAILED)
    with _client(args) as client:
        sent = 0
        dataset: Any = None
        for number, part in enumerate(_slices(items)):
            dataset = client.import_dataset(name, items=part, source=path.name, append=number > 0)
            sent += len(part)
            render_bar("sent", sent, len(items))
        end_bar()
    print(f"imported {dataset['item_count']} {dataset['kind']} items as dataset {dataset['name']!r}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        datasets = client.list_datasets()
    print(f"{'NAME':<32} {'KIND':<16} {'ITEMS':>7}  SOURCE")
    for d in datasets:
        print(f"{d['name']:<32} {d['kind']:<16} {d['item_count']:>7}  {d['source']}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(json.dumps(client.get_dataset(args.name, limit=args.limit), indent=2))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.delete_dataset(args.name)
    print(f"deleted dataset {args.name!r}")
    return 0
