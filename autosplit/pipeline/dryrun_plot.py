"""The ``autosplit dryrun --plot`` figure: predicted job runtimes, and makespan against the target runtime."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from autosplit.errors import AutosplitError


def plot_dryrun(result: Any, path: str | os.PathLike[str], slots: int, n_targets: int = 6) -> None:
    """Write a PNG with two panels (needs matplotlib: ``pip install 'autosplit[plots]'``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        raise AutosplitError("--plot needs matplotlib: pip install 'autosplit[plots]'") from None
    from autosplit.sim import makespan_vs_target

    config = result.config
    target = config.target_seconds
    jobs = result.plan.jobs
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    if jobs.height:
        runtimes = jobs["predicted_seconds"].to_numpy()
        left.hist(
            runtimes, bins=min(40, max(jobs.height, 5)), color="#4477aa", label="predicted mean runtime"
        )
        left.hist(
            jobs["predicted_quantile"].to_numpy(),
            bins=min(40, max(jobs.height, 5)),
            histtype="step",
            color="#cc6677",
            label=f"{1 - config.splitting.alpha:.0%} quantile",
        )
    left.axvline(target, color="black", linestyle="--", label="target (soft limit)")
    left.set_xlabel("job runtime [s]")
    left.set_ylabel("jobs")
    left.set_title(f"{result.plan.n_jobs} jobs")
    left.legend(fontsize=8)

    targets = target * np.geomspace(0.25, 4.0, n_targets)
    curve = makespan_vs_target(
        result.dataset,
        result.models["cost"],
        targets,
        alpha=config.splitting.alpha,
        n_slots=slots,
        max_tails=config.splitting.max_tails,
        n_runs=5,
        seed=0,
    )
    medians = np.array([c["median"] for c in curve])
    lows = np.array([c["low"] for c in curve])
    highs = np.array([c["high"] for c in curve])
    right.plot(targets, medians, marker="o", color="#4477aa", label="predicted makespan")
    right.fill_between(targets, lows, highs, color="#4477aa", alpha=0.2, label="interval")
    right.axvline(target, color="black", linestyle="--", label="chosen target")
    right.set_xscale("log")
    right.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    right.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    right.set_xlabel("target runtime per job [s]")
    right.set_ylabel(f"makespan on {slots} slots [s]")
    right.set_title("makespan vs target runtime")
    right.legend(fontsize=8)
    fig.suptitle(f"autosplit dryrun: {config.task.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
