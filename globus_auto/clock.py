"""The one clock: timezone-aware UTC time.

The run takes the clock as a callable, so tests move time by passing one in;
nothing patches ``time`` globally. Imports only the standard library.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is required, got {moment!r}")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
