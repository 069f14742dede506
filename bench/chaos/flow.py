"""Scenario 15: a concurrency limit under faults.

Jobs of ``jobs.limited`` (a concurrency of ``LIMIT`` per group) are enqueued up front over a
few groups, so that every group has many more jobs than places; workers are killed with SIGKILL
at seeded times and Redis is wiped once. Afterwards, besides lost, stuck and duplicated
effects, the checker rebuilds from the executions' times how many jobs of each group ran at
once: more than ``LIMIT`` is a failure. An execution whose worker was killed has no end in the
log: it is taken to have run for its planned time (the job's retry waits for its lease, far
longer).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db.models import Count

from bench.chaos.jobs import LIMIT, limited
from bench.chaos.ledger import Report
from bench.chaos.models import Effect, Execution
from django_bgjobs import enqueue_many
from django_bgjobs.models import Job, JobStatus

if TYPE_CHECKING:
    from bench.chaos.scenarios import Run

GROUPS = 12


def flow_control(run: Run) -> Report:
    from bench.chaos import scenarios

    rng, prefix = run.rng, run.prefix("15")
    report = Report("15-flow", run.seed)
    count = max(600, run.size.jobs // 5)
    planned = {f"{prefix}-{n}": rng.randint(*run.size.ms) for n in range(count)}
    group_of = {key: f"g{rng.randrange(GROUPS)}" for key in planned}
    # At most GROUPS * LIMIT run at once, whatever the workers could take.
    span = max(
        run.estimate(count) * run.size.workers * run.size.concurrency / (GROUPS * LIMIT), 3.0
    )
    plan = run.fault_plan(span)
    stack = run.stack()
    faults: list[datetime] = []
    try:
        keys = list(planned)
        for start in range(0, count, 500):
            enqueue_many(
                limited.prepare(key, group_of[key], planned[key])
                for key in keys[start : start + 500]
            )
        report.attempted = count
        faults += run.kills_and_a_wipe(stack, plan, rng)
        run.drain(stack)
    finally:
        stack.stop()
    _check(report, prefix, planned, group_of)
    report.notes.update(
        groups=GROUPS,
        limit=LIMIT,
        kills=len(faults) - 1,
        wipe=scenarios.FLUSH,
        restarts=stack.restarts,
    )
    return report


def _check(report: Report, prefix: str, planned: dict[str, int], group_of: dict[str, str]) -> None:
    jobs = Job.objects.filter(name=limited.name)
    by_status = dict(jobs.values_list("status").annotate(n=Count("*")))
    report.stuck = sum(n for status, n in by_status.items() if status not in _ENDED)
    effects = set(Effect.objects.filter(key__in=list(planned)).values_list("key", flat=True))
    report.effects = len(effects)
    not_succeeded = sum(n for status, n in by_status.items() if status != JobStatus.SUCCEEDED)
    report.lost = not_succeeded + len(set(planned) - effects) + (len(planned) - jobs.count())
    starts: list[tuple[str, str, int, int, datetime]] = []
    ends: dict[tuple[str, str, int, int], datetime] = {}
    for key, job_id, attempt, pid, at in Execution.objects.filter(
        key__startswith=f"{prefix}-"
    ).values_list("key", "job_id", "attempt", "pid", "at"):
        if key.endswith(":end"):
            ends[(key[: -len(":end")], str(job_id), attempt, pid)] = at
        else:
            starts.append((key, str(job_id), attempt, pid, at))
    report.executed = len(starts)
    report.dup_exec = len(starts) - len({key for key, *_ in starts})
    edges: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for key, job_id, attempt, pid, at in starts:
        end = ends.get((key, job_id, attempt, pid)) or at + timedelta(milliseconds=planned[key])
        edges[group_of[key]] += [(at, 1), (end, -1)]
    most = 0
    for group_edges in edges.values():
        running = 0
        for _at, step in sorted(group_edges, key=lambda edge: (edge[0], edge[1])):
            running += step
            most = max(most, running)
    report.notes["most_at_once"] = most
    if most > LIMIT:
        report.failures.append(f"{most} jobs of one group ran at once (limit {LIMIT})")


_ENDED = (JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.CANCELLED)
