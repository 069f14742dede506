"""``python -m bench.peers`` (or ``bench/peers/run``): django-bgjobs against bare Celery
(default and safe settings), django-tasks-db, django-q2 and Procrastinate, one table.

Run it alone on the machine (``flock /tmp/bench.lock bench/peers/run`` where benches share
one): other load distorts every figure, and the WAL and Redis counters are server-wide.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.peers import measure, report
from bench.peers.measure import Result, Settings
from bench.peers.processes import Driver, PeerFailure, base_env
from bench.peers.systems import SYSTEMS
from bench.peers.venvs import main_python, peers_python


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    keys = [system.key for system in SYSTEMS]
    parser.add_argument("--systems", default=",".join(keys), help=f"subset of {','.join(keys)}")
    parser.add_argument("--calls", type=int, default=2000, help="timed enqueues per system")
    parser.add_argument("--warmup", type=int, default=200, help="untimed enqueues first")
    parser.add_argument("--block", type=int, default=100, help="enqueues per system per turn")
    parser.add_argument("--jobs", type=int, default=5000, help="jobs drained per system")
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--latency-warmup", type=int, default=20)
    parser.add_argument("--spacing-ms", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="per drain, seconds")
    parser.add_argument(
        "--conn-max-age",
        default="none",
        help="Django's CONN_MAX_AGE for every Django-based system (BENCH_CONN_MAX_AGE); "
        "default none (persistent), see bench/README.md",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep logs and records")
    return parser.parse_args()


def start_drivers(
    results: dict[str, Result], logdir: Path, peers: tuple[str | None, str | None]
) -> dict[str, Driver]:
    drivers: dict[str, Driver] = {}
    for key, result in results.items():
        system = result.system
        python, problem = (main_python(), None) if system.venv == "main" else peers
        if python is None:
            result.error = problem
            continue
        driver = Driver(python, system.adapter, logdir / f"{key}-driver.log", base_env())
        try:
            info = driver.request("info")
            result.database, result.uses_redis = info["database"], info["redis"]
            result.versions = {"python": info["python"], **driver.request("setup")}
        except PeerFailure as exc:
            result.error = str(exc)
            driver.close()
            continue
        drivers[key] = driver
    return drivers


def main() -> None:
    args = parse()
    started = time.monotonic()
    wanted = set(args.systems.split(","))
    os.environ["BENCH_CONN_MAX_AGE"] = args.conn_max_age  # inherited by drivers and workers
    s = Settings(
        calls=args.calls,
        warmup=args.warmup,
        block=args.block,
        jobs=args.jobs,
        latency_jobs=args.latency_jobs,
        latency_warmup=args.latency_warmup,
        spacing=args.spacing_ms / 1000,
        timeout=args.timeout,
    )
    results = {system.key: Result(system) for system in SYSTEMS if system.key in wanted}
    load = [("start", os.getloadavg())]
    if load[0][1][0] > (os.cpu_count() or 1) * 0.5:
        report.say(f"warning: load average {load[0][1][0]:.2f}: other work distorts the figures")
    logdir = Path(tempfile.mkdtemp(prefix="bgjobs-peers-"))
    needs_peers = any(result.system.venv == "peers" for result in results.values())
    peers = peers_python() if needs_peers else (None, "not selected")
    drivers = start_drivers(results, logdir, peers)
    try:
        report.say(f"[enqueue] {s.calls} calls per system, blocks of {s.block}, in turn ...")
        measure.enqueue_latency(drivers, results, s)
        for key, driver in drivers.items():
            result = results[key]
            if result.error:
                continue
            try:
                report.say(f"[{key}] drain {s.jobs} ...")
                measure.drain(key, drivers, result, s, logdir)
                report.say(f"[{key}] enqueue->start, {s.latency_jobs} jobs ...")
                measure.start_latency(key, drivers, result, s, logdir)
                driver.request("reset")
            except (PeerFailure, TimeoutError) as exc:
                result.error = str(exc)
    finally:
        for driver in drivers.values():
            driver.close()
        if args.keep_logs:
            report.say(f"logs and records kept in {logdir}")
        else:
            shutil.rmtree(logdir, ignore_errors=True)
    load.append(("end", os.getloadavg()))

    report.say()
    for line in report.environment(results):
        report.say(line)
    report.say(
        f"enqueue: {s.calls} calls after {s.warmup}; drain: {s.jobs} jobs; enqueue->start: "
        f"{s.latency_jobs} jobs {args.spacing_ms:g} ms apart; CONN_MAX_AGE={args.conn_max_age}"
    )
    report.say()
    for line in report.table(results, s):
        report.say(line)
    report.say()
    for line in report.notes(results, s):
        report.say(f"- {line}")
    report.say(
        "- load average (1, 5, 15 min): "
        + "; ".join(f"{when} {a:.2f} {b:.2f} {c:.2f}" for when, (a, b, c) in load)
        + f"; bench took {time.monotonic() - started:.0f}s"
    )


if __name__ == "__main__":
    main()
