"""The README and docs/ stand on their own: every link in them resolves to a file of this
repository (and, into a markdown file, to one of its headings), and none leaves it.

The API documents in docs/reference/ are kept exactly as they were handed over, links
included (sandbox-api.md's user guide is not here), so they are not checked; the
README beside them is ours and is.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from tests.support import ROOT

PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "docs" / "reference" / "README.md"])

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
AUTOLINK = re.compile(r"<([a-z][a-z0-9+.-]*:[^>\s]*)>", re.I)
# GitHub links a bare URL in prose too; trailing punctuation is the sentence's.
BARE_URL = re.compile(r"(?<![\w(<])(?:https?|ftp)://[^\s<>()\[\]]*[^\s<>()\[\].,;:!?'\"]", re.I)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)


def prose(text: str) -> str:
    """The text outside code blocks and code spans, where a link is a link."""
    return CODE_SPAN.sub(" ", FENCE.sub(" ", text))


def links(markdown: str) -> list[str]:
    text = prose(markdown)
    found = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text) + AUTOLINK.findall(text)
    return found + BARE_URL.findall(INLINE_LINK.sub(" ", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation but `-` and
    `_` dropped, spaces to `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(FENCE.sub(" ", page.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return frozenset(result)


def problem(page: Path, target: str) -> str | None:
    """What is wrong with a link from `page` to `target`, if anything."""
    if SCHEME.match(target) or target.startswith("//"):
        return "leaves the repository"
    path, _, anchor = target.partition("#")
    if path.startswith("/"):
        return "is an absolute path: write it relative to the page"
    resolved = (page.parent / path).resolve() if path else page
    if not resolved.is_relative_to(ROOT):
        return "leaves the repository"
    if not resolved.exists():
        return f"names {resolved.relative_to(ROOT)}, which is not in the repository"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"names #{anchor}, not a heading of {resolved.relative_to(ROOT)}"
    return None


def test_the_pages_checked_are_the_readme_and_docs():
    names = {page.relative_to(ROOT).as_posix() for page in PAGES}
    assert {"README.md", "docs/architecture.md", "docs/api.md", "docs/reference/README.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_link_resolves_inside_the_repository(page):
    broken = [f"{target}: {why}" for target in links(page.read_text()) if (why := problem(page, target))]
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_the_checker_sees_what_it_must():
    """The reader of links against a page made for it, so a passing run means something."""
    page = ROOT / "docs" / "api.md"
    sample = (
        "[in](api.md#files) [gone](missing.md) [out](https://example.com) <https://example.org>\n"
        "see http://example.net/x, `[code](nowhere.md)` and [up](../../etc/passwd) [h](#no-such)\n"
        "```\n[fenced](nowhere.md)\n```\n[ref]: ../README.md#how-it-is-built\n"
    )
    verdicts = {target: problem(page, target) for target in links(sample)}
    assert set(verdicts) == {
        "api.md#files",
        "missing.md",
        "https://example.com",
        "https://example.org",
        "http://example.net/x",
        "../../etc/passwd",
        "#no-such",
        "../README.md#how-it-is-built",
    }, verdicts
    assert verdicts["api.md#files"] is None and verdicts["../README.md#how-it-is-built"] is None
    assert all(
        why for target, why in verdicts.items() if target not in ("api.md#files", "../README.md#how-it-is-built")
    )
    assert slug("`/ws`") == "ws" and slug("Network and allowed_hosts") == "network-and-allowed_hosts"
