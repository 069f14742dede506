"""Scenario 14: durable functions under faults.

``Start`` events are sent in batches (one run of ``functions.flow`` each: three working steps, a
sleep, a wait for its own ``Signal``, a last step); each run's ``Signal`` is sent at a seeded
moment, some before the run reaches its wait (the look back must see them), most after.
Workers are killed with SIGKILL at seeded times and Redis is wiped once. Afterwards:

- lost: runs that did not succeed, and step keys without their effect;
- stuck: runs not finished after the drain;
- dup_exec: step executions beyond one per step key (at-least-once: a step whose worker died
  before its result was written runs again);
- failures: a step that ran again after its success was recorded (a finished step re-run),
  a run whose wait timed out although its signal was sent, a step recorded twice.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.db.models import Count

from bench.chaos.functions import WORK_STEPS, Signal, Start, flow
from bench.chaos.ledger import Report
from bench.chaos.models import Effect, Execution
from django_bgjobs import send_events
from django_bgjobs.models import Job, JobStatus, Step

if TYPE_CHECKING:
    from bench.chaos.scenarios import Run


def durable(run: Run) -> Report:
    from bench.chaos import scenarios

    rng, prefix = run.rng, run.prefix("14")
    report = Report("14-durable", run.seed)
    count = max(300, run.size.jobs // 5)
    keys = [f"{prefix}-{n}" for n in range(count)]
    # How long the working steps take if nothing goes wrong: the kills fall while steps run.
    span = max(run.estimate(count * WORK_STEPS), 3.0)
    signals = sorted((rng.uniform(0.0, 2.0) * span, key) for key in keys)
    plan = run.fault_plan(span)
    stack = run.stack()
    faults: list[datetime] = []
    try:
        for start in range(0, count, 100):
            with transaction.atomic():
                send_events(
                    [
                        Start(key=key, ms=rng.randint(*run.size.ms))
                        for key in keys[start : start + 100]
                    ]
                )
        report.attempted = count
        sender = threading.Thread(target=_send_signals, args=(signals,), daemon=True)
        sender.start()
        faults += run.kills_and_a_wipe(stack, plan, rng)
        sender.join()
        run.drain(stack)
    finally:
        stack.stop()
    _check(report, count)
    report.notes.update(
        steps=count * (WORK_STEPS + 1),
        kills=len(faults) - 1,
        wipe=scenarios.FLUSH,
        restarts=stack.restarts,
    )
    return report


def _send_signals(plan: list[tuple[float, str]]) -> None:
    began = time.monotonic()
    try:
        for at, key in plan:
            time.sleep(max(0.0, began + at - time.monotonic()))
            Signal(key=key).send()
    finally:
        connection.close()


def _check(report: Report, count: int) -> None:
    runs = Job.objects.filter(name=flow.name)
    by_status = dict(runs.values_list("status").annotate(n=Count("*")))
    report.stuck = sum(n for status, n in by_status.items() if status not in _ENDED)
    not_succeeded = sum(n for status, n in by_status.items() if status != JobStatus.SUCCEEDED)
    expected = {
        f"{key}:{index}"
        for key in runs.values_list("kwargs__event__data__key", flat=True)
        for index in [*map(str, range(WORK_STEPS)), "signalled"]
    }
    effects = set(Effect.objects.values_list("key", flat=True))
    report.effects = len(effects)
    report.lost = not_succeeded + len(expected - effects) + (count - runs.count())
    executions = list(Execution.objects.values_list("key", "job_id", "at"))
    report.executed = len(executions)
    report.dup_exec = report.executed - len({key for key, _, _ in executions})
    report.unexpected = len(effects - expected)
    timed_out = sum(key.endswith(":timed-out") for key in effects)
    if timed_out:
        report.failures.append(f"{timed_out} run(s) timed out waiting for a signal that was sent")
    succeeded_at = {
        (str(job_id), name): finished
        for job_id, name, finished in Step.objects.filter(
            job__name=flow.name, status="succeeded"
        ).values_list("job_id", "name", "finished_at")
    }
    rerun = 0
    for key, job_id, at in executions:
        index = key.rsplit(":", 1)[1]
        step = f"work-{index}" if index.isdigit() else "final"
        finished = succeeded_at.get((str(job_id), step))
        rerun += finished is not None and at > finished
    if rerun:
        report.failures.append(f"{rerun} execution(s) of a step after its success was recorded")
    twice = (
        Step.objects.filter(job__name=flow.name)
        .values("job_id", "name")
        .annotate(n=Count("*"))
        .filter(n__gt=1)
        .count()
    )
    if twice:
        report.failures.append(f"{twice} step(s) recorded twice")
    per_run: dict[str, int] = defaultdict(int)
    for _key, job_id, _at in executions:
        per_run[str(job_id)] += 1
    report.notes["most_executions_per_run"] = max(per_run.values(), default=0)


_ENDED = (JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.CANCELLED)
