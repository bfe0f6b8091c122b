"""``python -m autosplit.backends.local run <dag>``: the executor as a process (used for SUBDAG nodes).

A SUBDAG node's job is this command run in the node's directory, as DAGMan runs ``condor_dagman`` for a
sub-DAG; its exit status is the sub-DAG's DAGMan exit status. Errors print one line and exit 1.
"""

from __future__ import annotations

import argparse
import sys

from autosplit.errors import AutosplitError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autosplit.backends.local")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a DAG file")
    run.add_argument("dag")
    run.add_argument("--workdir")
    run.add_argument("--max-jobs", type=int)
    run.add_argument("--max-pre", type=int)
    run.add_argument("--max-post", type=int)
    run.add_argument("--poll-interval", type=float, default=1.0)
    run.add_argument("--kill-grace", type=float, default=10.0)
    run.add_argument("--defer-factor", type=float, default=1.0)
    run.add_argument("--submit-retry-delay", type=float, default=1.0)
    run.add_argument("--priority", type=int, default=0)
    run.add_argument("--no-auto-rescue", action="store_true")
    cycle = run.add_mutually_exclusive_group()
    cycle.add_argument("--cycle-check", dest="cycle", action="store_true", default=None)
    cycle.add_argument("--no-cycle-check", dest="cycle", action="store_false")
    args = parser.parse_args(argv)

    from autosplit.backends.local.executor import run_dag

    try:
        result = run_dag(
            args.dag,
            args.max_jobs,
            args.max_pre,
            args.max_post,
            workdir=args.workdir,
            poll_interval=args.poll_interval,
            kill_grace=args.kill_grace,
            defer_factor=args.defer_factor,
            submit_retry_delay=args.submit_retry_delay,
            auto_rescue=False if args.no_auto_rescue else None,
            startup_cycle_detect=args.cycle,
            priority=args.priority,
        )
    except AutosplitError as exc:
        print(f"autosplit: error: {exc}", file=sys.stderr)
        return 1
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
