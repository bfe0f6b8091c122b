"""Throttles: which waiting scripts and jobs may start now.

* PRE scripts up to ``max_pre`` at once (none while the DAG is halted, except for the FINAL node);
* POST scripts up to ``max_post`` at once (also while halted: running jobs finish their nodes);
* node jobs from the ready queue up to ``max_jobs`` at once, and up to ``MAXJOBS`` per CATEGORY, no
  faster than one per DAGMAN_SUBMIT_DELAY. The ready queue is ordered by PRIORITY (highest first), FIFO
  among equals (:meth:`DagState.push_ready`); a node held back by its category keeps its place.

0 means unlimited for every limit.
"""

from __future__ import annotations

import collections
import heapq
import time

from autosplit.backends.local.launcher import Launcher
from autosplit.backends.local.model import NodeStatus
from autosplit.backends.local.state import DagState


class Throttle:
    def __init__(self, state: DagState, launcher: Launcher) -> None:
        self.state = state
        self.launcher = launcher
        self.next_submit_time = 0.0  # time.monotonic() before which DAGMAN_SUBMIT_DELAY holds submits back

    def dispatch(self) -> None:
        """Start the PRE scripts, POST scripts and jobs the limits allow, in queue order."""
        state, launcher, settings = self.state, self.launcher, self.state.settings
        if not state.halted or state.final_started:
            while state.pre_wait and (settings.max_pre == 0 or state.pre_running < settings.max_pre):
                run = state.runs[state.pre_wait.popleft()]
                if run.status == NodeStatus.PRERUN and not run.doomed:
                    launcher.start_script(run, run.node.pre)  # type: ignore[arg-type]
        while state.post_wait and (settings.max_post == 0 or state.post_running < settings.max_post):
            run = state.runs[state.post_wait.popleft()]
            if run.status == NodeStatus.POSTRUN and not run.doomed:
                launcher.start_script(run, run.node.post)  # type: ignore[arg-type]
        if state.halted and not state.final_started:
            return
        deferred: list[tuple[int, int, str]] = []
        in_category: collections.Counter[str] = collections.Counter()
        maxjobs = state.dag.maxjobs
        if maxjobs and state.ready:
            for r in state.runs.values():
                if r.status == NodeStatus.SUBMITTED and r.node.category is not None:
                    in_category[r.node.category] += 1
        while state.ready:
            if settings.max_jobs and state.count[NodeStatus.SUBMITTED] >= settings.max_jobs:
                break
            if settings.submit_delay and time.monotonic() < self.next_submit_time:
                break
            entry = heapq.heappop(state.ready)
            run = state.runs[entry[2]]
            if run.status != NodeStatus.READY or run.doomed:
                continue
            category = run.node.category
            if category is not None:
                limit = maxjobs.get(category)
                if limit and in_category[category] >= limit:
                    deferred.append(entry)
                    continue
            if launcher.submit(run) and category is not None and run.status == NodeStatus.SUBMITTED:
                in_category[category] += 1
            if settings.submit_delay:
                self.next_submit_time = time.monotonic() + settings.submit_delay
        for entry in deferred:
            heapq.heappush(state.ready, entry)

    def submit_wait(self) -> float | None:
        """Seconds until DAGMAN_SUBMIT_DELAY lets the next queued job go (None: nothing held back by it)."""
        if self.state.settings.submit_delay and self.state.ready:
            return max(self.next_submit_time - time.monotonic(), 0.0)
        return None
