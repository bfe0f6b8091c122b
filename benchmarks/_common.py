"""Helpers shared by the benchmark scripts: timing, memory, and writing results."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def median_seconds(func: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time (seconds) of ``repeat`` calls after ``warmup`` unmeasured ones."""
    for _ in range(warmup):
        func()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (bytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def machine() -> dict[str, Any]:
    import numpy
    import polars

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": numpy.__version__,
        "polars": polars.__version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def peak_extra_rss(func: Callable[[], Any], interval: float = 0.001) -> tuple[Any, int]:
    """Run ``func`` while sampling RSS; return its result and the peak RSS above the starting RSS (bytes)."""
    import threading

    import psutil

    process = psutil.Process()
    start = process.memory_info().rss
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            done.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        result = func()
    finally:
        done.set()
        thread.join()
    peak = max(peak, process.memory_info().rss)
    return result, peak - start


def peak_traced_bytes(func: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``func`` under tracemalloc; return its result and the peak traced allocation (bytes).

    numpy registers its buffers with tracemalloc, so this is the working memory of numpy code, and unlike
    RSS it does not depend on whether the allocator reuses memory freed earlier in the process.
    """
    import tracemalloc

    tracemalloc.start()
    try:
        result = func()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak
