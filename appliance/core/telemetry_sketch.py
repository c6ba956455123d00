"""A mergeable quantile sketch: a logarithmic histogram (as DDSketch).

Each value goes to the bucket of its magnitude on a log scale with ratio GAMMA, so every
value in a bucket lies within RELATIVE_ACCURACY (0.5%) of the bucket's representative:
the quantile the sketch answers is within 0.5% of a value whose rank is the one asked
for. Sketches add up bucket by bucket, so per-hour sketches merge into a day, or every
event name into one.

Accuracy as rank error (what the API documents, at most 1%): the answer's rank can be
off only by the values that share its bucket, i.e. lie within 1% of each other. On the
data tests/test_telemetry_sketch.py draws (latencies, token counts, costs, ties) it is
measured there against exact percentiles; every answer is also clamped to the exact
minimum and maximum of its values, so all-equal values come out exact.

Percentiles are nearest-rank: the p-th percentile of n values is the value of rank
ceil(p * n) in ascending order (the exact path computes the same).
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable

RELATIVE_ACCURACY = 0.005
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
# Bucket codes order like their values: negative values below 0, zero at 0, positive
# above. |k| stays below 80,000 for every finite double (subnormals included).
_POSITIVE_BASE = 1 << 20
_LITTLE = sys.byteorder == "little"


def bucket_code(value: float) -> int:
    if value > 0:
        return _POSITIVE_BASE + math.ceil(math.log(value) / _LOG_GAMMA)
    if value < 0:
        return -(_POSITIVE_BASE + math.ceil(math.log(-value) / _LOG_GAMMA))
    return 0


def bucket_value(code: int) -> float:
    """The representative of a bucket: within RELATIVE_ACCURACY of every value in it."""
    if code == 0:
        return 0.0
    k = abs(code) - _POSITIVE_BASE
    value = 2 * GAMMA**k / (GAMMA + 1)
    return value if code > 0 else -value


def nearest_rank(quantile: float, count: int) -> int:
    """The 1-based rank of the `quantile` (0..1] of `count` values."""
    return min(count, max(1, math.ceil(quantile * count - 1e-9)))


class Histogram:
    """Bucket code -> count. `add` values, `merge` other histograms, `quantile`."""

    __slots__ = ("counts",)

    def __init__(self, counts: dict[int, int] | None = None) -> None:
        self.counts: dict[int, int] = counts if counts is not None else {}

    def add(self, value: float, times: int = 1) -> None:
        code = bucket_code(value)
        self.counts[code] = self.counts.get(code, 0) + times

    def add_all(self, values: Iterable[float]) -> None:
        counts = self.counts
        for value in values:
            code = bucket_code(value)
            counts[code] = counts.get(code, 0) + 1

    def merge(self, other: Histogram) -> None:
        counts = self.counts
        if not counts:
            counts.update(other.counts)
            return
        for code, n in other.counts.items():
            counts[code] = counts.get(code, 0) + n

    def merge_encoded(self, blob: bytes) -> None:
        codes, ns = _arrays(blob)
        counts = self.counts
        if not counts:
            counts.update(zip(codes, ns, strict=True))
            return
        for code, n in zip(codes, ns, strict=True):
            counts[code] = counts.get(code, 0) + n

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def quantile(self, quantile: float, low: float | None = None, high: float | None = None) -> float | None:
        """The nearest-rank `quantile` (0..1]; clamped to [low, high] (the exact minimum
        and maximum) when given. None for an empty histogram."""
        total = self.total
        if total == 0:
            return None
        rank = nearest_rank(quantile, total)
        seen = 0
        answer = 0.0
        for code in sorted(self.counts):
            seen += self.counts[code]
            if seen >= rank:
                answer = bucket_value(code)
                break
        if low is not None and answer < low:
            answer = low
        if high is not None and answer > high:
            answer = high
        return answer

    def encode(self) -> bytes:
        codes = array("i", self.counts.keys())
        ns = array("q", self.counts.values())
        if not _LITTLE:  # stored little-endian, so a database file moves between machines
            codes.byteswap()
            ns.byteswap()
        return codes.tobytes() + ns.tobytes()

    @classmethod
    def decode(cls, blob: bytes) -> Histogram:
        codes, ns = _arrays(blob)
        return cls(dict(zip(codes, ns, strict=True)))


def _arrays(blob: bytes) -> tuple[array[int], array[int]]:
    n = len(blob) // 12
    codes, ns = array("i"), array("q")
    codes.frombytes(blob[: 4 * n])
    ns.frombytes(blob[4 * n :])
    if not _LITTLE:
        codes.byteswap()
        ns.byteswap()
    return codes, ns


def exact_quantile(sorted_values: list[float], quantile: float) -> float | None:
    """The nearest-rank `quantile` of values sorted ascending; None for none."""
    if not sorted_values:
        return None
    return sorted_values[nearest_rank(quantile, len(sorted_values)) - 1]
