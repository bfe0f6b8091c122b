"""Benchmark: accuracy and calibration of the estimators over a suite of synthetic workloads and seeds.

Every experiment builds a 40,000-lumi dataset whose pile-up and luminosity follow the real brilcalc
profile in tests/data (events per lumi proportional to recorded luminosity), probes it with at most 1 % of
its events (60 stratified probes with a 15 min deadline, then 30 more per round until the default model
knows the total to 10 %), fits every estimator on the same probe reports, and runs the remaining units in jobs of about
4 h predicted (packed in file order with each estimator's own predictions). Truth is known per unit.

Columns of the table:

* ``total/true``: predicted total seconds over the true expected total (median [5 %, 95 %] over seeds);
* ``within 10 %``: fraction of seeds whose predicted total is within 10 % of the truth;
* ``job cov``: fraction of all jobs whose runtime stayed under the estimator's 95 % bound (the planner's
  quantile, lognormal or at least normal; CRAB3's is ``mean / 0.75``); ``bound/actual``: median bound over actual runtime;
* ``unit cov``: fraction of units under the per-unit 95 % quantile; ``CI cov``: fraction of seeds whose
  95 % interval of the total holds the truth.

Run: .venv/bin/python benchmarks/bench_estimators.py [--seeds N]
(writes benchmarks/results/estimators.json and estimators.md)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, median_seconds, write_results  # noqa: E402

from autosplit.estimators import MeanRateEstimator, RatioEstimator, UnitCostModel  # noqa: E402
from autosplit.sim.calibration import evaluate_estimators, pack_contiguous, simulate_probing  # noqa: E402
from autosplit.sim.synthetic import Site, SyntheticWorkload, read_brilcalc_csv, synthetic_dataset  # noqa: E402

BRILCALC = Path(__file__).parents[1] / "tests/data/brilcalc/lumi_small.csv"
N_UNITS = 40_000
PROBES = {"first_probes": 60, "more_probes": 30, "seconds_per_probe": 900.0, "max_event_fraction": 0.01}
ONE_SITE = (Site("T2_ONLY", 1.0, 1.0),)

WORKLOADS: dict[str, tuple[str, SyntheticWorkload, dict]] = {
    "default": (
        "pile-up^1.5, 1 % stragglers, two sites 0.8x/1.3x",
        SyntheticWorkload(),
        {},
    ),
    "cmssw-job-level": (
        "same, CMSSW-like reports: job-level timing, run/lumi only",
        SyntheticWorkload(),
        {"per_unit": False, "unit_details": False},
    ),
    "heavy-tails": (
        "5 % stragglers (Lomax shape 2.2), unit log-sd 0.5",
        SyntheticWorkload(unit_sigma=0.5, tail_fraction=0.05, tail_shape=2.2, tail_scale=4.0),
        {},
    ),
    "strong-pileup": (
        "pile-up^3, one site",
        SyntheticWorkload(pileup_power=3.0, sites=ONE_SITE),
        {},
    ),
    "job-speed-0.4": (
        "one site, node speed log-sd 0.4 (CRAB3 bias exp(s^2))",
        SyntheticWorkload(node_sigma=0.4, sites=ONE_SITE),
        {},
    ),
    "three-sites": (
        "three sites 0.7x/1.0x/1.8x with shares 50/30/20 %",
        SyntheticWorkload(sites=(Site("T2_A", 0.7, 0.5), Site("T2_B", 1.0, 0.3), Site("T2_C", 1.8, 0.2))),
        {},
    ),
}
ESTIMATORS = {
    "UnitCostModel": UnitCostModel,
    "RatioEstimator": RatioEstimator,
    "MeanRate (CRAB3)": MeanRateEstimator,
}


def run_workload(workload: SyntheticWorkload, options: dict, seeds: range, profile: pl.DataFrame) -> dict:
    per_estimator: dict[str, list] = {name: [] for name in ESTIMATORS}
    campaigns = []
    for seed in seeds:
        ds = synthetic_dataset(N_UNITS, profile=profile, seed=seed)
        campaign, results = evaluate_estimators(
            workload, ds, {name: cls() for name, cls in ESTIMATORS.items()}, seed=seed, **PROBES, **options
        )
        campaigns.append(campaign)
        for name, ev in results.items():
            per_estimator[name].append(ev)
    out = {
        "probes": {
            "jobs_mean": float(np.mean([len(c.reports) for c in campaigns])),
            "event_fraction_max": float(max(c.event_fraction for c in campaigns)),
            "stopped_early": float(np.mean([c.enough for c in campaigns])),
        },
        "estimators": {},
    }
    for name, evs in per_estimator.items():
        ratio = np.array([e.ratio for e in evs])
        realized = np.array([e.predicted_total / e.realized_total for e in evs])
        jobs = np.array([e.n_jobs for e in evs])
        coverage = np.array([e.job_coverage for e in evs])
        out["estimators"][name] = {
            "total_over_true_median": float(np.median(ratio)),
            "total_over_true_p05": float(np.quantile(ratio, 0.05)),
            "total_over_true_p95": float(np.quantile(ratio, 0.95)),
            "within_10pct": float(np.mean(np.abs(ratio - 1) <= 0.10)),
            "total_over_realized_median": float(np.median(realized)),
            "job_coverage_95": float((coverage * jobs).sum() / jobs.sum()),
            "job_coverage_95_seed_p10": float(np.quantile(coverage, 0.10)),
            "bound_over_actual_median": float(np.median([e.job_bound_over_runtime for e in evs])),
            "unit_coverage_95": float(np.mean([e.unit_coverage for e in evs])),
            "interval_coverage_95": float(np.mean([e.interval_covers for e in evs])),
        }
    return out


def timings(profile: pl.DataFrame) -> dict:
    workload = SyntheticWorkload()
    ds = synthetic_dataset(N_UNITS, profile=profile, seed=0)
    rng = np.random.default_rng(0)
    campaign = simulate_probing(workload, ds, UnitCostModel(), rng=rng, **PROBES)
    fit_probes, _ = median_seconds(lambda: UnitCostModel().fit(campaign.reports, ds.units), repeat=5)
    model = campaign.model
    job_index = pack_contiguous(model.predict_unit_seconds(ds.units)[0], 4 * 3600)
    jobs = workload.run_jobs(ds.units, job_index, rng)
    processing = workload.reports(ds.units, jobs, rng)
    fit_processing, _ = median_seconds(lambda: UnitCostModel().fit(processing), repeat=3)
    million = synthetic_dataset(1_000_000, profile=profile, seed=1).units
    predict, _ = median_seconds(lambda: model.predict_unit_seconds(million), repeat=5)
    return {
        "fit_probe_reports_seconds": fit_probes,
        "probe_reports": len(campaign.reports),
        "fit_processing_reports_seconds": fit_processing,
        "processing_reports": len(processing),
        "processing_units": int(sum(len(r.units) for r in processing)),
        "predict_unit_seconds_1e6_units_seconds": predict,
    }


def markdown(payload: dict) -> str:
    lines = [
        "# Estimators: accuracy and calibration",
        "",
        f"{payload['seeds']} seeds per workload, {N_UNITS:,} lumis each (brilcalc pile-up profile), probes "
        "<= 1 % of the events (60 stratified probes, 15 min deadline, +30 per round until the total is known to "
        "10 %), remaining units in ~4 h jobs. Truth: the workload's expected cost per unit. "
        "Written by `benchmarks/bench_estimators.py`.",
        "",
        "| workload | estimator | total/true median [p5, p95] | within 10 % | job cov (95 %) | bound/actual "
        "| unit cov (95 %) | CI cov (95 %) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, result in payload["workloads"].items():
        for name, m in result["estimators"].items():
            lines.append(
                f"| {key} | {name} | {m['total_over_true_median']:.3f} [{m['total_over_true_p05']:.3f}, "
                f"{m['total_over_true_p95']:.3f}] | {m['within_10pct']:.0%} | {m['job_coverage_95']:.1%} | "
                f"{m['bound_over_actual_median']:.2f} | {m['unit_coverage_95']:.1%} | "
                f"{m['interval_coverage_95']:.0%} |"
            )
    lines += ["", "Workloads:", ""]
    for key, result in payload["workloads"].items():
        probes = result["probes"]
        lines.append(
            f"- **{key}**: {result['description']}; {probes['jobs_mean']:.0f} probe jobs on average, "
            f"max {probes['event_fraction_max']:.2%} of events, stopped early in {probes['stopped_early']:.0%} "
            "of seeds."
        )
    t = payload["timings"]
    lines += [
        "",
        "Timings (median, 2 cores): "
        f"fit on {t['probe_reports']} probe reports {t['fit_probe_reports_seconds'] * 1e3:.0f} ms; "
        f"fit on {t['processing_reports']} processing reports ({t['processing_units']:,} unit timings) "
        f"{t['fit_processing_reports_seconds']:.2f} s; predict_unit_seconds on 1,000,000 units "
        f"{t['predict_unit_seconds_1e6_units_seconds'] * 1e3:.0f} ms.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40, help="seeds per workload (default 40)")
    args = parser.parse_args()
    profile = read_brilcalc_csv(BRILCALC)
    start = time.perf_counter()
    payload: dict = {"seeds": args.seeds, "n_units": N_UNITS, "probes": PROBES, "workloads": {}}
    for key, (description, workload, options) in WORKLOADS.items():
        t0 = time.perf_counter()
        result = run_workload(workload, options, range(1000, 1000 + args.seeds), profile)
        result["description"] = description
        payload["workloads"][key] = result
        unit = result["estimators"]["UnitCostModel"]
        print(
            f"{key:16s} unit: within10 {unit['within_10pct']:.0%} job cov {unit['job_coverage_95']:.1%} "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    payload["timings"] = timings(profile)
    payload["elapsed_seconds"] = time.perf_counter() - start
    write_results("estimators", payload)
    text = markdown(payload)
    (RESULTS / "estimators.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
