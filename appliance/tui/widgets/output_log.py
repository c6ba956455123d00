"""One output stream of an evaluation (stdout or stderr): what the server has so far,
then every `output_chunk` as it arrives, without losing or repeating text where the two
meet."""

from __future__ import annotations

from typing import Any

from textual.widgets import Log

# How far before its expected place in the snapshot a chunk may still be found: chunks and
# the snapshot travel different ways (WebSocket, HTTP) and may pass each other.
ALIGN_SLACK_CHARS = 1024
# A chunk that matches the snapshot's tail most likely crossed it on the way; prefer that
# over "it is new" unless the match is this much further from where it was expected.
NO_OVERLAP_PENALTY_CHARS = 16


class OutputLog(Log):
    """Use: `mark()` when asking the server for the output so far, `load(text)` with its
    answer, `append(chunk)` for each `output_chunk`, `finish(text)` with the final output.

    Chunks carry no offset, so where the snapshot and the chunks overlap is found by
    content: every place in the snapshot's tail where the chunks received since `mark()`
    fit is a candidate, the one nearest to where they were expected wins (a real overlap
    is preferred to none), and candidates that a later chunk contradicts drop out.
    `finish` sets the stored output, which repairs any guess that was wrong (repetitive
    output can fit in several places)."""

    DEFAULT_CSS = """
    OutputLog { height: 1fr; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(highlight=False, auto_scroll=True, **kwargs)
        self.text = ""  # what is shown
        self.final = False  # set by `finish`: nothing later changes the text
        self._awaiting = False  # between mark() and load()
        self._snapshot: str | None = None  # set while aligning chunks with it
        self._stream = ""  # chunks received since mark()
        self._expected = 0  # where in the snapshot the chunks since mark() should start
        self._candidates: list[int] = []

    def mark(self) -> None:
        if self._snapshot is not None:
            self._snapshot = None  # keep what is shown; a new snapshot follows
        self._awaiting, self._stream = True, ""

    def load(self, snapshot: str) -> None:
        self._awaiting = False
        if self.final:
            return
        self._snapshot = snapshot
        length = len(snapshot)
        # Chunks received since mark() were most likely sent before the snapshot was taken.
        self._expected = max(0, length - len(self._stream))
        low = max(0, self._expected - ALIGN_SLACK_CHARS)
        self._candidates = [p for p in range(low, length + 1) if self._fits(snapshot, p)]
        self._show_aligned(snapshot)

    def append(self, chunk: str) -> None:
        if self.final or not chunk:
            return
        snapshot = self._snapshot
        if snapshot is None:
            if self._awaiting:
                self._stream += chunk
            self._set(self.text + chunk)
            return
        self._stream += chunk
        self._candidates = [p for p in self._candidates if self._fits(snapshot, p)] or [len(snapshot)]
        self._show_aligned(snapshot)

    def finish(self, final: str) -> None:
        self.final, self._awaiting, self._snapshot = True, False, None
        self._set(final)

    # --- alignment ----------------------------------------------------------------------

    def _fits(self, snapshot: str, start: int) -> bool:
        """Could the chunks since mark() begin at `start` in the snapshot?"""
        overlap = min(len(self._stream), len(snapshot) - start)
        return snapshot[start : start + overlap] == self._stream[:overlap]

    def _show_aligned(self, snapshot: str) -> None:
        """Show `snapshot` (the one being aligned with) and the chunks past its end."""
        end = len(snapshot)

        def distance(p: int) -> tuple[int, int]:
            return abs(p - self._expected) + (NO_OVERLAP_PENALTY_CHARS if p == end else 0), -p

        best = min(self._candidates, key=distance)
        self._set(snapshot + self._stream[end - best :])
        if all(len(self._stream) >= end - p for p in self._candidates):
            # every candidate is past the snapshot's end: no later chunk can tell them apart
            self._snapshot, self._stream = None, ""

    def _set(self, text: str) -> None:
        if text == self.text:
            return
        if text.startswith(self.text):
            rest, self.text = text[len(self.text) :], text
            self.write(rest)
            return
        self.text = text
        self.clear()
        self.write(text)
