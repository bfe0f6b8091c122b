"""Small server-side SVG plots for the task page: job runtimes against the limits, units done over time.

Plain SVG text (no plotting library, no JavaScript), so the page shows them at once, they print, and a test
can read them. Each function takes a document of :mod:`autosplit.web.documents` and returns ``<svg>``.
"""

from __future__ import annotations

import math
from collections import Counter
from html import escape
from typing import Any

WIDTH, HEIGHT = 560, 250
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 34, 44
DONE_OUTCOMES = ("ok", "success")
LIMIT_OUTCOMES = ("soft-stopped", "wall-time")  # accepted, but stopped at the soft or the hard limit
#: Attempt categories of the runtime histogram, stacked bottom to top: (key, legend, CSS class).
CATEGORIES = (
    ("probe", "probes", "bar-probe"),
    ("done", "jobs done", "bar-ok"),
    ("limit", "stopped at a limit", "bar-limit"),
    ("failed", "failed", "bar-failed"),
)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    if not high > low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:g}"


class _Frame:
    """Maps data coordinates to the plot area and writes axes, ticks and labels."""

    def __init__(self, x_max: float, y_max: float) -> None:
        self.x_ticks = nice_ticks(0.0, x_max)
        self.y_ticks = nice_ticks(0.0, y_max, 4)
        self.x_max = max(self.x_ticks[-1], x_max)
        self.y_max = max(self.y_ticks[-1], y_max)

    def x(self, value: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * value / self.x_max

    def y(self, value: float) -> float:
        return HEIGHT - BOTTOM - (HEIGHT - TOP - BOTTOM) * value / self.y_max

    def axes(self, x_label: str, y_label: str) -> list[str]:
        parts = [
            f'<line class="axis" x1="{LEFT}" y1="{self.y(0):.1f}" x2="{WIDTH - RIGHT}" y2="{self.y(0):.1f}"/>',
            f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{self.y(0):.1f}"/>',
        ]
        for tick in self.x_ticks:
            x = self.x(tick)
            parts.append(
                f'<line class="tick" x1="{x:.1f}" y1="{self.y(0):.1f}" x2="{x:.1f}" y2="{self.y(0) + 4:.1f}"/>'
            )
            parts.append(
                f'<text class="tick-label" x="{x:.1f}" y="{self.y(0) + 16:.1f}" text-anchor="middle">{_label(tick)}</text>'
            )
        for tick in self.y_ticks:
            y = self.y(tick)
            parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
            parts.append(
                f'<text class="tick-label" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>'
            )
        parts.append(
            f'<text class="axis-label" x="{(LEFT + WIDTH - RIGHT) / 2:.1f}" y="{HEIGHT - 8}" '
            f'text-anchor="middle">{escape(x_label)}</text>'
        )
        parts.append(
            f'<text class="axis-label" transform="translate(14 {(TOP + HEIGHT - BOTTOM) / 2:.1f}) rotate(-90)" '
            f'text-anchor="middle">{escape(y_label)}</text>'
        )
        return parts


def _svg(name: str, title: str, parts: list[str]) -> str:
    return (
        f'<svg class="plot" data-plot="{escape(name)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        + "".join(parts)
        + "</svg>"
    )


def _empty(name: str, title: str, message: str) -> str:
    text = (
        f'<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">{escape(message)}</text>'
    )
    return _svg(name, title, [text])


def _category(job: dict[str, Any], outcome: str) -> str:
    kind = job.get("kind")
    if kind == "probe" or (kind is None and str(job.get("stage") or "").startswith("probe")):
        return "probe"
    if outcome in DONE_OUTCOMES:
        return "done"
    return "limit" if outcome in LIMIT_OUTCOMES else "failed"


def _soft_limit(jobs: list[dict[str, Any]]) -> float | None:
    """The most common soft limit of the planned (non-probe) jobs, in seconds."""
    limits = Counter(
        j["soft_limit_seconds"] for j in jobs if j["soft_limit_seconds"] and _category(j, "") != "probe"
    )
    return limits.most_common(1)[0][0] if limits else None


def runtime_histogram(doc: dict[str, Any], bins: int = 20) -> str:
    """Histogram of measured job runtimes (wall seconds of every attempt, stacked: probes, jobs done,
    jobs stopped at the soft or hard limit, failed attempts), the plan's predicted runtimes as an outline, and the target and soft limit as lines."""
    title = "Job runtimes: measured (bars) and predicted (outline), against the target and the soft limit"
    measured = [
        (_category(job, attempt["outcome"]), float(attempt["wall_seconds"]))
        for job in doc["jobs"]
        for attempt in job["measured"]
        if attempt.get("wall_seconds") is not None
    ]
    predicted = [float(j["predicted_seconds"]) for j in doc["jobs"] if j["predicted_seconds"] is not None]
    if not measured and not predicted:
        return _empty("runtimes", title, "no job has run yet")
    target = doc.get("target_seconds")
    soft = _soft_limit(doc["jobs"])
    top = max([s for _, s in measured] + predicted + [v for v in (target, soft) if v]) * 1.08
    width = top / bins
    counts = {key: [0] * bins for key, _, _ in CATEGORIES}
    for key, seconds in measured:
        counts[key][min(int(seconds / width), bins - 1)] += 1
    outline = [0] * bins
    for seconds in predicted:
        outline[min(int(seconds / width), bins - 1)] += 1
    highest = max([sum(c[i] for c in counts.values()) for i in range(bins)] + outline + [1])
    frame = _Frame(top, highest * 1.15)
    parts = frame.axes("job runtime [s]", "attempts / jobs")
    for i in range(bins):
        base = 0
        for key, _, css in CATEGORIES:
            n = counts[key][i]
            if n:
                x0, x1 = frame.x(i * width), frame.x((i + 1) * width)
                y0, y1 = frame.y(base + n), frame.y(base)
                parts.append(
                    f'<rect class="{css}" x="{x0:.1f}" y="{y0:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
                    f'height="{y1 - y0:.1f}"><title>{n} attempt(s), {i * width:.3g}–{(i + 1) * width:.3g} s</title></rect>'
                )
                base += n
    if predicted:
        points = [f"{frame.x(0):.1f},{frame.y(0):.1f}"]
        for i, n in enumerate(outline):
            points += [
                f"{frame.x(i * width):.1f},{frame.y(n):.1f}",
                f"{frame.x((i + 1) * width):.1f},{frame.y(n):.1f}",
            ]
        points.append(f"{frame.x(bins * width):.1f},{frame.y(0):.1f}")
        parts.append(f'<polyline class="predicted" points="{" ".join(points)}"/>')
    legend = [(css, text) for key, text, css in CATEGORIES if any(counts[key])]
    if predicted:
        legend.append(("predicted", "predicted"))
    lines = [("target", "target", target)]
    if soft and (not target or abs(soft - target) > 1e-9 * max(soft, 1.0)):
        lines.append(("soft-limit", "soft limit", soft))
    elif soft:
        lines[0] = ("target", "target = soft limit", target)
    for css, text, value in lines:
        if value:
            x = frame.x(value)
            right_half = x > (LEFT + WIDTH - RIGHT) / 2
            parts.append(f'<line class="{css}" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{frame.y(0):.1f}"/>')
            parts.append(
                f'<text class="line-label {css}-label" x="{x - 4 if right_half else x + 4:.1f}" y="{TOP + 12}" '
                f'text-anchor="{"end" if right_half else "start"}">{escape(text)} {value:g} s</text>'
            )
    x = LEFT
    for css, text in legend:  # one row above the plot area
        parts.append(f'<rect class="{css} legend-box" x="{x}" y="10" width="10" height="10"/>')
        parts.append(f'<text class="legend" x="{x + 14}" y="19">{escape(text)}</text>')
        x += 24 + 6.2 * len(text)
    return _svg("runtimes", title, parts)


def _time_unit(span: float) -> tuple[float, str]:
    if span >= 3 * 3600:
        return 3600.0, "h"
    if span >= 180:
        return 60.0, "min"
    return 1.0, "s"


def progress_curve(doc: dict[str, Any], now: float | None = None) -> str:
    """Units done over time since the task was created, as a step line up to the total (dashed).

    ``now`` (Unix time, for a running task) extends the line to the present.
    """
    title = "Units done over time"
    points = list(doc["points"])
    total = doc["total_units"]
    if len(points) < 2:
        return _empty("progress", title, "no unit is done yet")
    if now is not None and now > points[-1]["time"]:
        points.append({"time": now, "units_done": points[-1]["units_done"]})
    start = points[0]["time"]
    span = max(points[-1]["time"] - start, 1e-3)
    scale, unit = _time_unit(span)
    frame = _Frame(span / scale, max(total, 1))
    parts = frame.axes(f"time since submission [{unit}]", "units done")
    path = [f"{frame.x(0):.1f},{frame.y(0):.1f}"]
    previous = 0
    for point in points[1:]:
        x = frame.x((point["time"] - start) / scale)
        path += [f"{x:.1f},{frame.y(previous):.1f}", f"{x:.1f},{frame.y(point['units_done']):.1f}"]
        previous = point["units_done"]
    parts.append(
        f'<line class="total" x1="{LEFT}" y1="{frame.y(total):.1f}" x2="{WIDTH - RIGHT}" y2="{frame.y(total):.1f}"/>'
    )
    parts.append(
        f'<text class="line-label total-label" x="{LEFT + 4}" y="{frame.y(total) - 4:.1f}">total {total:,} units</text>'
    )
    parts.append(f'<polyline class="progress" points="{" ".join(path)}"/>')
    return _svg("progress", title, parts)
