"""Answers taken out of a model's free text, for benchmark items.

Models reason before they answer, so what counts is the *final* answer, not the first
letter or number written: "A is wrong, the answer is C" answers C, and "5 apples plus 7
makes 12" answers 12. The rules, in order of trust:

- multiple choice: the last explicit answer phrase ("answer is C", "Answer: (C)", "#### C",
  "**C**"); else the last line that is only a letter; else the last letter standing alone
  (an article "A" before a word does not count); else a choice's text written out.
- number: the last `#### N`, else the last "answer is N", else the last number in the text;
  thousands commas, a currency sign and a trailing full stop are not part of it.
- code: the last fenced block (a python one before any other), else the whole text.
"""

from __future__ import annotations

import math
import re

from appliance.core.llm.datasets import LETTERS

_NUMBER = r"-?\$?\s?-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_FINAL_MARK = re.compile(r"####\s*(" + _NUMBER + ")")
_NUMBER_PHRASE = re.compile(r"answer\s*(?:is|:|=)?\s*(?:[:=]\s*)?\**\s*(" + _NUMBER + ")", re.I)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


def _letter_patterns(letters: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    group = f"([{letters}{letters.lower()}])"
    phrase = re.compile(
        r"(?:answer|option|choice)\s*(?:is|would be|will be|should be)?\s*(?:[:=]|is)?\s*[\*\(\[\s]*"
        + f"([{letters}])"
        + r"(?![A-Za-z])"
        + r"|####\s*\(?"
        + f"([{letters}])"
        + r"\b"
        + r"|\*\*\(?"
        + f"([{letters}])"
        + r"\)?\*\*",
        re.I,
    )
    alone_line = re.compile(r"^\s*[\(\[]?" + group + r"[\)\].:]?\s*$", re.M)
    alone = re.compile(r"(?<![A-Za-z'’])[\(\[]?" + f"([{letters}])" + r"[\)\]]?(?![A-Za-z'’])")
    return phrase, alone_line, alone


def extract_choice(text: str, choices: list[str]) -> str | None:
    """The letter the text answers, among as many letters as there are choices."""
    letters = LETTERS[: len(choices)]
    phrase, alone_line, alone = _letter_patterns(letters)
    found = [next(g for g in match.groups() if g) for match in phrase.finditer(text)]
    if found:
        return found[-1].upper()
    lines = alone_line.findall(text)
    if lines:
        return str(lines[-1]).upper()
    standing = [
        match.group(1)
        for match in alone.finditer(text)
        if not (match.group(1) in "AI" and re.match(r"\s+[a-z]", text[match.end() :]))
    ]
    if standing:
        return standing[-1]
    lowered = text.lower()
    written = [(lowered.rfind(choice.lower()), i) for i, choice in enumerate(choices) if choice.strip()]
    written = [(place, i) for place, i in written if place >= 0]
    if written:
        return letters[max(written)[1]]
    return None


def _plain_number(raw: str) -> str:
    negative = raw.strip().startswith("-") or "$-" in raw.replace(" ", "")
    digits = re.sub(r"[^\d.]", "", raw).rstrip(".")
    if not digits:
        return ""
    if "." in digits:
        digits = digits.rstrip("0").rstrip(".") or "0"
    return f"-{digits}" if negative and digits.strip("0.") else digits


def extract_number(text: str) -> str | None:
    """The final number the text answers, as plain digits (no commas or currency)."""
    for pattern in (_FINAL_MARK, _NUMBER_PHRASE):
        found = pattern.findall(text)
        if found:
            return _plain_number(found[-1]) or None
    numbers = _NUMBER_RE.findall(text)
    return _plain_number(numbers[-1]) or None if numbers else None


def numbers_equal(given: str | None, expected: str) -> bool:
    if given is None:
        return False
    try:
        a, b = float(given), float(_plain_number(expected) or expected)
    except ValueError:
        return False
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def extract_code(text: str) -> str:
    """The last fenced block, a python one before any other; else the whole text."""
    blocks: list[tuple[str, str]] = _FENCE.findall(text)
    if not blocks:
        return text.strip("\n")
    python = [code for language, code in blocks if language.lower() in ("python", "py", "python3")]
    return (python or [code for _, code in blocks])[-1].rstrip() + "\n"


def text_equal(given: str, expected: str) -> bool:
    def norm(value: str) -> str:
        return " ".join(value.strip().strip(".").lower().split())

    return norm(given) == norm(expected) or norm(given).endswith(" " + norm(expected))
