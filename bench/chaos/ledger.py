"""The checker: what the database and the ledger say after a scenario, Jepsen-style.

Counted over the scenario's jobs (their key starts with its prefix):

- attempted: requests to enqueue a job (committed, rolled back or refused alike)
- executed: executions of job bodies (chaos_execution rows)
- effects: effect rows (chaos_effect, UNIQUE(key))
- lost: jobs that must have taken effect and did not: every committed job row, and every key a
  web process acknowledged, except poison jobs (they must end dead instead)
- dup_exec: executions beyond the first of each job (at-least-once shows here)
- dup_effect: effects beyond one per key, plus keys that got more than one job (a duplicated
  enqueue would show here)
- stuck: jobs not finished once the scenario waited for quiescence
- unexpected: executions of keys whose transaction rolled back (phantoms), effects of jobs that
  do not exist, and results overwritten by an attempt that was superseded
- recovery_p99_s: for every attempt a fault interrupted (its JobRun is lost, superseded or
  released) and every waiting job whose message it took, seconds from the fault until the
  system had taken the job back (see ``recovery``); ``restart_p99_s`` in the notes is until it
  actually started again, waiting behind other work included
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from django.db import connection
from django.db.models import Count

from django_bgjobs.models import Job, JobRun, JobStatus, RunStatus

INTERRUPTED = (RunStatus.LOST, RunStatus.SUPERSEDED, "released")


def p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


@dataclass
class Report:
    scenario: str
    seed: int
    attempted: int = 0
    executed: int = 0
    effects: int = 0
    lost: int = 0
    dup_exec: int = 0
    dup_effect: int = 0
    stuck: int = 0
    unexpected: int = 0
    recovery: list[float] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # scenario-specific checks that failed

    HEADER = (
        "scenario seed attempted executed effects lost dup_exec dup_effect stuck "
        "recovery_p99_s unexpected notes"
    )

    @property
    def passed(self) -> bool:
        return not (self.lost or self.dup_effect or self.stuck or self.unexpected or self.failures)

    def line(self) -> str:
        recovery = p99(self.recovery)
        notes = " ".join(f"{k}={v}" for k, v in self.notes.items())
        verdict = "PASS" if self.passed else "FAIL " + "; ".join(self.failures)
        return (
            f"{self.scenario:<8} {self.seed:>4} {self.attempted:>9} {self.executed:>8} "
            f"{self.effects:>7} {self.lost:>4} {self.dup_exec:>8} {self.dup_effect:>10} "
            f"{self.stuck:>5} {'-' if recovery is None else f'{recovery:.2f}':>14} "
            f"{self.unexpected:>10} {notes} {verdict}"
        )


def _scalar(sql: str, params: list[object]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return int(row[0] or 0) if row else 0


def check(
    report: Report,
    prefix: str,
    *,
    acknowledged: Collection[str] = (),
    rolled_back: Collection[str] = (),
    poison: Collection[str] = (),
    faults: Collection[datetime] = (),
    fault_of: Callable[[UUID, int], datetime | None] | None = None,
    waiting: Collection[Hit] = (),
) -> Report:
    like = [prefix + "-%"]
    jobs = {
        job.args[0]: job
        for job in Job.objects.filter(args__0__startswith=prefix + "-").only(
            "id", "args", "status", "attempts", "max_attempts", "result"
        )
    }
    report.executed = _scalar("SELECT count(*) FROM chaos_execution WHERE key LIKE %s", like)
    executed_jobs = _scalar(
        "SELECT count(DISTINCT job_id) FROM chaos_execution WHERE key LIKE %s", like
    )
    report.dup_exec = report.executed - executed_jobs
    report.effects = _scalar("SELECT count(*) FROM chaos_effect WHERE key LIKE %s", like)
    effect_keys = _scalar("SELECT count(DISTINCT key) FROM chaos_effect WHERE key LIKE %s", like)
    jobs_per_key = _scalar(
        "SELECT count(*) FROM (SELECT args->>0 FROM django_bgjobs_job WHERE args->>0 LIKE %s "
        "GROUP BY 1 HAVING count(*) > 1) many",
        like,
    )
    report.dup_effect = (report.effects - effect_keys) + jobs_per_key

    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM chaos_effect WHERE key LIKE %s", like)
        effected = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT DISTINCT key FROM chaos_execution WHERE key LIKE %s", like)
        ran = {row[0] for row in cursor.fetchall()}

    must_take_effect = (set(jobs) | set(acknowledged)) - set(poison)
    report.lost = len(must_take_effect - effected)
    report.stuck = sum(1 for job in jobs.values() if not job.is_finished)
    phantoms = len(ran & set(rolled_back))
    orphans = len(effected - set(jobs))
    # A job's result must be its last attempt's: a superseded attempt may not overwrite it.
    overwritten = sum(
        1
        for key, job in jobs.items()
        if key not in poison
        and job.status == JobStatus.SUCCEEDED
        and (job.result or {}).get("attempt") != job.attempts
    )
    report.unexpected = phantoms + orphans + overwritten
    report.notes.update(committed=len(jobs))
    if phantoms or orphans or overwritten:
        report.notes.update(phantoms=phantoms, orphans=orphans, overwritten=overwritten)

    if poison:
        counts = (
            Job.objects.filter(pk__in=[jobs[k].pk for k in poison if k in jobs])
            .annotate(n=Count("runs"))
            .values_list("status", "n", "max_attempts")
        )
        exact = sum(1 for status, n, budget in counts if status == JobStatus.DEAD and n == budget)
        report.notes.update(poison_dead_after_budget=f"{exact}/{len(poison)}")
        if exact != len(poison):
            report.failures.append("a poison job did not end dead after exactly max_attempts")

    report.recovery, restarted = recovery([*interrupted(prefix, faults, fault_of), *waiting])
    if restarted:
        report.notes["restart_p99_s"] = f"{p99(restarted):.2f}"
    by_status = (
        JobRun.objects.filter(job__args__0__startswith=prefix + "-", status__in=INTERRUPTED)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by("status")
    )
    for status, n in by_status:
        report.notes[f"runs_{status}"] = n
    return report


@dataclass(frozen=True, slots=True)
class Hit:
    """A job a fault reached at ``at``: its running ``attempt`` interrupted, or (None) its
    waiting message lost or its publish prevented."""

    job_id: UUID
    attempt: int | None
    at: datetime


def interrupted(
    prefix: str,
    faults: Collection[datetime],
    fault_of: Callable[[UUID, int], datetime | None] | None = None,
) -> list[Hit]:
    """The attempts the faults interrupted (their JobRun is lost, superseded or released).
    ``fault_of`` names the moment an attempt was hit when the scenario knows it (a poison job
    kills itself); otherwise it is the last fault before the attempt was found out."""
    if not faults and fault_of is None:
        return []
    ordered = sorted(faults)
    hits = []
    for job_id, attempt, started, finished in JobRun.objects.filter(
        job__args__0__startswith=prefix + "-", status__in=INTERRUPTED
    ).values_list("job_id", "attempt", "started_at", "finished_at"):
        before = [f for f in ordered if f <= (finished or started)]
        fault = (fault_of(job_id, attempt) if fault_of else None) or (
            before[-1] if before else ordered[0]
        )
        # An attempt that started after the fault was not interrupted by it before it began.
        hits.append(Hit(job_id, attempt, max(fault, started)))
    return hits


def recovery(hits: Collection[Hit]) -> tuple[list[float], list[float]]:
    """Seconds from each hit until (a) the system had taken the job back: the dispatcher
    recorded the attempt as lost (so the retry is scheduled: lease + a sweep), or the
    shutting-down worker released it to the queue; for a job whose message was lost or never
    sent, its republish; (b) the job started again, waiting behind other work included.

    For (a) the interrupted attempt's own row says when (``finished_at`` of a ``lost`` or
    ``released`` run). A ``superseded`` run's time is its zombie's late report, so there (a)
    is the earliest of the retry time the dispatcher gave the job (``run_after``), its
    republish (``published_at``) and its next start, when after the fault. A job with no later
    attempt (dead) counts until it was declared so."""
    if not hits:
        return [], []
    ids = {hit.job_id for hit in hits}
    rows = {
        pk: (run_after, published)
        for pk, run_after, published in Job.objects.filter(pk__in=ids).values_list(
            "pk", "run_after", "published_at"
        )
    }
    runs: dict[UUID, dict[int, tuple[str, datetime, datetime | None]]] = {}
    for job_id, attempt, status, started, finished in JobRun.objects.filter(
        job__in=ids
    ).values_list("job_id", "attempt", "status", "started_at", "finished_at"):
        runs.setdefault(job_id, {})[attempt] = (status, started, finished)
    available, restarted = [], []
    for hit in hits:
        attempts = runs.get(hit.job_id, {})
        later = sorted(
            (attempt, started)
            for attempt, (_, started, _) in attempts.items()
            if started > hit.at and (hit.attempt is None or attempt > hit.attempt)
        )
        status, _, finished = attempts.get(hit.attempt or 0, ("", hit.at, None))
        start = later[0][1] if later else finished
        if start is None:
            continue
        if status in (RunStatus.LOST, "released") and finished is not None:
            back = finished
        else:
            run_after, published = rows.get(hit.job_id, (None, None))
            back = min(
                [start, *(m for m in (run_after, published) if m is not None and m > hit.at)]
            )
        available.append((back - hit.at).total_seconds())
        restarted.append((start - hit.at).total_seconds())
    return available, restarted
