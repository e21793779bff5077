"""Keep credentials passed in a query string (`?token=…`, the pad WebSocket's) out of every log line.

HireFlow's own request log records route templates only; this filter also covers aiohttp's access
logger, which a runner other than `run_web.py` (tests, an embedding server) may switch on.
"""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"([?&](?:token|__session)=)[^&\s\"']*")
_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.web")


def redact(text: str) -> str:
    return _TOKEN.sub(r"\1[redacted]", text)


class RedactQueryTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        for name, value in list(vars(record).items()):
            if isinstance(value, str) and "token=" in value and name not in ("msg",):
                setattr(record, name, redact(value))
        return True


def install() -> None:
    """Add the filter to aiohttp's loggers, once per process."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryTokens) for f in logger.filters):
            logger.addFilter(RedactQueryTokens())
