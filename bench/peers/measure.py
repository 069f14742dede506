"""The three measurements, each run the same way for every system through its driver.

Enqueue: ``calls`` single enqueues per system in autocommit, no worker running, after
``warmup`` untimed ones; the systems take turns in blocks of ``block`` calls (the order rotating
each round), so that a busy moment of the machine falls on all of them alike.

Drain: ``jobs`` no-op jobs enqueued with no worker running, every database connection closed,
the counters read; then the workers started; when the body has recorded every job, the workers
stopped (warm shutdown) and, once all their connections are gone, the counters read again. The
time is from the first body's start to the last body's end, as the bodies recorded them.

Latency: with the tables emptied, the workers started, warmed by a few jobs and left idle for a
second, then ``latency_jobs`` jobs ``spacing`` apart, each carrying time.time() taken just
before its enqueue call; the body's start minus that is the enqueue->start latency.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.peers import body, pg, redis_stats
from bench.peers.processes import Driver, PeerFailure, WorkerGroup, base_env
from bench.peers.systems import System

# Job numbers of the latency warm-up: above any drain or latency job's (9 digits at most).
WARMUP_FIRST = 900_000_000


@dataclass
class Settings:
    calls: int
    warmup: int
    block: int
    jobs: int
    latency_jobs: int
    latency_warmup: int
    spacing: float
    timeout: float


@dataclass
class Result:
    system: System
    error: str | None = None
    database: str | None = None
    uses_redis: bool = False
    versions: dict[str, str] = field(default_factory=dict)
    describe: str = ""
    enqueue_us: list[float] = field(default_factory=list)
    prepare_seconds: float = math.nan
    drain_seconds: float = math.nan
    startup_seconds: float = math.nan  # workers spawned -> first body started
    wall_seconds: float = math.nan  # workers spawned -> last job recorded
    duplicates: int = 0
    pg_delta: pg.PgCounters | None = None
    redis_delta: int | None = None
    redis_background: float = 0.0  # commands/s the Redis server served just before, idle
    check: str = ""
    latency_ms: list[float] = field(default_factory=list)


def enqueue_latency(drivers: dict[str, Driver], results: dict[str, Result], s: Settings) -> None:
    live = [key for key in drivers if results[key].error is None]
    if not live:
        return

    def timed(key: str, first: int, calls: int) -> list[float]:
        try:
            return list(drivers[key].request("enqueue_timed", first=first, calls=calls))
        except PeerFailure as exc:
            results[key].error = f"enqueue: {exc}"
            return []

    for key in live:
        timed(key, 0, s.warmup)
    for turn, done in enumerate(range(0, s.calls, s.block)):
        shift = turn % len(live)
        for key in live[shift:] + live[:shift]:
            if results[key].error is None:
                results[key].enqueue_us += timed(key, s.warmup + done, min(s.block, s.calls - done))
    for key in live:
        if results[key].error is None:
            drivers[key].request("reset")  # the enqueued jobs are never run


def drain(key: str, drivers: dict[str, Driver], result: Result, s: Settings, logdir: Path) -> None:
    driver = drivers[key]
    driver.request("reset")
    folder = _fresh(logdir / f"{key}-drain-records")
    result.prepare_seconds = driver.request("enqueue_bulk", count=s.jobs)
    spec = driver.request("workers")
    result.describe = spec["describe"]

    quiesce(drivers, result.database)
    # Redis is shared by the whole machine: what it serves while nothing of ours runs is noise.
    idle_start, idle_commands = time.monotonic(), redis_stats.commands_total()
    time.sleep(1.0)
    pg_before = pg.counters(result.database)
    redis_before = redis_stats.commands_total()
    result.redis_background = (redis_before - idle_commands) / (time.monotonic() - idle_start)
    env = base_env({**spec["env"], body.RECORDS_ENV: str(folder)}, spec["unset_env"])
    with WorkerGroup(spec["commands"], env, logdir / f"{key}-drain-worker") as workers:
        wait_for_records(folder, set(range(s.jobs)), workers, s.timeout)
        result.wall_seconds = time.time() - workers.spawned_at
    quiesce(drivers, result.database)
    result.pg_delta = pg.counters(result.database) - pg_before
    result.redis_delta = redis_stats.commands_total() - redis_before

    records = [record for record in body.read(folder) if record.n < s.jobs]
    result.drain_seconds = max(r.ended for r in records) - min(r.started for r in records)
    result.startup_seconds = min(r.started for r in records) - workers.spawned_at
    result.duplicates = len(records) - len({r.n for r in records})
    result.check = driver.request("check", count=s.jobs)


def start_latency(
    key: str, drivers: dict[str, Driver], result: Result, s: Settings, logdir: Path
) -> None:
    driver = drivers[key]
    driver.request("reset")
    folder = _fresh(logdir / f"{key}-latency-records")
    spec = driver.request("workers")
    env = base_env({**spec["env"], body.RECORDS_ENV: str(folder)}, spec["unset_env"])
    with WorkerGroup(spec["commands"], env, logdir / f"{key}-latency-worker") as workers:
        warm = range(WARMUP_FIRST, WARMUP_FIRST + s.latency_warmup)
        driver.request("enqueue_spaced", first=warm.start, count=len(warm), spacing=s.spacing)
        wait_for_records(folder, set(warm), workers, s.timeout)
        time.sleep(1.0)  # idle and warm
        driver.request("enqueue_spaced", first=0, count=s.latency_jobs, spacing=s.spacing)
        wait_for_records(folder, set(range(s.latency_jobs)), workers, s.timeout)
    first: dict[int, body.Record] = {}
    for record in body.read(folder):
        if record.n < s.latency_jobs and (
            record.n not in first or record.started < first[record.n].started
        ):
            first[record.n] = record
    result.latency_ms = [(r.started - r.published) * 1000 for r in first.values()]


def quiesce(drivers: dict[str, Driver], database: str | None) -> None:
    """Every driver's connections closed and gone from the server, then a pause: what ran in
    the database before now is in its statistics, and the WAL writer has reported its syncs."""
    for driver in drivers.values():
        try:
            driver.request("close")
        except PeerFailure:
            pass  # a broken driver holds no connection that matters here
    if database:
        pg.wait_for_no_clients(database)
    time.sleep(1.2)


def wait_for_records(
    folder: Path, expected: set[int], workers: WorkerGroup, timeout: float
) -> None:
    """Until the body has recorded every job number in ``expected``."""
    deadline = time.monotonic() + timeout
    while True:
        if body.count(folder) >= len(expected):
            if expected <= {record.n for record in body.read(folder)}:
                return
        workers.check_alive()
        if time.monotonic() > deadline:
            raise PeerFailure(
                f"timed out after {timeout:.0f}s with {body.count(folder)} of {len(expected)} "
                f"jobs recorded: {workers.tail()[-300:]}"
            )
        time.sleep(0.1)


def _fresh(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=False)
    return folder
