"""The chaos suite: ``bench/chaos/run [--full] [--seeds 1,2,3] [--scenarios 1,4,7]``.

Real processes (PostgreSQL, Redis, N Celery workers with their dispatchers, web processes),
real faults on a seeded schedule, then a Jepsen-style check of the ledger. One line per
scenario and seed; exit status 1 if any line fails (lost, dup_effect, stuck or unexpected
not 0, or a scenario's own check).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.chaos.settings")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="bench/chaos/run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="10,000 jobs a scenario and seeds 1-5 (default: ~1,000 jobs, seed 1)",
    )
    parser.add_argument("--seeds", default=None, help="comma-separated seeds")
    parser.add_argument("--scenarios", default=None, help="comma-separated scenario numbers")
    parser.add_argument(
        "--flush",
        choices=["flushall", "flushdb"],
        default="flushall",
        help="how scenario 6 wipes Redis (flushdb spares other databases)",
    )
    parser.add_argument("--logs", default=str(REPO / ".state" / "chaos"))
    args = parser.parse_args()

    import django

    django.setup()
    import celery
    import kombu
    from django.db import connection

    from bench.chaos import harness, scenarios
    from bench.chaos.ledger import Report

    size = scenarios.FULL if args.full else scenarios.SMALL
    seeds = (
        [int(s) for s in args.seeds.split(",")]
        if args.seeds
        else ([1, 2, 3, 4, 5] if args.full else [1])
    )
    chosen = args.scenarios.split(",") if args.scenarios else list(scenarios.SCENARIOS)
    unknown = [s for s in chosen if s not in scenarios.SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(scenarios.SCENARIOS)}")
    scenarios.FLUSH = args.flush
    log_dir = Path(args.logs)
    log_dir.mkdir(parents=True, exist_ok=True)

    if leftovers := harness.kill_leftovers():
        print(f"# killed {leftovers} chaos worker process(es) left by an earlier run", flush=True)
    harness.ensure_database()
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    redis_version = harness.broker().info("server")["redis_version"]
    print(f"# chaos suite: {'full' if args.full else 'small'}, seeds {seeds}, {size}", flush=True)
    print(
        f"# python {platform.python_version()} celery {celery.__version__} kombu "
        f"{kombu.__version__} postgresql {pg} redis {redis_version}; logs in {log_dir}",
        flush=True,
    )
    print(Report.HEADER, flush=True)
    failed = 0
    for seed in seeds:
        for name in chosen:
            began = time.monotonic()
            run = scenarios.Run(size=size, seed=seed, log_dir=log_dir)
            try:
                report = scenarios.SCENARIOS[name](run)
            except Exception as exc:  # a harness failure is a failed scenario, not a crash
                report = Report(name, seed)
                report.failures.append(f"{type(exc).__name__}: {exc}")
            report.notes["wall_s"] = round(time.monotonic() - began, 1)
            print(report.line(), flush=True)
            failed += not report.passed
    print(f"# {failed} failing line(s)" if failed else "# all scenarios passed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
