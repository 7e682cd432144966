"""The one clock: timezone-aware UTC time; and durations as people write them.

The run takes the clock as a callable, so tests move time by passing one in;
nothing patches ``time`` globally. :func:`parse_duration` reads ``90s``,
``15m``, ``6h`` or ``2d`` for ``cron --every`` and the config's time settings
alike. Imports only the standard library.
"""

from __future__ import annotations

import logging
import re
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


# Seconds in each unit a duration may be written in.
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_RE = re.compile(r"\s*(\d+)\s*([smhd]?)\s*", re.IGNORECASE)


def parse_duration(text: str, default_unit: str) -> int:
    """The seconds in a duration such as ``90s``, ``15m``, ``6h`` or ``2d``
    (whole numbers; without a unit the number is in ``default_unit``).

    Raises ValueError saying what to write instead.
    """
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a time; write a whole number and a unit: s, m, h "
            "or d, such as 90s, 15m, 6h or 2d"
        )
    unit = (match.group(2) or default_unit).lower()
    return int(match.group(1)) * DURATION_UNITS[unit]
