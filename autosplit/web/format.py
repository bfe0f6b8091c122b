"""How numbers read on the monitor's pages (Jinja2 filters): counts, durations, sizes, times.

Every filter shows ``'–'`` for a value that is missing (None, a Jinja2 undefined, a field the status
document does not have) or not a number, so a page never fails on a field it cannot show.
"""

from __future__ import annotations

import math
import time
from typing import Any

from jinja2 import Undefined

MISSING = "–"


def number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is missing, not a number, NaN or infinite."""
    if value is None or isinstance(value, Undefined | bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def count(value: Any) -> str:
    """``12345`` -> ``'12,345'``; missing -> ``'–'``."""
    n = number(value)
    return MISSING if n is None else f"{int(n):,}"


def duration(seconds: Any) -> str:
    """Seconds as people read them: ``'42 s'``, ``'3 min 20 s'``, ``'2 h 05 min'``; missing -> ``'–'``."""
    seconds = number(seconds)
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def sig(value: Any, digits: int = 4) -> str:
    """A measured number to ``digits`` significant digits (``0.002011``); missing -> ``'–'``."""
    n = number(value)
    return MISSING if n is None else f"{n:.{digits}g}"


def share(value: Any) -> str:
    """A fraction as a percentage to 2 significant digits (``0.0228`` -> ``'2.3 %'``); missing -> ``'–'``."""
    n = number(value)
    return MISSING if n is None else f"{100 * n:.2g} %"


def size(value: Any) -> str:
    """Bytes in decimal units (``'1.2 MB'``); missing -> ``'–'``."""
    value = number(value)
    if value is None:
        return MISSING
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def percent(part: Any, total: Any) -> float:
    """``part`` as a percentage of ``total`` (0 when either is missing or the total is 0), for widths of
    bar segments."""
    part, total = number(part), number(total)
    return 100.0 * part / total if part is not None and total else 0.0


def clock(timestamp: Any) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``; missing -> ``'–'``."""
    timestamp = number(timestamp)
    if timestamp is None:
        return MISSING
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


FILTERS = {"count": count, "duration": duration, "sig": sig, "share": share, "size": size, "clock": clock}
