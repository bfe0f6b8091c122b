"""The embeddable scheduler: one object holding the whole splitting policy (see :mod:`.core`).

Drivers (the pipeline's DAG scripts, the simulator, the benchmarks, other workload managers) call
:meth:`Scheduler.next_jobs` when slots are free and :meth:`Scheduler.job_finished` /
:meth:`Scheduler.job_failed` when jobs end; the scheduler answers with :class:`JobRequest` objects.
"""

from autosplit.scheduler.core import Scheduler, SchedulerError
from autosplit.scheduler.requests import JobRequest
from autosplit.splitting.limits import alone_hard_limit, job_hard_limit, probe_hard_limit

__all__ = [
    "JobRequest",
    "Scheduler",
    "SchedulerError",
    "alone_hard_limit",
    "job_hard_limit",
    "probe_hard_limit",
]
