"""Prompts and suites as versioned YAML files: DATA_DIR/prompts and DATA_DIR/suites,
above the ones the appliance ships (this package's shipped/ folder: the document's
`example` prompt and `example-tests` suite).

Every .yaml/.yml file under those folders is read (a file an operator drops there is
listed at the next request); the API writes DATA_DIR/<kind>/<name>/<version>.yaml. A
file holds one prompt or suite; `name` defaults to the file's stem and `version` to
"1.0". Versions are never rewritten: saving an existing name and version with other
content is a 409, the same content is a no-op, and a save without a version gets the
one after the latest. A name and version in DATA_DIR hides the shipped one. A file that
cannot be read is left out and said once in the log.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec
import yaml

from appliance.core.errors import Conflict, NotFound, invalid_fields
from appliance.core.identity import EXECUTE, READ, Identity
from appliance.core.llm.prompts import (
    Prompt,
    PromptDetail,
    PromptFields,
    PromptSummary,
    Suite,
    SuiteFields,
    SuiteSummary,
    next_version,
    prompt_problems,
    suite_problems,
    version_key,
    with_case_ids,
)
from appliance.core.llm.templates import variables
from appliance.services.access.auth import require_permission

log = logging.getLogger(__name__)

BUILTIN = Path(__file__).resolve().parent / "shipped"
SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 64 * 1024 * 1024
Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

T = TypeVar("T", Prompt, Suite)


class Entry(Generic[T]):
    def __init__(self, value: T, path: Path, source: str) -> None:
        self.value: T = value
        self.path = path
        self.source = source


def _as_text(data: dict[str, Any], key: str) -> None:
    if isinstance(data.get(key), int | float) and not isinstance(data.get(key), bool):
        data[key] = str(data[key])


def _prepared(data: Any, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("the file does not hold a YAML mapping")
    data.setdefault("name", path.stem)
    for key in ("name", "version", "prompt_version"):
        _as_text(data, key)
    for case in data.get("cases") or []:
        if isinstance(case, dict):
            _as_text(case, "id")
    return data


def _said(problems: dict[str, list[str]]) -> str:
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in problems.items())


def decode_prompt(data: Any, path: Path) -> Prompt:
    prompt = msgspec.convert(_prepared(data, path), Prompt)
    problems = prompt_problems(prompt)
    if problems:
        raise ValueError(_said(problems))
    return prompt


def decode_suite(data: Any, path: Path) -> Suite:
    suite = with_case_ids(msgspec.convert(_prepared(data, path), Suite))
    problems = suite_problems(suite)
    if problems:
        raise ValueError(_said(problems))
    return suite


class Folder(Generic[T]):
    """One kind across the shipped folder and DATA_DIR's, re-read when files change."""

    def __init__(self, decode: Callable[[Any, Path], T], folders: list[tuple[Path, str]]) -> None:
        self._decode: Callable[[Any, Path], T] = decode
        self._folders = folders
        self._files: dict[Path, tuple[tuple[int, int], Entry[T] | None]] = {}

    def scan(self) -> dict[str, dict[str, Entry[T]]]:
        """name -> version -> entry (DATA_DIR's over the shipped ones)."""
        found: dict[str, dict[str, Entry[T]]] = {}
        seen: set[Path] = set()
        for folder, source in self._folders:
            for path in sorted(_yaml_files(folder)):
                seen.add(path)
                entry = self._read(path, source)
                if entry is None:
                    continue
                versions = found.setdefault(entry.value.name, {})
                earlier = versions.get(entry.value.version)
                if earlier is not None and earlier.source == source:
                    log.warning(
                        "%s repeats %s %s of %s; it is left out",
                        path,
                        entry.value.name,
                        entry.value.version,
                        earlier.path,
                    )
                    continue
                versions[entry.value.version] = entry
        for gone in set(self._files) - seen:
            del self._files[gone]
        return found

    def _read(self, path: Path, source: str) -> Entry[T] | None:
        try:
            info = path.stat()
        except OSError:
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        known = self._files.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        entry: Entry[T] | None = None
        try:
            if info.st_size > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
            with open(path, encoding="utf-8") as handle:
                entry = Entry(self._decode(yaml.load(handle, Loader=Loader), path), path, source)
        except (OSError, ValueError, yaml.YAMLError, msgspec.ValidationError) as exc:
            log.warning("%s is left out of the library: %s", path, str(exc).splitlines()[0][:300])
        self._files[path] = (stamp, entry)
        return entry


def _yaml_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(root) / f for f in files if f.endswith(SUFFIXES) and not f.startswith("."))
    return found


def _dumper() -> Any:
    class BlockDumper(Dumper):  # type: ignore[misc]
        pass

    def block(dumper: Any, text: str) -> Any:
        style = "|" if "\n" in text else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)

    BlockDumper.add_representer(str, block)
    return BlockDumper


def to_yaml(value: Prompt | Suite) -> str:
    text: str = yaml.dump(msgspec.to_builtins(value), Dumper=_dumper(), sort_keys=False, allow_unicode=True, width=120)
    return text


def _latest(versions: dict[str, Entry[T]]) -> Entry[T]:
    return versions[max(versions, key=version_key)]


def _ordered(versions: dict[str, Entry[T]]) -> list[str]:
    return sorted(versions, key=version_key)


class PromptLibrary:
    def __init__(self, data_path: Path, builtin: Path = BUILTIN) -> None:
        self._data = data_path
        self._prompts: Folder[Prompt] = Folder(
            decode_prompt, [(builtin / "prompts", "builtin"), (data_path / "prompts", "data")]
        )
        self._suites: Folder[Suite] = Folder(
            decode_suite, [(builtin / "suites", "builtin"), (data_path / "suites", "data")]
        )
        self._lock = asyncio.Lock()

    async def _scan(self, folder: Folder[T]) -> dict[str, dict[str, Entry[T]]]:
        async with self._lock:
            return await asyncio.to_thread(folder.scan)

    # --- prompts ----------------------------------------------------------------------------

    async def list_prompts(self, identity: Identity) -> list[PromptSummary]:
        require_permission(identity, READ)
        found = await self._scan(self._prompts)
        return [self._prompt_summary(found[name]) for name in sorted(found)]

    @staticmethod
    def _prompt_summary(versions: dict[str, Entry[Prompt]]) -> PromptSummary:
        latest = _latest(versions)
        p = latest.value
        return PromptSummary(
            name=p.name,
            version=p.version,
            is_system_prompt=p.is_system_prompt,
            description=p.description,
            versions=_ordered(versions),
            source=latest.source,
        )

    async def prompt_detail(self, identity: Identity, name: str, version: str | None = None) -> PromptDetail:
        require_permission(identity, READ)
        return await self._detail(name, version)

    async def _detail(self, name: str, version: str | None) -> PromptDetail:
        found = await self._scan(self._prompts)
        entry = self._pick(found, name, version, "prompt", "GET /api/v1/prompts")
        p = entry.value
        texts = [p.template, *(t.content for t in p.messages)]
        return PromptDetail(
            name=p.name,
            version=p.version,
            is_system_prompt=p.is_system_prompt,
            template=p.template,
            messages=p.messages,
            description=p.description,
            parameters=p.parameters,
            variables=list(dict.fromkeys(v for text in texts for v in variables(text))),
            versions=_ordered(found[name]),
            source=entry.source,
        )

    async def prompt(self, name: str, version: str | None = None) -> Prompt:
        """For a run: the caller's permission to run was checked by the run."""
        return self._pick(await self._scan(self._prompts), name, version, "prompt", "GET /api/v1/prompts").value

    async def save_prompt(self, identity: Identity, fields: PromptFields) -> tuple[PromptDetail, bool]:
        """(the prompt as stored, whether it is new)."""
        require_permission(identity, EXECUTE)
        name = (fields.name or "").strip()
        async with self._lock:
            found = await asyncio.to_thread(self._prompts.scan)
            version = self._version(found.get(name), fields.version)
            prompt = fields.prompt(name, version)
            problems = prompt_problems(prompt)
            if problems:
                raise invalid_fields(problems)
            created = self._write(found.get(name), prompt, "prompts")
        return await self._detail(name, version), created

    # --- suites -----------------------------------------------------------------------------

    async def list_suites(self, identity: Identity) -> list[SuiteSummary]:
        require_permission(identity, READ)
        found = await self._scan(self._suites)
        return [self._suite_summary(found[name]) for name in sorted(found)]

    @staticmethod
    def _suite_summary(versions: dict[str, Entry[Suite]], version: str | None = None) -> SuiteSummary:
        entry = versions[version] if version else _latest(versions)
        s = entry.value
        return SuiteSummary(
            name=s.name,
            prompt=s.prompt,
            case_count=len(s.cases),
            version=s.version,
            description=s.description,
            versions=_ordered(versions),
            source=entry.source,
        )

    async def suite_detail(self, identity: Identity, name: str, version: str | None = None) -> Suite:
        require_permission(identity, READ)
        return await self.suite(name, version)

    async def suite(self, name: str, version: str | None = None) -> Suite:
        return self._pick(await self._scan(self._suites), name, version, "suite", "GET /api/v1/suites").value

    async def save_suite(self, identity: Identity, fields: SuiteFields) -> tuple[SuiteSummary, bool]:
        require_permission(identity, EXECUTE)
        return (await self.save_suites(identity, [], [fields]))[1][0]

    async def save_suites(
        self, identity: Identity, prompts: list[PromptFields], suites: list[SuiteFields]
    ) -> tuple[list[tuple[PromptSummary, bool]], list[tuple[SuiteSummary, bool]]]:
        """Prompts and the suites that use them, all checked before any is written."""
        require_permission(identity, EXECUTE)
        async with self._lock:
            found_prompts = await asyncio.to_thread(self._prompts.scan)
            found_suites = await asyncio.to_thread(self._suites.scan)
            new_prompts = [
                f.prompt((f.name or "").strip(), self._version(found_prompts.get((f.name or "").strip()), f.version))
                for f in prompts
            ]
            new_suites = [
                with_case_ids(
                    f.suite((f.name or "").strip(), self._version(found_suites.get((f.name or "").strip()), f.version))
                )
                for f in suites
            ]
            problems: dict[str, list[str]] = {}
            for index, prompt in enumerate(new_prompts):
                where = f"prompts[{index}]." if len(prompts) > 0 else ""
                problems.update({where + k: v for k, v in prompt_problems(prompt).items()})
            named = {p.name for p in new_prompts}
            for index, suite in enumerate(new_suites):
                where = f"suites[{index}]." if prompts else ""
                problems.update({where + k: v for k, v in suite_problems(suite).items()})
                if suite.prompt and suite.prompt not in found_prompts and suite.prompt not in named:
                    problems[where + "prompt"] = [f"no prompt {suite.prompt!r}: create it first (POST /api/v1/prompts)"]
            if problems:
                raise invalid_fields(problems)
            for prompt in new_prompts:
                self._check_free(found_prompts.get(prompt.name), prompt)
            for suite in new_suites:
                self._check_free(found_suites.get(suite.name), suite)
            made_prompts = [(p, self._write(found_prompts.get(p.name), p, "prompts")) for p in new_prompts]
            made_suites = [(s, self._write(found_suites.get(s.name), s, "suites")) for s in new_suites]
            found_prompts = await asyncio.to_thread(self._prompts.scan)
            found_suites = await asyncio.to_thread(self._suites.scan)
        return (
            [(self._prompt_summary(found_prompts[p.name]), made) for p, made in made_prompts],
            [(self._suite_summary(found_suites[s.name], s.version), made) for s, made in made_suites],
        )

    # --- both -------------------------------------------------------------------------------

    @staticmethod
    def _pick(
        found: dict[str, dict[str, Entry[T]]], name: str, version: str | None, kind: str, listing: str
    ) -> Entry[T]:
        versions = found.get(name)
        if not versions:
            raise NotFound(f"{kind} {name!r} not found ({listing} lists them)")
        if version is None:
            return _latest(versions)
        if version not in versions:
            raise NotFound(f"{kind} {name!r} has no version {version!r}; it has {', '.join(_ordered(versions))}")
        return versions[version]

    @staticmethod
    def _version(versions: dict[str, Entry[T]] | None, asked: str | None) -> str:
        if asked:
            return asked.strip()
        if not versions:
            return "1.0"
        return next_version(_latest(versions).value.version)

    @staticmethod
    def _check_free(versions: dict[str, Entry[T]] | None, value: T) -> None:
        kind = "prompt" if isinstance(value, Prompt) else "suite"
        existing = (versions or {}).get(value.version)
        if existing is not None and existing.value != value:
            raise Conflict(
                f"{kind} {value.name!r} version {value.version} exists with other content; versions are never "
                "rewritten: give another version, or leave version out for the next one",
                details={"field": "version", "reason": "exists"},
            )

    def _write(self, versions: dict[str, Entry[T]] | None, value: T, folder: str) -> bool:
        """Write `value` unless that very version exists; whether it was written."""
        self._check_free(versions, value)
        if (versions or {}).get(value.version) is not None:
            return False
        path = self._data / folder / value.name / f"{value.version}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".yaml.tmp")
        temporary.write_text(to_yaml(value), encoding="utf-8")
        os.replace(temporary, path)
        return True
