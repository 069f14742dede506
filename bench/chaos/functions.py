"""Scenario 14's durable function: three working steps, a sleep, a wait for the run's own
signal event, a last step. Each working step writes the ledger as the jobs do (an execution
row each time its body starts, one effect per step key)."""

from __future__ import annotations

import time
from datetime import timedelta

from bench.chaos.jobs import BACKOFF, effect, log_execution
from django_bgjobs import Event, FunctionContext, event, function

WORK_STEPS = 3


@event("chaos/start")
class Start(Event):
    key: str
    ms: int


@event("chaos/signal")
class Signal(Event):
    key: str


def work(run_id: str, key: str, ms: int) -> str:
    log_execution(run_id, key)
    time.sleep(ms / 1000)
    effect(run_id, key)
    return key


@function(on=Start, max_attempts=6, backoff=BACKOFF)
def flow(ctx: FunctionContext, ev: Start) -> str:
    run_id = str(ctx.run_id)
    for index in range(WORK_STEPS):
        ctx.step.run(f"work-{index}", work, run_id, f"{ev.key}:{index}", ev.ms)
    ctx.step.sleep("nap", timedelta(seconds=0.5))
    got = ctx.step.wait_for_event("signal", Signal, match="key", timeout=timedelta(minutes=5))
    outcome = "signalled" if got is not None else "timed-out"
    return ctx.step.run("final", work, run_id, f"{ev.key}:{outcome}", 1)
