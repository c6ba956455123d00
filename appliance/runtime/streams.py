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
            frames.append((stream, bytes(self._buffer[_HEADER.size : end])))
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


class StreamedOutput:
    """Passes every byte of a stream on as text and keeps only its last `tail` bytes: a
    long program (an experiment run) streams its output to a parser, and its outcome
    needs only the end of it (for an error message)."""

    def __init__(self, tail: int) -> None:
        self.limit = tail
        self._tail = bytearray()
        self.total = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def add(self, payload: bytes) -> str:
        self.total += len(payload)
        self._tail += payload
        if len(self._tail) > self.limit:
            del self._tail[: len(self._tail) - self.limit]
        return self._decoder.decode(payload)

    def text(self) -> str:
        return self._tail.decode("utf-8", errors="replace")


class TrailerScanner:
    """Finds the runner's trailer line (`\\n<nonce> ...\\n`) in a stderr stream.

    `feed` returns the bytes that belong to the program's own stderr; the trailer and
    anything after it are withheld. Bytes that might be the start of a trailer split
    across frames are held back until the next frame tells, or until `release` (the
    stream went quiet: a line's final newline should not wait for the next line). A
    trailer whose start was released still counts when the next frame completes it.
    """

    def __init__(self, nonce: str) -> None:
        self._marker = b"\n" + nonce.encode() + b" "
        self._held = b""
        self._released = b""
        self._trailer: bytearray | None = None
        self.fields: list[str] | None = None

    @property
    def done(self) -> bool:
        return self.fields is not None

    def feed(self, payload: bytes) -> bytes:
        if self.done:
            return b""
        if self._trailer is not None:
            self._trailer += payload
            self._parse()
            return b""
        data = self._held + payload
        self._held = b""
        released, self._released = self._released, b""
        at = (released + data).find(self._marker)
        if at >= 0:
            self._trailer = bytearray((released + data)[at + len(self._marker) :])
            self._parse()
            return data[: max(0, at - len(released))]
        for keep in range(min(len(self._marker) - 1, len(data)), 0, -1):
            if self._marker.startswith(data[-keep:]):
                self._held = data[-keep:]
                return data[:-keep]
        return data

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def release(self) -> bytes:
        """The held-back bytes, as output; remembered in case a trailer starts there."""
        held, self._held = self._held, b""
        self._released = held
        return held

    def flush(self) -> bytes:
        """At end of stream without a trailer: whatever was held back was output."""
        held, self._held = self._held, b""
        return held

    def _parse(self) -> None:
        assert self._trailer is not None
        end = self._trailer.find(b"\n")
        if end >= 0:
            self.fields = self._trailer[:end].decode(errors="replace").split()
