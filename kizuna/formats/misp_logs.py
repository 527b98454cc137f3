"""misp-stix and PyMISP speak through ``logging``; a conversion keeps what they say for its report."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

_LOGGERS = ("pymisp", "misp_stix_converter")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(" ".join(record.getMessage().split()))


@contextmanager
def converter_messages() -> Iterator[list[str]]:
    """Collect the converters' warnings (instead of letting them reach stderr) while the block runs."""
    collector = _Collect()
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    saved = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(collector)
        logger.propagate = False
    try:
        yield collector.messages
    finally:
        for logger, propagate in zip(loggers, saved, strict=True):
            logger.removeHandler(collector)
            logger.propagate = propagate
