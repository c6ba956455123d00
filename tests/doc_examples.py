"""The request examples of an API document (docs/reference/*.md), read from its markdown.

An endpoint is declared by a code block holding just `METHOD /path` (or a `ws://` URL)
or by an `**Endpoint:** `...`` line; a heading of level 1-3 ends it. A request example
is any of:

- a JSON block under a label (the heading or prose line just before it) that says
  "Request": the endpoint's body; "Message Format" under a WebSocket endpoint: a message;
- a block `METHOD /path` followed by JSON (a request written out), or `METHOD /path?query`;
- a block labelled "multipart/form-data" of `field: value` lines;
- every `curl` command, with its method, headers, `-d` JSON body or `-F` form fields.

A JSON block whose label says neither request nor response, a request body that is not
JSON and a curl option this reader does not know are `problems`: the test fails on them
rather than skip an example it cannot send.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
REQUEST_LINE = re.compile(rf"^({'|'.join(METHODS)})\s+(/\S*)$")
WS_URL = re.compile(r"^wss?://[^/\s]+(/\S*)$")
ENDPOINT_LINE = re.compile(r"^\*\*Endpoint:\*\*\s*`([^`]+)`")
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
# The document's notes on a form field, not part of its value.
FORM_NOTE = re.compile(r"\s+\((?:optional|required)\)$")
BINARY = "[binary data]"


@dataclass(frozen=True)
class Example:
    """One request as a document shows it. `path` is as written there (a placeholder such
    as `{sandbox_id}` or a query string included); `absolute` says whether it is the whole
    URL path (a curl or WebSocket URL) or an endpoint line, which a document may write
    relative to its base URL."""

    document: str
    line: int
    kind: str  # body, request, query, form, curl, message
    method: str  # an HTTP method, or WS
    path: str
    absolute: bool
    body: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # form field -> file name ("" when none is given)
    headers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.document}:{self.line} {self.kind} {self.method} {self.path}"


@dataclass
class Reading:
    examples: list[Example] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    endpoints: list[tuple[str, str, bool]] = field(default_factory=list)  # every one declared: method, path, absolute


@dataclass
class _Block:
    line: int
    info: str
    text: str
    label: str


def read_examples(path: Path) -> Reading:
    reading = Reading()
    reader = _Reader(path.name, reading)
    for block in _blocks(path.read_text(), reader):
        reader.block(block)
    return reading


def _blocks(text: str, reader: _Reader):
    """The fenced blocks, each with its label; prose lines move the reader's endpoint."""
    label, fence, info, start, body = "", None, "", 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if fence is not None:
            if stripped == fence:
                yield _Block(start, info, "\n".join(body), label)
                fence, body = None, []
            else:
                body.append(line)
            continue
        if stripped.startswith("```"):
            fence, info, start = "```", stripped[3:].strip().lower(), number
            continue
        if not stripped:
            continue
        heading = HEADING.match(stripped)
        if heading:
            if len(heading.group(1)) <= 3:
                reader.endpoint = None
            label = heading.group(2)
            continue
        endpoint = ENDPOINT_LINE.match(stripped)
        if endpoint:
            reader.declare(endpoint.group(1).strip(), number)
        label = stripped


class _Reader:
    def __init__(self, document: str, reading: Reading) -> None:
        self.document = document
        self.reading = reading
        self.endpoint: tuple[str, str, bool] | None = None  # method, path, absolute

    def problem(self, line: int, text: str) -> None:
        self.reading.problems.append(f"{self.document}:{line}: {text}")

    def add(self, line: int, kind: str, method: str, path: str, absolute: bool, **parts: Any) -> None:
        self.reading.examples.append(Example(self.document, line, kind, method, path, absolute, **parts))

    def declare(self, text: str, line: int) -> bool:
        """Take `text` as an endpoint if it is one."""
        request = REQUEST_LINE.match(text)
        if request:
            self.endpoint = (request.group(1), request.group(2), False)
            self.reading.endpoints.append(self.endpoint)
            if "?" in request.group(2):
                self.add(line, "query", request.group(1), request.group(2), False)
            return True
        ws = WS_URL.match(text)
        if ws:
            self.endpoint = ("WS", ws.group(1), True)
            self.reading.endpoints.append(self.endpoint)
            return True
        return False

    def block(self, block: _Block) -> None:
        lines = [line for line in block.text.splitlines() if line.strip()]
        commands = [line for line in lines if not line.lstrip().startswith("#")]
        if any(line.lstrip().startswith("curl ") for line in commands):
            self.curls(block)
        elif len(commands) > 1 and all(REQUEST_LINE.match(line.strip()) for line in commands):
            for line in commands:  # several endpoints at once: none of them is the one a body is for
                self.declare(line.strip(), block.line)
            self.endpoint = None
        elif commands and (request := REQUEST_LINE.match(commands[0].strip())):
            self.declare(commands[0].strip(), block.line)
            rest = "\n".join(commands[1:])
            if rest.strip():
                body = self.json(block.line, rest)
                if body is not None:
                    self.add(block.line, "request", request.group(1), request.group(2), False, body=body)
        elif len(commands) == 1 and WS_URL.match(commands[0].strip()):
            self.declare(commands[0].strip(), block.line)
        elif block.info == "json" or block.text.lstrip().startswith("{"):
            self.json_block(block)
        elif "multipart/form-data" in block.label:
            self.form(block, commands)
        elif _says_request(block.label):
            self.problem(block.line, f"a request block ({block.label!r}) this reader cannot read")

    def json_block(self, block: _Block) -> None:
        label = block.label.lower()
        if _says_request(label):
            kind = "body"
        elif "message format" in label:
            kind = "message"
        elif "response" in label or "error" in label:
            return
        else:
            self.problem(block.line, f"a JSON block under {block.label!r}: neither a request nor a response")
            return
        if self.endpoint is None:
            self.problem(block.line, f"a {kind} example ({block.label!r}) under no endpoint")
            return
        method, path, absolute = self.endpoint
        if (kind == "message") != (method == "WS"):
            self.problem(block.line, f"a {kind} example ({block.label!r}) for {method} {path}")
            return
        body = self.json(block.line, block.text)
        if body is not None:
            self.add(block.line, kind, method, path, absolute, body=body)

    def form(self, block: _Block, lines: list[str]) -> None:
        if self.endpoint is None:
            self.problem(block.line, "a form example under no endpoint")
            return
        method, path, absolute = self.endpoint
        form, files = {}, {}
        for line in lines:
            name, sep, value = line.partition(":")
            if not sep:
                self.problem(block.line, f"a form line that is not `field: value`: {line!r}")
                return
            value = FORM_NOTE.sub("", value.strip())
            if value == BINARY:
                files[name.strip()] = ""
            else:
                form[name.strip()] = value
        self.add(block.line, "form", method, path, absolute, form=form, files=files)

    def json(self, line: int, text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            self.problem(line, f"a request body that is not JSON ({exc})")
            return None

    def curls(self, block: _Block) -> None:
        try:
            words = shlex.split(block.text.replace("\\\n", " "), comments=True)
        except ValueError as exc:
            self.problem(block.line, f"curl commands shlex cannot split ({exc})")
            return
        starts = [i for i, word in enumerate(words) if word == "curl"]
        for start, end in zip(starts, [*starts[1:], len(words)], strict=True):
            self.curl(block.line, words[start + 1 : end])

    def curl(self, line: int, words: list[str]) -> None:
        method, url, data = None, None, None
        headers: dict[str, str] = {}
        form: dict[str, str] = {}
        files: dict[str, str] = {}
        args = iter(words)
        for word in args:
            if word in ("-s", "--silent"):
                continue
            if word in ("-X", "--request"):
                method = next(args)
            elif word in ("-H", "--header"):
                name, _, value = next(args).partition(":")
                headers[name.strip()] = value.strip()
            elif word in ("-d", "--data", "--data-raw"):
                data = next(args)
            elif word in ("-F", "--form"):
                name, _, value = next(args).partition("=")
                if value.startswith("@"):
                    files[name] = value[1:]
                else:
                    form[name] = value
            elif word.startswith(("http://", "https://")) and url is None:
                url = word
            else:
                self.problem(line, f"a curl argument this reader does not know: {word!r}")
                return
        if url is None:
            self.problem(line, "a curl command without a URL")
            return
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        method = method or ("POST" if data is not None or form or files else "GET")
        body = None if data is None else self.json(line, data)
        if data is not None and body is None:
            return
        self.add(line, "curl", method, path, True, body=body, form=form, files=files, headers=headers)


def _says_request(label: str) -> bool:
    """Whether a label ("**Request Body:**", "#### Request Body", "Request (multipart/...)")
    introduces a request."""
    return label.strip("*#: ").lower().startswith("request")
