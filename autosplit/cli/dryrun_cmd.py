"""``autosplit dryrun``: measure, plan and predict a task before submitting it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from autosplit.cli.output import console, echo_json, human_bytes, human_seconds, key_value_table
from autosplit.pipeline.config import ConfigError, parse_duration


def _config(
    config_path: str | None,
    dataset: str | None,
    mask: str | None,
    code: str | None,
    target: str | None,
    alpha: float | None,
):
    from autosplit.pipeline.config import config_from_dict, load_config

    if config_path:
        if dataset or code:
            raise ConfigError("give a task TOML or --dataset/--code, not both")
        config = load_config(config_path)
    else:
        if not (dataset and code):
            raise ConfigError("give a task TOML, or --dataset SOURCE and --code module:function")
        raw: dict[str, Any] = {
            "task": {"name": "dryrun"},
            "dataset": {"source": dataset, **({"mask": mask} if mask else {})},
            "code": {"callable": code, "path": "."},
            "splitting": {
                "target_runtime": target or "8h",
                "probe_seconds": min(20.0, parse_duration(target or "8h", "--target") / 4),
            },
        }
        config = config_from_dict(raw, base=Path.cwd(), origin="command line")
    if target:
        config.splitting.target_runtime = parse_duration(target, "--target")
    if alpha is not None:
        if not 0 < alpha < 0.5:
            raise ConfigError(f"--alpha {alpha}: must be between 0 and 0.5")
        config.splitting.alpha = alpha
    return config


@click.command("dryrun")
@click.argument("config_path", metavar="[TASK.toml]", required=False, type=click.Path(dir_okay=False))
@click.option("--dataset", help="Dataset source instead of a task TOML (ROOT glob, .json listing, .parquet).")
@click.option("--mask", help="Lumi mask (with --dataset).")
@click.option("--code", help="module:function to run (with --dataset).")
@click.option("--target", help="Target runtime per job, e.g. '8h' (overrides the TOML).")
@click.option("--alpha", type=float, help="Accepted probability of reaching the soft limit.")
@click.option(
    "--slots", type=click.IntRange(min=1), help="Slots for the makespan prediction (default: max_jobs)."
)
@click.option("--budget", default="60s", show_default=True, help="Time allowed for probing on this machine.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    help="Write a PNG: job runtimes, makespan vs target.",
)
@click.option("--keep", "keep_dir", type=click.Path(file_okay=False), help="Keep the probe jobs' files here.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def dryrun_command(
    config_path, dataset, mask, code, target, alpha, slots, budget, plot_path, keep_dir, as_json
):
    """Run probe jobs locally (real code, real files), fit the cost model, plan the task and predict it.

    Prints seconds per event with its interval, memory and output per event, the proposed jobs (count,
    events per job, predicted runtimes, probability of reaching the soft limit), total CPU-hours, output
    volume, units that cannot fit, the predicted makespan on N slots, and the command that submits it.
    """
    from autosplit.pipeline.dryrun import dryrun

    config = _config(config_path, dataset, mask, code, target, alpha)
    seconds = parse_duration(budget, "--budget")

    def say(text: str) -> None:
        click.echo(text, err=True)

    result = dryrun(config, budget_seconds=seconds, slots=slots, keep_dir=keep_dir, progress=say)
    summary = result.summary()
    if plot_path:
        from autosplit.pipeline.dryrun_plot import plot_dryrun

        plot_dryrun(result, plot_path, slots or config.max_jobs)
        summary["plot"] = str(plot_path)
    summary["submit_command"] = _submit_command(config_path)
    if as_json:
        echo_json(summary)
        return
    _print(summary)


def _submit_command(config_path: str | None) -> str:
    if config_path:
        return f"autosplit run {os.path.relpath(config_path)}"
    return "write these settings into a task TOML, then: autosplit run task.toml"


def _print(s: dict[str, Any]) -> None:
    out = console()
    spe_low, spe_high = s["seconds_per_event_interval"]
    measured = [
        ("seconds per event", f"{s['seconds_per_event']:.4g} (95% interval {spe_low:.4g} – {spe_high:.4g})"),
        ("per-job overhead", human_seconds(s["overhead_seconds"])),
        (
            "measured by",
            f"{s['probe_jobs']} probe job(s) in {s['probe_rounds']} round(s), "
            f"{s['probe_events']:,} events, {human_seconds(s['probe_seconds_spent'])}",
        ),
    ]
    if "memory_bytes_per_event" in s:
        measured.append(
            (
                "memory",
                f"{human_bytes(s['memory_base_bytes'])} + {human_bytes(s['memory_bytes_per_event'])}"
                f"/event (95% job peak {human_bytes(s.get('memory_peak_bytes_q95', 0))})",
            )
        )
    if "output_bytes_per_event" in s:
        measured.append(("output per event", human_bytes(s["output_bytes_per_event"])))
    out.print(key_value_table(f"Measured on this machine — {s['task']}", measured))
    cpu_low, cpu_high = s["total_cpu_hours_interval"]
    planned = [
        ("units / events", f"{s['units']:,} / {s['events']:,}"),
        (
            "target runtime (alpha)",
            f"{human_seconds(s['target_runtime_seconds'])} ({s['alpha']:.0%} may reach it)",
        ),
        ("jobs", f"{s['n_jobs']:,}"),
    ]
    if "events_per_job" in s:
        epj = s["events_per_job"]
        rt = s["predicted_runtime_seconds"]
        planned += [
            ("events per job", f"{epj['min']:,} – {epj['max']:,} (mean {epj['mean']:,.0f})"),
            (
                "predicted job runtime",
                f"median {human_seconds(rt['median'])}, 10–90% {human_seconds(rt['p10'])} – "
                f"{human_seconds(rt['p90'])}",
            ),
            ("P(job reaches the soft limit)", f"{s['probability_soft_limit']:.1%}"),
        ]
    planned.append(
        ("total CPU", f"{s['total_cpu_hours']:.3g} h (95% interval {cpu_low:.3g} – {cpu_high:.3g} h)")
    )
    if "output_bytes_total" in s:
        planned.append(("output volume", human_bytes(s["output_bytes_total"])))
    planned.append(("units that cannot fit a job", f"{s['oversized_units']:,}"))
    if s.get("predicted_makespan_seconds") is not None:
        low, high = s["predicted_makespan_interval"]
        planned.append(
            (
                f"predicted makespan on {s['slots']} slot(s)",
                f"{human_seconds(s['predicted_makespan_seconds'])} ({human_seconds(low)} – {human_seconds(high)})",
            )
        )
    out.print(key_value_table("Plan", planned))
    for note in s.get("notes", []):
        out.print(f"note: {note}")
    if s.get("plot"):
        out.print(f"plot written to {s['plot']}")
    out.print(f"run it with: [bold]{s['submit_command']}[/]")
