"""Docker's multiplexed attach stream, and capped output collection."""

from __future__ import annotations

import codecs
import struct

STDOUT, STDERR = 1, 2
_HEADER = struct.Struct(">BxxxL")


class FrameParser:
    """Splits the attach stream into (stream id, payload) frames.

    Each frame is an 8-byte header (stream id, three zero bytes, big-endian length)
    followed by the payload; frames arrive split across reads in any way.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= _HEADER.size:
            stream, length = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append((stream, bytes(self._buffer[_HEADER.size:end])))
            del self._buffer[:end]
        return frames


class CappedOutput:
    """Keeps the first `limit` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._data = bytearray()
        self.total = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def add(self, payload: bytes) -> str:
        """Keep what fits; returns the newly kept part as text ('' once full)."""
        self.total += len(payload)
        room = self.limit - len(self._data)
        if room <= 0:
            return ""
        kept = payload[:room]
        self._data += kept
        return self._decoder.decode(kept)

    def text(self) -> str:
        return self._data.decode("utf-8", errors="replace")
