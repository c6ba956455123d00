"""Sandbox templates: one per language, derived from the runtime image catalogue.

A template is what a sandbox starts from: a language, the runtime image it runs in (built
from Debian bookworm packages, `runtime/images.py`), the environment that image sets, and
a starter program under the file name the language runs. Nothing about templates is
stored: the catalogue is code (`core/languages.py`, the image recipes), and the Docker
engine tells whether an image is built, its size and date, and which package versions
it holds (read once per image build from its dpkg database, then cached).

Template ids are `basic-<language>` ("basic-python", as in sandbox-api.md). A sandbox
create request may also say `"template": "basic"` with `"runtime": "python"`, meaning
the basic template of that runtime: `resolve_template` turns either into what the
sandbox needs.
"""

from __future__ import annotations

import asyncio
import logging
import re

import msgspec

from appliance.core.errors import NotFound, ValidationError
from appliance.core.identity import Identity
from appliance.core.languages import LANGUAGES, Language, find_language, supported_names
from appliance.runtime import image_contents, images
from appliance.runtime.engine import DockerEngine
from appliance.services.access.auth import require_key

log = logging.getLogger(__name__)

TEMPLATE_PREFIX = "basic-"
GENERIC_TEMPLATE = "basic"  # with a runtime: that runtime's basic template


class _Runtime(msgspec.Struct, frozen=True):
    title: str
    version_package: str  # a regular expression: the package whose version is the runtime's
    starter: str  # a program that prints a greeting, as the file the language runs


_RUNTIMES: dict[str, _Runtime] = {
    "python": _Runtime("Python", r"python3", 'print("Hello, World!")\n'),
    "javascript": _Runtime("JavaScript (Node.js)", r"nodejs", 'console.log("Hello, World!");\n'),
    "bash": _Runtime("Bash", r"bash", 'echo "Hello, World!"\n'),
    "c": _Runtime(
        "C", r"gcc", '#include <stdio.h>\n\nint main(void) {\n    puts("Hello, World!");\n    return 0;\n}\n'
    ),
    "cpp": _Runtime(
        "C++", r"g\+\+", '#include <iostream>\n\nint main() {\n    std::cout << "Hello, World!" << std::endl;\n}\n'
    ),
    "rust": _Runtime("Rust", r"rustc", 'fn main() {\n    println!("Hello, World!");\n}\n'),
    "go": _Runtime(
        "Go", r"golang-[0-9.]+-go", 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("Hello, World!")\n}\n'
    ),
    "java": _Runtime(
        "Java",
        r"openjdk-[0-9]+-jdk-headless",
        "public class Main {\n    public static void main(String[] args) {\n"
        '        System.out.println("Hello, World!");\n    }\n}\n',
    ),
}


def _runtime(language: Language) -> _Runtime:
    # A language added without an entry above still gets a template, with no version.
    return _RUNTIMES.get(language.name) or _Runtime(language.name, r"(?!)", "")


class TemplateFile(msgspec.Struct, frozen=True):
    name: str
    content: str


class TemplateRuntime(msgspec.Struct, frozen=True, kw_only=True):
    """What a sandbox made from a template runs: `language` is a key of
    `core.languages.LANGUAGES`, `image` the runtime image ref, `environment` what that
    image sets (already in the image: pass it on only to show or to merge with the
    caller's), `files` the starter program (written only if the caller wants one)."""

    template_id: str
    language: str
    image: str
    environment: dict[str, str]
    files: tuple[TemplateFile, ...]


class TemplateSummary(msgspec.Struct, kw_only=True):
    template_id: str
    name: str
    description: str
    runtime: str  # the language, as `language` of /api/execute and /api/eval names it
    version: str  # the template's: changes whenever the image recipes change
    packages: list[str]  # the Debian packages the image is built from (their dependencies too)
    runtime_version: str | None  # e.g. "3.11.2"; None until the image is built
    available: bool  # whether the image is in the engine now


class TemplateDetails(TemplateSummary, kw_only=True):
    base_image: str
    environment: dict[str, str]
    files: list[TemplateFile]
    source_file: str  # the name the code is written to in the work dir
    run_command: str  # the shell line that compiles (if needed) and runs it
    package_versions: dict[str, str]  # Debian versions of `packages` and the runtime's
    image_size: int | None  # bytes
    image_created: str | None  # UTC ISO 8601 with Z


def template_id(language: Language) -> str:
    return TEMPLATE_PREFIX + language.name


def template_ids() -> list[str]:
    return [template_id(language) for language in LANGUAGES.values()]


def _language_of(template: str) -> Language | None:
    if not template.startswith(TEMPLATE_PREFIX):
        return None
    return LANGUAGES.get(template[len(TEMPLATE_PREFIX) :])


def resolve_template(template: str | None = None, runtime: str | None = None) -> TemplateRuntime:
    """The language, image and environment of a sandbox created with these request fields.

    `template`: a template id ("basic-python"), or "basic" (or None) with `runtime`.
    `runtime`: a language name or alias ("python", "nodejs", ...); with a full template
    id it must name the template's language. Raises ValidationError (400, details
    {"field": "template" | "runtime", "reason": ...}) for an unknown or conflicting one,
    and when neither names a language. Pure: no engine call, the image may be missing."""
    by_runtime = None
    if runtime is not None and (by_runtime := find_language(runtime)) is None:
        raise ValidationError(
            f"unknown runtime {runtime!r}; supported: {', '.join(supported_names())}",
            details={"field": "runtime", "reason": f"Unsupported runtime: {runtime}"},
        )
    language: Language | None
    if template is None or template.strip().lower() == GENERIC_TEMPLATE:
        if by_runtime is None:
            raise ValidationError(
                'say which runtime the sandbox runs: "runtime" (e.g. "python") or a '
                f'"template" id ({", ".join(template_ids())})',
                details={"field": "runtime", "reason": "Missing runtime"},
            )
        language = by_runtime
    else:
        if (language := _language_of(template.strip().lower())) is None:
            raise ValidationError(
                f"unknown template {template!r}; available: {', '.join(template_ids())} "
                "(GET /api/templates lists them)",
                details={"field": "template", "reason": f"Unknown template: {template}"},
            )
        if by_runtime is not None and by_runtime.name != language.name:
            raise ValidationError(
                f"template {template!r} runs {language.name}, not {by_runtime.name}: "
                f'leave out "runtime" or use template {template_id(by_runtime)!r}',
                details={"field": "runtime", "reason": "Runtime does not match the template"},
            )
    return TemplateRuntime(
        template_id=template_id(language),
        language=language.name,
        image=images.image_ref(language.image),
        environment=images.image_environment(language.image),
        files=(TemplateFile(language.source_file, _runtime(language).starter),),
    )


def upstream_version(debian_version: str) -> str:
    """ "2:1.19.8-2" -> "1.19.8", "17.0.19+10-1~deb12u2" -> "17.0.19": no epoch, no
    Debian revision, no repack (+dfsg) or build suffix."""
    version = debian_version.split(":", 1)[-1]
    if "-" in version:
        version = version.rsplit("-", 1)[0]
    return re.split(r"[+~]", version, maxsplit=1)[0]


class TemplateService:
    def __init__(self, engine: DockerEngine) -> None:
        self._engine = engine
        self._packages: dict[str, dict[str, str]] = {}  # image id -> installed packages

    # Any key may read the catalogue (it describes the appliance, not anyone's data).

    async def list_templates(self, identity: Identity) -> list[TemplateSummary]:
        require_key(identity)
        built = await self._built_images()
        return [self._summary(language, *built.get(language.image, (None, {}))) for language in LANGUAGES.values()]

    async def get_template(self, identity: Identity, template: str) -> TemplateDetails:
        """Raises NotFound (404) for an id that is not a template."""
        require_key(identity)
        if (language := _language_of(template)) is None:
            raise NotFound(
                f"no template {template!r}; available: {', '.join(template_ids())}",
                details={"template_id": template, "available": template_ids()},
            )
        image, packages = (await self._built_images([language.image])).get(language.image, (None, {}))
        summary = self._summary(language, image, packages)
        recipe = images.IMAGE_RECIPES[language.image]
        wanted = re.compile(_runtime(language).version_package)
        return TemplateDetails(
            **msgspec.structs.asdict(summary),
            base_image=images.image_ref(language.image),
            environment=images.image_environment(language.image),
            files=[TemplateFile(language.source_file, _runtime(language).starter)],
            source_file=language.source_file,
            run_command=language.run,
            package_versions={
                name: version for name, version in packages.items() if name in recipe.packages or wanted.fullmatch(name)
            },
            image_size=image.size if image else None,
            image_created=image.created if image else None,
        )

    def _summary(
        self, language: Language, image: images.RuntimeImage | None, packages: dict[str, str]
    ) -> TemplateSummary:
        runtime = _runtime(language)
        wanted = re.compile(runtime.version_package)
        found = sorted(version for name, version in packages.items() if wanted.fullmatch(name))
        version = upstream_version(found[-1]) if found else None
        packages_named = list(images.IMAGE_RECIPES[language.image].packages)
        description = (
            f"{runtime.title}{f' {version}' if version else ''} on Debian {images.DEBIAN_SUITE}, "
            f"in the {language.image} runtime image ({', '.join(packages_named)})"
        )
        if image is None:
            description += " (image not built yet: `appliance images build`)"
        return TemplateSummary(
            template_id=template_id(language),
            name=runtime.title,
            description=description,
            runtime=language.name,
            version=images.RUNTIME_IMAGE_VERSION,
            packages=packages_named,
            runtime_version=version,
            available=image is not None,
        )

    async def _built_images(
        self, keys: list[str] | None = None
    ) -> dict[str, tuple[images.RuntimeImage, dict[str, str]]]:
        """The built images (of `keys`, default all) with their installed packages. An
        engine that does not answer means none is built: the catalogue still lists."""
        try:
            # The client is looked up on the engine's thread: making it talks to dockerd.
            rows = await self._engine.call(lambda: images.list_images(self._engine.client))
        except Exception as exc:  # noqa: BLE001 - engine down or refusing: nothing built
            log.warning("templates: cannot ask the Docker engine for the runtime images: %s", exc)
            return {}
        present = [row for row in rows if row.present and (keys is None or row.key in keys)]
        await asyncio.gather(*(self._read_packages(row) for row in present if row.image_id not in self._packages))
        return {row.key: (row, self._packages.get(row.image_id or "", {})) for row in present}

    async def _read_packages(self, image: images.RuntimeImage) -> None:
        try:
            packages = await self._engine.call(
                lambda: image_contents.installed_packages(self._engine.client, image.ref)
            )
        except Exception as exc:  # noqa: BLE001 - versions stay unknown; asked again next time
            log.warning("templates: cannot read the packages of %s: %s", image.ref, exc)
            return
        self._packages[image.image_id or ""] = packages
