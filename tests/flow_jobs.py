"""Jobs and functions under flow control (loaded with tests/jobs.py, as workers load it)."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

from celery import current_task

from django_bgjobs import (
    Backoff,
    Batch,
    Concurrency,
    Debounce,
    Event,
    FunctionContext,
    JobContext,
    RateLimit,
    RetryAfter,
    Singleton,
    Throttle,
    bgjob,
    event,
    function,
)
from tests.models import Effect

FAST = Backoff(base=0.01, factor=1, max=0.01)


def _span(label: str, n: int, seconds: float) -> None:
    """Two effects around a pause: their ids order every job's start and end in one sequence."""
    Effect.objects.create(key=f"start {label}", job_id=str(n), pid=os.getpid())
    time.sleep(seconds)
    Effect.objects.create(key=f"end {label}", job_id=str(n), pid=os.getpid())


@bgjob(concurrency=Concurrency(limit=1, key="customer_id"), max_attempts=3, backoff=FAST)
def sync_customer(customer_id: int, n: int) -> int:
    _span(f"customer {customer_id}", n, 0.15)
    return n


@bgjob(concurrency=Concurrency(limit=1, key="customer_id"), max_attempts=3, backoff=FAST)
def sync_and_crash_once(customer_id: int, n: int) -> int:
    """SIGKILLs its worker process the first time (a crash while holding the key's place)."""
    Effect.objects.create(key=f"crash {customer_id}", job_id=str(n), pid=os.getpid())
    if Effect.objects.filter(key=f"crash {customer_id}", job_id=str(n)).count() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    _span(f"customer {customer_id}", n, 0.05)
    return n


@bgjob(concurrency=Concurrency(limit=1, key="customer_id"), timeout=30)
def timed_sync(customer_id: int, n: int) -> int:
    """sync_customer with a time limit: never run within another job's message."""
    return n


@bgjob(
    concurrency=Concurrency(limit=1, key="key"), takes_context=True, queue="slow", max_attempts=1
)
def naps_in_line(ctx: JobContext, key: str, seconds: float) -> int:
    """One at a time per key: the graceful shutdown of a job run within another's message.
    Its effect's key names the job whose message the worker is executing."""
    message = current_task.request.args[0] if current_task and current_task.request.args else ""
    Effect.objects.create(
        key=f"{key} message={message}", job_id=str(ctx.job_id), attempt=ctx.attempt, pid=os.getpid()
    )
    time.sleep(seconds if ctx.attempt == 1 else 0.0)
    return ctx.attempt


REPORTS = Concurrency(limit=2, name="tests.reports")  # one limit shared by two jobs


@bgjob(concurrency=REPORTS)
def daily_report(n: int) -> int:
    _span("report", n, 0.2)
    return n


@bgjob(concurrency=REPORTS)
def weekly_report(n: int) -> int:
    _span("report", n, 0.2)
    return n


@bgjob(throttle=Throttle(limit=5, period=timedelta(seconds=1), key="account_id"))
def call_api(account_id: str, n: int) -> int:
    Effect.objects.create(key=f"api {account_id}", job_id=str(n))
    return n


@bgjob(rate_limit=RateLimit(limit=3, period=timedelta(seconds=30), key="ip"))
def login_attempt(ip: str) -> str:
    return ip


@bgjob(
    debounce=Debounce(period=timedelta(seconds=0.5), key="doc_id", max_wait=timedelta(seconds=2))
)
def reindex(doc_id: int, text: str) -> str:
    Effect.objects.create(key=f"reindex {doc_id} {text}")
    return text


@bgjob(singleton=Singleton(key="tenant_id"))
def rebuild(tenant_id: int, n: int) -> int:
    return n


@bgjob(singleton=Singleton(key="tenant_id", mode="cancel_running"), takes_context=True)
def export(ctx: JobContext, tenant_id: int, n: int) -> int:
    """Works for a few seconds, checking for a cancel between pieces."""
    Effect.objects.create(key=f"export {tenant_id} start", job_id=str(n))
    for _ in range(100):
        ctx.check_cancelled()
        time.sleep(0.05)
    Effect.objects.create(key=f"export {tenant_id} end", job_id=str(n))
    return n


@bgjob(concurrency=Concurrency(limit=1, key=lambda order: order["customer"]))
def ship(order: dict) -> str:
    return str(order["id"])


@event("test/order_placed")
class OrderPlaced(Event):
    customer: str
    order_id: int


@function(on=OrderPlaced, concurrency=Concurrency(limit=1, key="customer"))
def fulfil(ctx: FunctionContext, ev: OrderPlaced) -> int:
    ctx.step.run("pack", _span, f"order {ev.customer}", ev.order_id, 0.1)
    return ev.order_id


@bgjob(max_attempts=1, takes_context=True)
def rate_limited_once(ctx: JobContext, spend_attempt: bool) -> int:
    """Told by an API to come back later, once: one attempt is all it has."""
    if ctx.attempt == 1:
        raise RetryAfter(0.01, "429 Too Many Requests", spend_attempt=spend_attempt)
    return ctx.attempt


@bgjob(throttle=Throttle(limit=5, period=timedelta(seconds=1), key="account_id"))
def soak_call(account_id: str, n: int) -> int:
    """tests/test_flow_soak.py's throttled job: when it ran is its effect's time."""
    Effect.objects.create(key=f"soak {account_id}", job_id=str(n))
    return n


@bgjob(rate_limit=RateLimit(limit=20, period=timedelta(seconds=10), key="ip"))
def soak_login(ip: str, n: int) -> int:
    return n


@bgjob(batch=Batch(max_size=3, timeout=timedelta(seconds=0.5), key="tenant_id", into="events"))
def send_digest(tenant_id: int, events: list[str]) -> int:
    Effect.objects.create(key=f"digest {tenant_id} {','.join(events)}")
    return len(events)
