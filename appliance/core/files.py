"""Names of files a request asks to place in the sandbox work dir.

They are checked before anything is stored: a name must stay inside the work dir
whatever the runner or a later reader does with it, so absolute paths, `..`, NUL and
other control characters, empty components and over-long names are refused outright
rather than cleaned up.
"""

from __future__ import annotations

# Linux's NAME_MAX and PATH_MAX: the limits of every path a request names (work dir files
# here, a sandbox's files in runtime/confined_files.py).
MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_FILES = 100


def file_name_problem(name: str) -> str | None:
    """Why `name` cannot be a file in the work dir, or None when it can."""
    shown = repr(name if len(name) <= 80 else name[:77] + "...")
    if not name:
        return "a file name is empty"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return f"file name {shown} contains NUL or another control character"
    if name.startswith("/") or name.startswith("\\"):
        return f"file name {shown} is absolute; use a path relative to the work dir"
    if "\\" in name:
        return f"file name {shown} contains a backslash; separate directories with /"
    if len(name.encode()) > MAX_PATH_BYTES:
        return f"file name {shown} is longer than {MAX_PATH_BYTES} bytes"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return f"file name {shown} has an empty, '.' or '..' component; it must stay inside the work dir"
        if len(part.encode()) > MAX_COMPONENT_BYTES:
            return f"file name {shown} has a component longer than {MAX_COMPONENT_BYTES} bytes"
    return None
