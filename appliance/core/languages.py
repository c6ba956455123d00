"""The languages user code can be written in, and how each one is run.

A language names the runtime image it runs in (a key of the image catalogue in
`appliance.runtime.images`), the file its source is written to inside the sandbox work
dir, and the shell line that compiles (if needed) and runs it. Several languages may
share one image: bash runs in the python image, c and cpp in the gcc image; rust, go and
java have an image each.
"""

from __future__ import annotations

import msgspec

WORK_DIR = "/work"


class Language(msgspec.Struct, frozen=True):
    name: str
    image: str
    source_file: str
    # Run by the shell runner inside the container after the source is in place; `exec`
    # so the user's program is the process that receives signals and whose exit code we
    # read. Python's line is the documented equivalent only: its runner is a pre-forked
    # interpreter that runs main.py itself (see runtime/runners.py).
    run: str
    aliases: tuple[str, ...] = ()


LANGUAGES: dict[str, Language] = {
    lang.name: lang
    for lang in (
        Language("python", "python", "main.py", "exec python3 -u main.py", ("python3", "py")),
        Language("javascript", "node", "main.js", "exec node main.js", ("nodejs", "node", "js")),
        Language("bash", "python", "main.sh", "exec bash main.sh", ("sh", "shell")),
        Language("c", "gcc", "main.c", "gcc -O2 -o main main.c -lm && exec ./main"),
        Language("cpp", "gcc", "main.cpp", "g++ -O2 -o main main.cpp && exec ./main", ("c++",)),
        # -O: a debug build of iterator-heavy code runs ~10x slower, while optimising
        # costs little. One codegen unit compiles faster than the default 16 on one CPU
        # (0.7 s against 1.2 s for a 30-line program) and keeps rustc to one LLVM thread
        # under the process limit; without std's debug info the binary is 0.5 MB, not 11.
        Language(
            "rust",
            "rust",
            "main.rs",
            "rustc -O -C codegen-units=1 -C strip=debuginfo -o main main.rs && exec ./main",
            ("rs",),
        ),
        # The image's environment points go's cache and temporary files at the work dir.
        Language("go", "go", "main.go", "go build -o main main.go && exec ./main", ("golang",)),
        # Single-file source launch (JDK 11+): javac runs inside the program's own JVM, one
        # start instead of two. Tuned for short programs on one CPU under a 64-process
        # limit: the serial GC and one C1 compiler thread (13 threads in all; startup
        # 0.5 s against 0.8 s with the defaults), no perf-data file in /tmp, and half
        # the container's memory for the heap, so running out is an OutOfMemoryError
        # rather than the container being killed.
        Language(
            "java",
            "java",
            "Main.java",
            "exec java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:CICompilerCount=1"
            " -XX:-UsePerfData -XX:MaxRAMPercentage=50 -Xshare:auto Main.java",
        ),
    )
}

_BY_ALIAS = {alias: lang for lang in LANGUAGES.values() for alias in (lang.name, *lang.aliases)}


def find_language(name: str) -> Language | None:
    """The language called `name` (or one of its aliases), or None."""
    return _BY_ALIAS.get(name.strip().lower())


def supported_names() -> list[str]:
    return sorted(LANGUAGES)
