"""Log configuration shared by every command.

Browsers cannot send headers on a WebSocket, so keys and tokens travel in query strings,
and uvicorn logs the path of every WebSocket it accepts: a filter on the handler masks
them so no secret reaches a log file.
"""

from __future__ import annotations

import logging
import os
import re
from io import TextIOWrapper
from logging.handlers import RotatingFileHandler

_SECRET_PARAM = re.compile(r"((?:api_key|token|access_token)=)[^&\s\"']+")
_BARE_KEY = re.compile(r"\bak_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")


def redact(text: str) -> str:
    text = _SECRET_PARAM.sub(r"\1***", text)
    return _BARE_KEY.sub("ak_***", text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO; that is noise in the appliance's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # APScheduler logs every run of the sampling job (every few seconds) at INFO.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


class PrivateRotatingFileHandler(RotatingFileHandler):
    """A rotating log whose every file (the first and each one rotation starts) is mode
    0600: the log names evaluations and keys' prefixes, which are the owner's alone."""

    def _open(self) -> TextIOWrapper:
        stream = open(  # noqa: SIM115 - the handler owns and closes the stream
            self.baseFilename,
            self.mode,
            encoding=self.encoding,
            errors=self.errors,
            opener=lambda path, flags: os.open(path, flags, 0o600),
        )
        assert isinstance(stream, TextIOWrapper)
        return stream
