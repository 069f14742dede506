"""Events and durable functions the tests send and run (imported by tests/jobs.py, so that a
worker knows them as it knows the jobs)."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from typing import Any

from django_bgjobs import Backoff, Event, FunctionContext, NonRetriable, RetryAfter, event, function
from tests.models import Effect

FAST = Backoff(base=0.01, factor=1, max=0.01)


@event("test/signed_up")
class SignedUp(Event):
    user_id: int
    email: str = ""


@event("test/logged_in")
class LoggedIn(Event):
    user_id: int


@event("test/user_deleted")
class UserDeleted(Event):
    user_id: int


@event("test/crm_sync")
class CrmSync(Event):
    user_id: int
    tags: list[str]


@event("test/nobody_listens")
class NobodyListens(Event):
    note: str | None = None
    extra: Any = None


@event("test/invoke")
class InvokeChild(Event):
    user_id: int


@event("test/quick_wait")
class QuickWait(Event):
    user_id: int


def kills_its_worker_once(key: str) -> str:
    """SIGKILLs the worker process running it the first time (a crash mid-step); then works."""
    Effect.objects.create(key=key, pid=os.getpid())
    if Effect.objects.filter(key=key).count() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return key


def effect(key: str) -> str:
    Effect.objects.create(key=key)
    return key


def fails_until(key: str, failures: int) -> int:
    """Fails the first ``failures`` times it is called for ``key``."""
    Effect.objects.create(key=key)
    calls = Effect.objects.filter(key=key).count()
    if calls <= failures:
        raise ConnectionError(f"call {calls} of {key} failed on purpose")
    return calls


@function(on=SignedUp, cancel_on=[(UserDeleted, "user_id")], max_attempts=3, backoff=FAST)
def onboarding(ctx: FunctionContext, ev: SignedUp) -> dict:
    ctx.step.run("create-workspace", effect, f"create:{ev.user_id}")
    calls = ctx.step.run("flaky-api", fails_until, f"flaky:{ev.user_id}", 2)
    ctx.step.sleep("nap", timedelta(seconds=0.5))
    opened = ctx.step.wait_for_event(
        "first-login", LoggedIn, match="user_id", timeout=timedelta(seconds=60)
    )
    ctx.step.run("after-login", effect, f"after:{ev.user_id}:{'login' if opened else 'none'}")
    ctx.step.send_event("crm", CrmSync(user_id=ev.user_id, tags=["new"]))
    return {"flaky_calls": calls, "opened": opened is not None}


@function(on=CrmSync)
def crm_sync(ctx: FunctionContext, ev: CrmSync) -> str:
    return ctx.step.run("sync", effect, f"crm:{ev.user_id}:{','.join(ev.tags)}")


@function(on=QuickWait)
def quick_wait(ctx: FunctionContext, ev: QuickWait) -> str:
    got = ctx.step.wait_for_event(
        "login", LoggedIn, match="user_id", timeout=timedelta(seconds=0.5)
    )
    return ctx.step.run("then", effect, f"quick:{ev.user_id}:{'login' if got else 'timeout'}")


@function(max_attempts=2, backoff=FAST)
def same_name_twice(ctx: FunctionContext) -> None:
    ctx.step.run("twice", effect, "twice:1")
    ctx.step.run("twice", effect, "twice:2")


@function(max_attempts=2, backoff=FAST)
def two_steps(ctx: FunctionContext) -> str:
    ctx.step.run("first", effect, "two:first")
    return ctx.step.run("second", effect, "two:second")


@function(max_attempts=5, backoff=FAST)
def gives_up_at_once(ctx: FunctionContext) -> None:
    ctx.step.run("before", effect, "gives-up:before")
    ctx.step.run("declined", _decline)


def _decline() -> None:
    raise NonRetriable("the card was declined")


@function()
def child(ctx: FunctionContext, ev: CrmSync) -> int:
    return ctx.step.run("double", double, ev.user_id)


def double(n: int) -> int:
    return n * 2


@function(on=InvokeChild)
def parent(ctx: FunctionContext, ev: InvokeChild) -> int:
    doubled = ctx.step.invoke("call-child", child, CrmSync(user_id=ev.user_id, tags=[]))
    ctx.step.run("record", effect, f"parent:{ev.user_id}:{doubled}")
    return doubled


@function(max_attempts=3, backoff=FAST)
def crashes_mid_step(ctx: FunctionContext) -> str:
    ctx.step.run("before", effect, "crash:before")
    ctx.step.run("crash", kills_its_worker_once, "crash:crash")
    return ctx.step.run("after", effect, "crash:after")


@function(cron="0 9 * * *", tz="Europe/Paris")
def morning_digest(ctx: FunctionContext) -> str:
    """Started by its schedule, without an event."""
    return ctx.step.run("count", effect, f"digest:{ctx.run_id}")


def rate_limited_once(key: str) -> int:
    """Answers "429, come back later" the first time it is called for ``key``."""
    Effect.objects.create(key=key)
    calls = Effect.objects.filter(key=key).count()
    if calls == 1:
        raise RetryAfter(0.01, "429 Too Many Requests")
    return calls


@function(max_attempts=1)
def snoozes_once(ctx: FunctionContext) -> int:
    """One attempt per step: the API's RetryAfter must not spend it."""
    return ctx.step.run("call-api", rate_limited_once, "snooze:call")
