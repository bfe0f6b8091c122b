"""How numbers read on the monitor's pages (Jinja2 filters): counts, durations, sizes, times."""

from __future__ import annotations

import time
from typing import Any


def count(value: Any) -> str:
    """``12345`` -> ``'12,345'``; None -> ``'–'``."""
    return "–" if value is None else f"{int(value):,}"


def duration(seconds: Any) -> str:
    """Seconds as people read them: ``'42 s'``, ``'3 min 20 s'``, ``'2 h 05 min'``; None -> ``'–'``."""
    if seconds is None:
        return "–"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def sig(value: Any, digits: int = 4) -> str:
    """A measured number to ``digits`` significant digits (``0.002011``); None -> ``'–'``."""
    return "–" if value is None else f"{float(value):.{digits}g}"


def size(value: Any) -> str:
    """Bytes in decimal units (``'1.2 MB'``); None -> ``'–'``."""
    if value is None:
        return "–"
    value = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def percent(part: Any, total: Any) -> float:
    """``part`` as a percentage of ``total`` (0 when the total is 0), for widths of bar segments."""
    return 100.0 * float(part) / float(total) if total else 0.0


def clock(timestamp: Any) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS``; None -> ``'–'``."""
    if timestamp is None:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(timestamp)))


FILTERS = {"count": count, "duration": duration, "sig": sig, "size": size, "clock": clock}
