"""Log set-up for the service: loguru to standard error at the configured level."""

from __future__ import annotations

import sys

from loguru import logger

FORMAT = "{time:YYYY-MM-DDTHH:mm:ss.SSSZ} {level: <7} {name}: {message}"


def configure_logging(level: str = "INFO") -> None:
    """Replace loguru's default DEBUG handler (which also carries PyRuSH's per-sentence
    messages) with one at ``level``."""
    logger.remove()
    logger.add(sys.stderr, level=level.upper(), format=FORMAT, backtrace=False, diagnose=False)
