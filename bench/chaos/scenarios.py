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
from django.utils import timezone

from bench.chaos import harness
from bench.chaos.jobs import POISON_ATTEMPTS, poison, work
from bench.chaos.ledger import Hit, Report, check
from bench.chaos.models import Execution
from bench.chaos.web import wants_rollback
from django_bgjobs import enqueue_many
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.models import Job, JobRun, JobStatus


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


SMALL = Size(jobs=1000, workers=3, concurrency=3, ms=(10, 80), kills=3, web_kills=5,
             redis_pause=3, outage=10, delayed=300, zombies=60, drain_timeout=180)
# Jobs of 20-200 ms (reliability.md has 50-500 ms) keep five seeds within about an hour here.
FULL = Size(jobs=10_000, workers=4, concurrency=4, ms=(20, 200), kills=3, web_kills=50,
            redis_pause=30, outage=60, delayed=1000, zombies=100, drain_timeout=900)


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

    def enqueue_upfront(self, prefix: str, count: int, rng: random.Random,
                        delay: Callable[[random.Random], float] | None = None) -> list[str]:
        keys = [f"{prefix}-{i}" for i in range(count)]
        for start in range(0, count, 500):
            calls = []
            for key in keys[start:start + 500]:
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
        plan = sorted((rng.uniform(0.1, 0.7) * span, rng.randrange(run.size.workers))
                      for _ in range(run.size.kills))
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
            enqueue_many(calls[start:start + 500])
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
    report.notes.update(grace_s=grace, exit_max_s=f"{max(exits):.1f}",
                        stops=len(faults))
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
            enqueue_many(calls[start:start + 500])
        report.attempted = len(calls)
        run.drain(stack)
    finally:
        stack.stop()
    # A poison attempt is hit when it kills its process, right after logging its execution.
    killed_at = dict(((job_id, attempt), at) for job_id, attempt, at in Execution.objects.filter(
        key__in=bad).values_list("job_id", "attempt", "at"))
    check(report, prefix, poison=bad,
          fault_of=lambda job_id, attempt: killed_at.get((job_id, attempt)))
    executions_of_poison = JobRun.objects.filter(job__args__0__in=list(bad)).count()
    report.notes.update(poison=len(bad), poison_runs=executions_of_poison,
                        budget=POISON_ATTEMPTS, unexpected_worker_exits=stack.unexpected_exits)
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
        pauser = _at(pause_at, lambda: (faults.append(timezone.now()), harness.broker()
                                        .client_pause(int(run.size.redis_pause * 1000))))
        start, restarts = 0, 0
        while start < count:
            web = harness.run_web(
                ["--prefix", prefix, "--start", str(start), "--count", str(count - start),
                 "--rate", str(rate), "--rollback", "0.1", "--journal", str(journal),
                 "--kill-at", ",".join(map(str, kill_at)), "--ms", str(run.size.ms[0])],
                run.log_dir / "web.log")
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
    stranded = [Hit(pk, None, created) for pk, created in Job.objects.filter(
        args__0__in=list(seen["kill"])).values_list("pk", "created_at")]
    check(report, prefix, acknowledged=seen["ok"], rolled_back=seen["rollback"],
          faults=faults, waiting=stranded)
    report.notes.update(ok=len(seen["ok"]), rolled_back=len(seen["rollback"]),
                        killed_after_commit=len(seen["kill"]), web_restarts=restarts)
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
        waiting = set(Job.objects.filter(args__0__startswith=prefix + "-",
                                         status=JobStatus.QUEUED).values_list("pk", flat=True))
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
        web = harness.run_web(["--prefix", prefix, "--count", str(count), "--rate", str(rate),
                               "--journal", str(journal), "--ms", str(ms)],
                              run.log_dir / "web.log")
        time.sleep(rng.uniform(0.15, 0.3) * duration)
        queued = list(Job.objects.filter(args__0__startswith=prefix + "-",
                                         status=JobStatus.QUEUED).values_list("pk", flat=True))
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
    check(report, prefix, acknowledged=seen["ok"], faults=faults,
          waiting=[Hit(pk, None, faults[0]) for pk in queued])
    report.notes.update(ok=len(seen["ok"]), refused=len(seen["refused"]),
                        outage_s=run.size.outage, worker_exits=stack.unexpected_exits,
                        workers_never_restarted=f"{survivors}/{len(mains)}")
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
        keys = run.enqueue_upfront(prefix, run.size.delayed, rng,
                                   delay=lambda r: r.uniform(2, 4) * vt)
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
    """10: needs schedules (issue 4); reported as skipped until they exist."""
    report = Report("10-beat", run.seed)
    report.notes.update(skipped="schedules are not built yet")
    return report


def state_machine(run: Run) -> Report:
    """12: the Hypothesis state machine over the job transitions (tests/test_state_machine.py),
    run with this seed against PostgreSQL."""
    report = Report("12-model", run.seed)
    url = settings.DATABASES["default"]
    env = harness.child_env(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"postgres://{url['USER'] or 'postgres'}@{url['HOST'] or '127.0.0.1'}:"
                     f"{url['PORT'] or 5432}/bgjobs_chaos_model",
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        BGJOBS_TEST_STATE=str(run.log_dir / "model"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--create-db",
         f"--hypothesis-seed={run.seed}", "tests/test_state_machine.py"],
        env=env, cwd=harness.REPO, capture_output=True, text=True,
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
}
