"""A discrete-event simulator of a pool (SimPy) for what-if dry runs and splitting-quality benchmarks.

All times are seconds. The pieces:

* :class:`Pool` (:class:`SiteSlots`): slots grouped in sites with time factors, per-job overhead, node
  speed jitter, a failure hazard per wall-second, the batch system's wall limit, stage latency, SIGTERM grace;
* :class:`Truth`: the true reference seconds of every unit (:func:`truth_from_workload` draws them from a
  :class:`~autosplit.sim.synthetic.SyntheticWorkload`, :func:`truth_from_model` from a fitted model),
  poison units, a :class:`Drift` of the cost with time;
* :class:`Simulation`: the event loop, the slots, a priority queue, the unit ledger; a policy submits
  :class:`SimJob` objects and gets :class:`Attempt` outcomes (soft stop at a unit boundary, hard kill with
  grace, crash, poison unit);
* :class:`SchedulerPolicy`: drives :class:`autosplit.Scheduler` from the pool's free slots, turning each
  attempt into the report (or the failure) the real system would see;
* :class:`AutosplitPolicy`: the library calls of autosplit's earlier stage-by-stage pipeline (probe rounds,
  fit, plan, tails with decreasing sizes), in that pipeline's order;
* :func:`predict_makespan` / :func:`makespan_vs_target`: dry-run makespan with an interval from a model;
* :class:`SimResult` (:func:`summarize`) and :func:`lower_bound` (valid with drift, sites and unsplittable
  units; its docstring derives it): metrics.

Example::

    from autosplit.sim import Pool, Simulation, AutosplitPolicy, truth_from_workload, lower_bound
    pool = Pool.uniform(300, overhead_seconds=300)
    truth = truth_from_workload(SyntheticWorkload(), dataset, np.random.default_rng(0))
    result = Simulation(dataset, truth, pool, seed=0).run(AutosplitPolicy(target_runtime=8 * 3600))
    print(result.makespan / lower_bound(truth, pool), result.cpu_waste_fraction)
"""

from autosplit.sim.autosplit_policy import AutosplitPolicy
from autosplit.sim.dryrun import makespan_vs_target, predict_makespan
from autosplit.sim.engine import Simulation, SimulationError
from autosplit.sim.jobs import OUTCOMES, Attempt, SimJob
from autosplit.sim.metrics import SimResult, job_table, lower_bound, stage_windows, summarize
from autosplit.sim.policy import Policy, PolicyError, jobs_from_assignment
from autosplit.sim.pool import Pool, SiteSlots
from autosplit.sim.reports import ReportBuilder, attempt_reports
from autosplit.sim.scheduler_policy import SchedulerPolicy
from autosplit.sim.truth import Drift, Truth, gamma_draw, truth_from_model, truth_from_workload
from autosplit.splitting.limits import job_hard_limit as hard_limit  # the pipeline's rule, by its old name

__all__ = [
    "OUTCOMES",
    "Attempt",
    "AutosplitPolicy",
    "Drift",
    "Policy",
    "PolicyError",
    "Pool",
    "ReportBuilder",
    "SchedulerPolicy",
    "SimJob",
    "SimResult",
    "Simulation",
    "SimulationError",
    "SiteSlots",
    "Truth",
    "attempt_reports",
    "gamma_draw",
    "hard_limit",
    "job_table",
    "jobs_from_assignment",
    "lower_bound",
    "makespan_vs_target",
    "predict_makespan",
    "stage_windows",
    "summarize",
    "truth_from_model",
    "truth_from_workload",
]
