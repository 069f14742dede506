"""The scenarios of ../shared/reference/reliability.md that the chaos suite runs.

Each one starts a fresh stack, runs a workload, injects its faults on a schedule drawn from the
seed, waits for quiescence and hands the ledger to ``ledger.check``.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from bench.chaos import harness
from bench.chaos.delivery import delivery
from bench.chaos.durable import durable
from bench.chaos.flow import flow_control
from bench.chaos.jobs import POISON_ATTEMPTS, poison, slot_key, tick, work
from bench.chaos.ledger import Hit, Report, check
from bench.chaos.models import Execution
from bench.chaos.web import wants_rollback
from django_bgjobs import enqueue_many
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.models import Job, JobRun, JobStatus, ScheduleSlot
from django_bgjobs.schedules import EARLY


@dataclass(frozen=True)
class Size:
    jobs: int  # per scenario (scenario 11 and 9 use fewer, as reliability.md does)
    workers: int
    concurrency: int
    ms: tuple[int, int]  # how long a job works, drawn uniformly
    kills: int  # scenario 1
    web_kills: int  # scenario 4
    redis_pause: float  # scenario 4, seconds
    outage: float  # scenario 7, seconds
    delayed: int  # scenario 9
    zombies: int  # scenario 11
    drain_timeout: float
    beat_seconds: float  # scenario 10: how long the beats fire
    beat_kills: int  # scenario 10: SIGKILLs of one beat while the other fires
    beat_outage: float  # scenario 10: seconds with no beat at all


SMALL = Size(
    jobs=1000,
    workers=3,
    concurrency=3,
    ms=(10, 80),
    kills=3,
    web_kills=5,
    redis_pause=3,
    outage=10,
    delayed=300,
    zombies=60,
    drain_timeout=180,
    beat_seconds=60,
    beat_kills=1,
    beat_outage=10,
)
# Jobs of 20-200 ms (reliability.md has 50-500 ms) keep five seeds within about an hour here.
FULL = Size(
    jobs=10_000,
    workers=4,
    concurrency=4,
    ms=(20, 200),
    kills=3,
    web_kills=50,
    redis_pause=30,
    outage=60,
    delayed=1000,
    zombies=100,
    drain_timeout=900,
    beat_seconds=240,
    beat_kills=3,
    beat_outage=30,
)


@dataclass
class Run:
    size: Size
    seed: int
    log_dir: Path

    @property
    def rng(self) -> random.Random:
        return random.Random(self.seed)

    def stack(self) -> harness.Stack:
        harness.reset_data()
        stack = harness.Stack(self.size.workers, self.size.concurrency, self.log_dir)
        stack.start()
        return stack

    def prefix(self, scenario: str) -> str:
        return f"s{scenario}x{self.seed}"

    def enqueue_upfront(
        self,
        prefix: str,
        count: int,
        rng: random.Random,
        delay: Callable[[random.Random], float] | None = None,
    ) -> list[str]:
        keys = [f"{prefix}-{i}" for i in range(count)]
        for start in range(0, count, 500):
            calls = []
            for key in keys[start : start + 500]:
                ms = rng.randint(*self.size.ms)
                job = work if delay is None else work.using(delay=delay(rng))
                calls.append(job.prepare(key, ms))
            enqueue_many(calls)
        return keys

    def estimate(self, count: int) -> float:
        """Seconds the stack needs for ``count`` jobs, if nothing goes wrong."""
        average = sum(self.size.ms) / 2 / 1000 + 0.01
        return count * average / (self.size.workers * self.size.concurrency)

    def drain(self, stack: harness.Stack) -> None:
        harness.wait_quiet(self.size.drain_timeout)

    def fault_plan(
        self, span: float, kills_within: tuple[float, float] = (0.05, 0.6)
    ) -> list[tuple[float, str]]:
        """The size's kills at seeded moments within ``kills_within`` of ``span`` seconds, and
        one wipe of Redis within its middle 60%, in the order they happen."""
        low, high = kills_within
        return sorted(
            [(self.rng.uniform(low, high) * span, "kill") for _ in range(self.size.kills)]
            + [(self.rng.uniform(0.2, 0.8) * span, "wipe")]
        )

    def kills_and_a_wipe(
        self, stack: harness.Stack, plan: list[tuple[float, str]], rng: random.Random
    ) -> list[datetime]:
        """Carry out ``plan`` (seconds from now, "kill" a random worker or "wipe" Redis, as
        ``FLUSH`` says); returns when each fault happened."""
        began, happened = time.monotonic(), []
        for at, fault in plan:
            time.sleep(max(0.0, began + at - time.monotonic()))
            happened.append(timezone.now())
            if fault == "kill":
                stack.kill(rng.randrange(self.size.workers))
            else:
                broker = harness.broker()
                (broker.flushall if FLUSH == "flushall" else broker.flushdb)()
        return happened


def _at(delay: float, action: Callable[[], None]) -> threading.Timer:
    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.start()
    return timer


def hard_crash(run: Run) -> Report:
    """1: kill -9 of a whole worker (main process and pool) at seeded times; restarted."""
    rng, prefix = run.rng, run.prefix("1")
    report = Report("1-crash", run.seed)
    stack = run.stack()
    faults: list[datetime] = []
    try:
        keys = run.enqueue_upfront(prefix, run.size.jobs, rng)
        report.attempted = len(keys)
        span = max(run.estimate(len(keys)), 3.0)
        plan = sorted(
            (rng.uniform(0.1, 0.7) * span, rng.randrange(run.size.workers))
            for _ in range(run.size.kills)
        )
        began = time.monotonic()
        for at, index in plan:
            time.sleep(max(0.0, began + at - time.monotonic()))
            faults.append(timezone.now())
            stack.kill(index)
        run.drain(stack)
    finally:
        stack.stop()
    check(report, prefix, faults=faults)
    report.notes.update(kills=len(faults), restarts=stack.restarts)
    # In-flight attempts at each kill are the most it may cost in repeated executions.
    budget = len(faults) * run.size.concurrency
    if report.dup_exec > budget:
        report.failures.append(f"dup_exec {report.dup_exec} > in-flight at the kills {budget}")
    return report


def rolling_deploy(run: Run) -> Report:
    """2: every worker in turn gets SIGTERM (a rolling deploy) while jobs run, a few of them
    longer than SHUTDOWN_GRACE; the supervisor starts it again once it has exited."""
    rng, prefix = run.rng, run.prefix("2")
    report = Report("2-deploy", run.seed)
    grace = float(bgjobs_settings.SHUTDOWN_GRACE)
    stack = run.stack()
    faults: list[datetime] = []
    exits: list[float] = []
    try:
        calls = []
        for i in range(run.size.jobs):
            # 3% (30) in the small run; 1% (100) of 10,000, where 3% would take ten minutes.
            long = rng.random() < min(0.03, 100 / run.size.jobs)
            ms = int(grace * 1000 * rng.uniform(1.5, 3)) if long else rng.randint(*run.size.ms)
            calls.append(work.prepare(f"{prefix}-{i}", ms))
        for start in range(0, len(calls), 500):
            enqueue_many(calls[start : start + 500])
        report.attempted = len(calls)
        for index in range(run.size.workers):
            time.sleep(rng.uniform(0.5, 1.5))
            old = stack.procs[index].proc
            assert old is not None
            faults.append(timezone.now())
            told = time.monotonic()
            stack.terminate(index)
            old.wait(timeout=grace + 30)
            exits.append(time.monotonic() - told)
            while stack.procs[index].proc is old:  # the supervisor starts it again
                time.sleep(0.05)
            stack.procs[index].wait_ready()
        run.drain(stack)
    finally:
        stack.stop()
    check(report, prefix, faults=faults)
    released = int(str(report.notes.get("runs_released", 0)))
    report.notes.update(grace_s=grace, exit_max_s=f"{max(exits):.1f}", stops=len(faults))
    if report.notes.get("runs_lost"):
        report.failures.append("an attempt was left to its lease instead of released")
    if report.dup_exec > released:
        report.failures.append("a job ran again although its attempt was not released")
    if max(exits) > grace + 10:
        report.failures.append("a worker took longer than SHUTDOWN_GRACE + 10 s to exit")
    return report


def poison_pill(run: Run) -> Report:
    """3: 1% of the jobs kill the process running them, every time."""
    rng, prefix = run.rng, run.prefix("3")
    report = Report("3-poison", run.seed)
    stack = run.stack()
    try:
        calls, bad = [], set()
        for i in range(run.size.jobs):
            key = f"{prefix}-{i}"
            if rng.random() < 0.01:
                bad.add(key)
                calls.append(poison.prepare(key))
            else:
                calls.append(work.prepare(key, rng.randint(*run.size.ms)))
        for start in range(0, len(calls), 500):
            enqueue_many(calls[start : start + 500])
        report.attempted = len(calls)
        run.drain(stack)
    finally:
        stack.stop()
    # A poison attempt is hit when it kills its process, right after logging its execution.
    killed_at = dict(
        ((job_id, attempt), at)
        for job_id, attempt, at in Execution.objects.filter(key__in=bad).values_list(
            "job_id", "attempt", "at"
        )
    )
    check(
        report,
        prefix,
        poison=bad,
        fault_of=lambda job_id, attempt: killed_at.get((job_id, attempt)),
    )
    executions_of_poison = JobRun.objects.filter(job__args__0__in=list(bad)).count()
    report.notes.update(
        poison=len(bad),
        poison_runs=executions_of_poison,
        budget=POISON_ATTEMPTS,
        unexpected_worker_exits=stack.unexpected_exits,
    )
    if stack.unexpected_exits:
        report.failures.append("a worker main process exited")
    return report


def _journal(path: Path) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {"ok": set(), "rollback": set(), "refused": set(), "kill": set()}
    if path.exists():
        for line in path.read_text().splitlines():
            kind, _, key = line.partition(" ")
            seen.setdefault(kind, set()).add(key)
    return seen


def outbox(run: Run) -> Report:
    """4: web requests write a business row and its job in one transaction, 10% roll back;
    the web process is SIGKILLed between COMMIT and publish; Redis is paused mid-run."""
    rng, prefix = run.rng, run.prefix("4")
    report = Report("4-outbox", run.seed)
    journal = run.log_dir / f"web-{prefix}.journal"
    journal.unlink(missing_ok=True)
    count = run.size.jobs
    rate = max(count / 20, 50)  # the requests span about 20 s
    committing = [i for i in range(count) if not wants_rollback(prefix, i, 0.1)]
    kill_at = sorted(rng.sample(committing, run.size.web_kills))
    stack = run.stack()
    pause_at = rng.uniform(0.3, 0.6) * count / rate
    faults: list[datetime] = []
    try:
        began = time.monotonic()
        pauser = _at(
            pause_at,
            lambda: (
                faults.append(timezone.now()),
                harness.broker().client_pause(int(run.size.redis_pause * 1000)),
            ),
        )
        start, restarts = 0, 0
        while start < count:
            web = harness.run_web(
                [
                    "--prefix",
                    prefix,
                    "--start",
                    str(start),
                    "--count",
                    str(count - start),
                    "--rate",
                    str(rate),
                    "--rollback",
                    "0.1",
                    "--journal",
                    str(journal),
                    "--kill-at",
                    ",".join(map(str, kill_at)),
                    "--ms",
                    str(run.size.ms[0]),
                ],
                run.log_dir / "web.log",
            )
            web.wait()
            if web.returncode == 0:
                break
            if web.returncode != -signal.SIGKILL:
                raise RuntimeError(f"web process failed ({web.returncode}); see web.log")
            killed = sorted(int(key.rsplit("-", 1)[1]) for key in _journal(journal)["kill"])
            start = killed[-1] + 1
            restarts += 1
            kill_at = [i for i in kill_at if i >= start]
        pauser.join()
        report.notes.update(requests_s=round(time.monotonic() - began, 1))
        run.drain(stack)
    finally:
        stack.stop()
    seen = _journal(journal)
    report.attempted = count
    # A job stranded by a crash after COMMIT is hit at its commit; the dispatcher republishes.
    stranded = [
        Hit(pk, None, created)
        for pk, created in Job.objects.filter(args__0__in=list(seen["kill"])).values_list(
            "pk", "created_at"
        )
    ]
    check(
        report,
        prefix,
        acknowledged=seen["ok"],
        rolled_back=seen["rollback"],
        faults=faults,
        waiting=stranded,
    )
    report.notes.update(
        ok=len(seen["ok"]),
        rolled_back=len(seen["rollback"]),
        killed_after_commit=len(seen["kill"]),
        web_restarts=restarts,
    )
    if len(seen["kill"]) != run.size.web_kills:
        report.failures.append("not every planned kill happened")
    return report


def redis_wiped(run: Run) -> Report:
    """6: FLUSHALL while jobs are queued and running (Redis keeps nothing)."""
    rng, prefix = run.rng, run.prefix("6")
    report = Report("6-flushall", run.seed)
    stack = run.stack()
    faults: list[datetime] = []
    try:
        # The queue is full before the workers take anything: the wipe loses most of it.
        for proc in stack.procs:
            proc.signal_group(signal.SIGSTOP)
        keys = run.enqueue_upfront(prefix, run.size.jobs, rng)
        report.attempted = len(keys)
        for proc in stack.procs:
            proc.signal_group(signal.SIGCONT)
        time.sleep(rng.uniform(0.2, 0.4) * max(run.estimate(len(keys)), 2.0))
        waiting = set(
            Job.objects.filter(
                args__0__startswith=prefix + "-", status=JobStatus.QUEUED
            ).values_list("pk", flat=True)
        )
        faults.append(timezone.now())
        flush = harness.broker().flushall if FLUSH == "flushall" else harness.broker().flushdb
        flush()
        run.drain(stack)
    finally:
        stack.stop()
    check(report, prefix, faults=faults, waiting=[Hit(pk, None, faults[0]) for pk in waiting])
    report.notes.update(queued_at_wipe=len(waiting), wipe=FLUSH)
    return report


FLUSH = "flushall"


def database_outage(run: Run) -> Report:
    """7: the database refuses every connection for a while, under steady enqueue traffic."""
    rng, prefix = run.rng, run.prefix("7")
    report = Report("7-db-outage", run.seed)
    journal = run.log_dir / f"web-{prefix}.journal"
    journal.unlink(missing_ok=True)
    # Steady traffic at about half of what the workers can run, so that what the outage costs
    # is not hidden behind a backlog of the load itself.
    ms = run.size.ms[1]
    capacity = run.size.workers * run.size.concurrency / (ms / 1000 + 0.01)
    duration = run.size.outage * 2 + 10
    rate = capacity / 2
    count = int(rate * duration)
    outage = harness.DatabaseOutage()
    stack = run.stack()
    mains = [proc.proc.pid for proc in stack.procs if proc.proc]
    faults: list[datetime] = []
    try:
        # Jobs long enough that the outage catches several of them running.
        web = harness.run_web(
            [
                "--prefix",
                prefix,
                "--count",
                str(count),
                "--rate",
                str(rate),
                "--journal",
                str(journal),
                "--ms",
                str(ms),
            ],
            run.log_dir / "web.log",
        )
        time.sleep(rng.uniform(0.15, 0.3) * duration)
        queued = list(
            Job.objects.filter(
                args__0__startswith=prefix + "-", status=JobStatus.QUEUED
            ).values_list("pk", flat=True)
        )
        outage.begin()
        try:
            time.sleep(run.size.outage)
        finally:
            outage.end()
        faults.append(timezone.now())  # recovery counts from the database's return
        if web.wait(timeout=duration * 3) != 0:
            raise RuntimeError("the web process failed; see web.log")
        run.drain(stack)
        survivors = sum(1 for proc in stack.procs if proc.proc and proc.proc.pid in mains)
    finally:
        stack.stop()
    seen = _journal(journal)
    report.attempted = count
    # Recovery counts from the database's return, for the attempts the outage broke and the
    # jobs that were waiting when it began.
    check(
        report,
        prefix,
        acknowledged=seen["ok"],
        faults=faults,
        waiting=[Hit(pk, None, faults[0]) for pk in queued],
    )
    report.notes.update(
        ok=len(seen["ok"]),
        refused=len(seen["refused"]),
        outage_s=run.size.outage,
        worker_exits=stack.unexpected_exits,
        workers_never_restarted=f"{survivors}/{len(mains)}",
    )
    if stack.unexpected_exits:
        report.failures.append("a worker process exited during the outage")
    if not seen["refused"]:
        report.failures.append("no request was refused: did the outage happen?")
    return report


def delayed_jobs(run: Run) -> Report:
    """9: jobs delayed 2-4x the broker's visibility timeout run exactly once; a worker is
    SIGKILLed while they wait."""
    rng, prefix = run.rng, run.prefix("9")
    report = Report("9-delayed", run.seed)
    vt = float(settings.VISIBILITY_TIMEOUT)
    stack = run.stack()
    faults: list[datetime] = []
    try:
        keys = run.enqueue_upfront(
            prefix, run.size.delayed, rng, delay=lambda r: r.uniform(2, 4) * vt
        )
        report.attempted = len(keys)
        time.sleep(rng.uniform(0.3, 0.9) * vt)
        faults.append(timezone.now())
        stack.kill(rng.randrange(run.size.workers))
        time.sleep(4 * vt)
        run.drain(stack)
    finally:
        stack.stop()
    check(report, prefix, faults=faults)
    report.notes.update(visibility_timeout_s=vt, delays_s=f"{2 * vt:.0f}-{4 * vt:.0f}")
    if report.dup_exec:
        report.failures.append("a delayed job ran more than once")
    return report


def zombie(run: Run) -> Report:
    """11: a worker paused (SIGSTOP) for 3 leases, then resumed: its late completions must
    be rejected, and no newer attempt's result overwritten."""
    rng, prefix = run.rng, run.prefix("11")
    report = Report("11-zombie", run.seed)
    lease = float(bgjobs_settings.LEASE_SECONDS)
    stack = run.stack()
    faults: list[datetime] = []
    try:
        keys = [f"{prefix}-{i}" for i in range(run.size.zombies)]
        enqueue_many([work.prepare(key, rng.randint(1000, 3000)) for key in keys])
        report.attempted = len(keys)
        time.sleep(rng.uniform(0.5, 1.5))
        victim = rng.randrange(run.size.workers)
        faults.append(timezone.now())
        stack.kill(victim, signal.SIGSTOP)
        time.sleep(3 * lease)
        stack.kill(victim, signal.SIGCONT)
        run.drain(stack)
        time.sleep(2)  # the zombie's late reports
    finally:
        stack.stop()
    check(report, prefix, faults=faults)
    superseded = report.notes.get("runs_superseded", 0)
    if not superseded:
        report.failures.append("no attempt was superseded: did the pause catch running jobs?")
    return report


def beat_duplication(run: Run) -> Report:
    """10: the ten schedules of ``tick`` (every 2-6 s; catch_up "latest" and "all") fired by
    two beats at once for ``beat_seconds``; now and then one beat SIGKILLed and restarted a few
    seconds later (the other fires meanwhile: no slot may be missed), and once both beats
    SIGKILLed for ``beat_outage`` seconds (the slots due meanwhile follow each schedule's
    catch_up). Exactly one job per (schedule, slot), every one succeeded."""
    rng, size = run.rng, run.size
    report = Report("10-beat", run.seed)
    span = size.beat_seconds
    beats = [harness.BeatProcess(i, run.log_dir / f"beat{i}.log") for i in range(2)]
    for beat in beats:
        beat.log_path.unlink(missing_ok=True)
    # The plan, in seconds from the start: single-beat kills spread over 10-50% of the run,
    # the outage at 60-70%.
    plan: list[tuple[float, str, int]] = []
    for i in range(size.beat_kills):
        lo = span * (0.1 + 0.4 * i / size.beat_kills)
        at = rng.uniform(lo, lo + 0.4 * span / size.beat_kills - 10)
        victim = rng.randrange(len(beats))
        plan += [(at, "kill", victim), (at + rng.uniform(3, 8), "restart", victim)]
    outage_at = rng.uniform(0.6, 0.7) * span
    plan += [(outage_at, "outage", -1), (outage_at + size.beat_outage, "outage_end", -1)]
    plan.sort()
    one_down: list[tuple[datetime, datetime]] = []  # (down, restarted): the other one firing
    outages: list[tuple[datetime, datetime]] = []  # every beat down
    down_since: dict[int, datetime] = {}
    stack = run.stack()
    try:
        for beat in beats:
            beat.start()
        for beat in beats:
            beat.wait_ready()
        began, t0 = timezone.now(), time.monotonic()
        for at, action, index in plan:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            if action == "kill":
                down_since[index] = timezone.now()
                beats[index].kill()
            elif action == "restart":
                one_down.append((down_since.pop(index), timezone.now()))
                beats[index].start()
                beats[index].wait_ready()
            elif action == "outage":
                down_since[-1] = timezone.now()
                for beat in beats:
                    beat.kill()
            else:
                outages.append((down_since.pop(-1), timezone.now()))
                for beat in beats:
                    beat.start()
                for beat in beats:
                    beat.wait_ready()
        time.sleep(max(0.0, t0 + span - time.monotonic()))
        stopped = timezone.now()
        for beat in beats:
            beat.stop()
        _drain_fires(size.drain_timeout)
    finally:
        for beat in beats:
            beat.kill()
        stack.stop()
    _check_slots(report, began, stopped, outages)
    report.notes.update(
        beats=len(beats),
        beat_kills=len(one_down) + len(beats) * len(outages),
        one_beat_down_s="/".join(f"{(up - down).total_seconds():.0f}" for down, up in one_down),
        outage_s=size.beat_outage,
        fires=sum(beat.sent() for beat in beats),
        run_s=span,
    )
    return report


def _drain_fires(timeout: float) -> None:
    """Until the fires the beats sent have run and the jobs they claimed (up to a period
    ahead) have finished: no unfinished job and no message waiting or unacknowledged at the
    broker, twice in a row."""
    broker = harness.broker()
    deadline, quiet = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and quiet < 2:
        waiting = sum(
            broker.llen(key) for key in broker.scan_iter("chaos*") if broker.type(key) == b"list"
        )
        busy = harness.unfinished() or waiting or broker.hlen("unacked")
        quiet = 0 if busy else quiet + 1
        time.sleep(0.5)


def _check_slots(
    report: Report, began: datetime, stopped: datetime, outages: list[tuple[datetime, datetime]]
) -> None:
    """The ledger of scenario 10, per schedule: the slots of the run (after the beats' first
    fire, up to a period before they stopped) must each have exactly one job that took effect,
    except slots of a "latest" schedule missed while no beat ran: after an outage, its first
    fire claims the newest due slot (and the next one ahead), none of the older ones."""
    from django_bgjobs.scheduling.sync import declared

    schedules = {
        key: schedule for key, (spec, schedule) in declared().items() if spec.name == tick.name
    }
    rows: dict[str, list[ScheduleSlot]] = {key: [] for key in schedules}
    for row in (
        ScheduleSlot.objects.filter(schedule__key__in=list(schedules))
        .select_related("schedule", "job")
        .order_by("slot_at")
    ):
        rows[row.schedule.key].append(row)
    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM chaos_effect WHERE key LIKE %s", [f"{tick.name}:%"])
        effected = {key for (key,) in cursor.fetchall()}
        cursor.execute(
            "SELECT count(*), count(DISTINCT job_id) FROM chaos_execution WHERE key LIKE %s",
            [f"{tick.name}:%"],
        )
        report.executed, executed_jobs = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM (SELECT key FROM chaos_execution WHERE key LIKE %s "
            "GROUP BY key HAVING count(DISTINCT job_id) > 1) many",
            [f"{tick.name}:%"],
        )
        (slots_run_by_two_jobs,) = cursor.fetchone()
    report.effects = len(effected)
    report.dup_exec = report.executed - executed_jobs
    jobs = list(Job.objects.filter(name=tick.name).values_list("pk", "status", "started_at"))
    claimed_jobs = {row.job_id for slots in rows.values() for row in slots if row.job_id}
    # Two jobs for one slot would show as a job outside any slot (UNIQUE (schedule, slot)
    # allows no second row) or as executions of one slot key by two jobs.
    report.dup_effect = slots_run_by_two_jobs + sum(
        1 for pk, _, _ in jobs if pk not in claimed_jobs
    )
    report.stuck = sum(1 for _, status, _ in jobs if status in harness.UNFINISHED)
    failed = sum(
        1 for _, status, _ in jobs if status not in (*harness.UNFINISHED, JobStatus.SUCCEEDED)
    )
    must, explained, skipped, claimed_late = set(), 0, 0, 0
    counts: list[int] = []
    late: list[float] = []
    gaps: list[float] = []
    for key, schedule in schedules.items():
        assert schedule.every is not None
        step = schedule.every
        slots = {row.slot_at: row for row in rows[key]}
        skipped += sum(1 for row in rows[key] if row.skipped)
        counts.append(len(rows[key]))
        # Lateness of the jobs claimed ahead of their time (the steady state); the others
        # were claimed after it (a beat's first fire, catch-up after the outage).
        late += [
            (row.job.started_at - row.slot_at).total_seconds()
            for row in rows[key]
            if row.job is not None
            and row.job.started_at is not None
            and row.created_at <= row.slot_at
        ]
        claimed_late += sum(1 for row in rows[key] if row.created_at > row.slot_at)
        # The longest time without a claim (an outage, or fires the broker held up).
        times = sorted({row.created_at for row in rows[key]})
        gaps += [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        first = schedule.next_slot(began)
        grid = [first + step * i for i in range(int((stopped - step - first) / step) + 1)]
        for slot in grid:
            if slot in slots:
                continue
            if schedule.catch_up == "latest" and _missed_in_outage(slot, rows[key], outages):
                explained += 1
                continue
            must.add(slot_key(key, slot))  # missed: counted lost below
        must |= {slot_key(key, slot) for slot in slots}
        # After an outage, a "latest" schedule's first fire claims exactly the newest due slot
        # and the next one ahead; an "all" schedule's, every slot since its last one.
        for _, up in outages:
            after = [row for row in rows[key] if row.created_at >= up]
            if not after:
                report.failures.append(f"{key}: no fire after an outage")
                continue
            fired = min(row.created_at for row in after)
            claimed = {row.slot_at for row in after if row.created_at == fired}
            if schedule.catch_up == "latest" and not claimed <= {
                schedule.latest_slot(fired),
                schedule.next_slot(fired),
            }:
                report.failures.append(f"{key}: caught up {sorted(claimed)} at {fired}")
    report.attempted = len(must)
    report.lost = len(must - effected)
    report.unexpected = skipped + len(effected - must)
    if failed:
        report.failures.append(f"{failed} job(s) did not succeed")
    report.notes.update(
        slots=sum(counts),
        missed_by_catch_up=explained,
        slots_per_schedule=f"{min(counts)}-{max(counts)}",
        ahead_started_late_s=f"{min(late):.2f}-{max(late):.2f}" if late else "-",
        claimed_after_due=claimed_late,
        claim_gap_max_s=f"{max(gaps, default=0):.1f}",
    )


def _missed_in_outage(
    slot: datetime, rows: list[ScheduleSlot], outages: list[tuple[datetime, datetime]]
) -> bool:
    """Whether catch_up="latest" explains that ``slot`` has no job: it fell between the last
    fire before an outage and the first fire after it, and was older than what that fire
    claimed."""
    for down, up in outages:
        before = [row.created_at for row in rows if row.created_at <= down]
        after = [row for row in rows if row.created_at >= up]
        if not before or not after:
            continue
        fired = min(row.created_at for row in after)
        if max(before) < slot <= fired + EARLY and slot < min(
            row.slot_at for row in after if row.created_at == fired
        ):
            return True
    return False


def state_machine(run: Run) -> Report:
    """12: the Hypothesis state machine over the job transitions (tests/test_state_machine.py),
    run with this seed against PostgreSQL."""
    report = Report("12-model", run.seed)
    url = settings.DATABASES["default"]
    env = harness.child_env(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"postgres://{url['USER'] or 'postgres'}@{url['HOST'] or '127.0.0.1'}:"
        f"{url['PORT'] or 5432}/{url['NAME']}_model",
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        BGJOBS_TEST_STATE=str(run.log_dir / "model"),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--create-db",
            f"--hypothesis-seed={run.seed}",
            "tests/test_state_machine.py",
        ],
        env=env,
        cwd=harness.REPO,
        capture_output=True,
        text=True,
    )
    (run.log_dir / "model.log").write_text(result.stdout + result.stderr)
    tail = (result.stdout.strip().splitlines() or ["?"])[-1]
    report.notes.update(pytest=tail.replace(" ", "_"))
    if result.returncode != 0:
        report.failures.append("counterexample found; see model.log")
    return report


SCENARIOS: dict[str, Callable[[Run], Report]] = {
    "1": hard_crash,
    "2": rolling_deploy,
    "3": poison_pill,
    "4": outbox,
    "6": redis_wiped,
    "7": database_outage,
    "9": delayed_jobs,
    "10": beat_duplication,
    "11": zombie,
    "12": state_machine,
    "13": delivery,
    "14": durable,
    "15": flow_control,
}
