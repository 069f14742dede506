"""``ctx.step``: the steps of a durable function's run, each stored once and replayed.

A run executes its function from the top on every attempt. A step already stored hands back
its result without running; the first step not stored yet runs, and its outcome is written,
fenced by the attempt (a zombie attempt writes nothing), before the function goes on. A step
that must wait (a sleep, an event, an invoked run) or whose code failed raises ``Suspend``: the
attempt ends, the run parks in the database (no worker held, no broker ETA), and the dispatcher
(or the awaited event) resumes it as a new attempt.

Steps are told apart by name, and their order is checked: a name used twice in one run, or a
run whose code now has a different step (or kind of step) at a place than when it began, stops
with ``NonRetriable`` naming the step (docs: "Changing a function with runs in progress").
"""

from __future__ import annotations

import contextlib
import traceback as tb
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from django.db import transaction
from django.utils import timezone

from django_bgjobs import states
from django_bgjobs._payload import json_problem
from django_bgjobs.context import JobContext
from django_bgjobs.exceptions import JobCancelled, LeaseLost, NonRetriable, RetryAfter, Suspend
from django_bgjobs.functions import matching, runs
from django_bgjobs.functions.events import (
    E,
    Event,
    event_argument,
    event_type,
    name_of,
    send_events,
)
from django_bgjobs.functions.keys import ANY, MAX_KEY, wait_key
from django_bgjobs.models import EventRecord, EventWait, Job, JobStatus, Step, StepKind, StepStatus
from django_bgjobs.retry_policy import retry_delay

if TYPE_CHECKING:
    from django_bgjobs.functions.function import DurableFunction
    from django_bgjobs.functions.specs import FunctionSpec

T = TypeVar("T")

# How long an invoke without a timeout parks between looks at its run (the invoked run's end
# wakes it at once; this only bounds a wake that was lost).
INVOKE_RECHECK = timedelta(hours=1)


class Steps:
    """The step API of one attempt of a run (``ctx.step``)."""

    def __init__(self, ctx: JobContext, spec: FunctionSpec, event: Event | None, event_id: Any):
        self._ctx = ctx
        self._spec = spec
        self._event = event
        self._event_id = event_id
        self._job_id = ctx.job_id
        self.run_started_at: datetime = Job.objects.values_list("created_at", flat=True).get(
            pk=ctx.job_id
        )
        self._stored = {step.name: step for step in Step.objects.filter(job_id=ctx.job_id)}
        self._by_position = {step.position: step.name for step in self._stored.values()}
        self._seen: set[str] = set()
        self._position_of_next = 0

    # --- the steps ---------------------------------------------------------------------------

    def run(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` once; its result (JSON) is stored and handed back on every
        later attempt. A failure retries this step alone, with the function's backoff, up to its
        ``max_attempts`` (``NonRetriable`` and ``RetryAfter`` as in a job)."""
        step = self._begin(name, StepKind.RUN)
        if step is not None and step.status == StepStatus.SUCCEEDED:
            return step.result  # type: ignore[return-value]  # stored JSON: the type the step returned
        started = timezone.now()
        try:
            result = fn(*args, **kwargs)
        except (Suspend, JobCancelled, LeaseLost, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            self._failed(name, step, exc, started)
        if problem := json_problem(result, f"the result of step {name!r}"):
            self._failed(name, step, NonRetriable(f"PayloadError: {problem}"), started)
        self._succeed(name, StepKind.RUN, step, started, result)
        return result

    def sleep(self, name: str, duration: timedelta | float) -> None:
        """Park the run for ``duration`` (a timedelta, or seconds), counted from the first time
        this step is reached; no worker is held meanwhile."""
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
        self._sleep(name, lambda now: now + timedelta(seconds=seconds))

    def sleep_until(self, name: str, moment: datetime) -> None:
        """Park the run until ``moment`` (aware)."""
        if timezone.is_naive(moment):
            raise ValueError("sleep_until needs an aware datetime (django.utils.timezone)")
        self._sleep(name, lambda now: moment)

    def wait_for_event(
        self,
        name: str,
        event_class: type[E],
        *,
        timeout: timedelta,
        match: str | None = None,
    ) -> E | None:
        """Park until an event of ``event_class`` is sent whose field ``match`` equals the same
        field of this run's event (any such event without ``match``), or ``timeout`` passes:
        the event, or None. Events sent since the run started count, also those sent before
        this step was reached."""
        step = self._begin(name, StepKind.WAIT)
        now = timezone.now()
        if step is None:
            key = self._wait_key(name, match)
            step = self._write(
                name,
                None,
                kind=StepKind.WAIT,
                status=StepStatus.WAITING,
                started_at=now,
                wake_at=now + timeout,
                waits_for=f"{name_of(event_class)} {key or '(any)'}",
                wait=(name_of(event_class), key),
            )
        if step.status == StepStatus.WAITING:
            step = self._look_back(step, event_class, match)
        if step.status == StepStatus.WAITING and step.wake_at and step.wake_at <= now:
            matching.settle_wait(self._job_id, name, None)  # timed out
            step = self._reload(name)
        if step.status == StepStatus.SUCCEEDED:
            return _event_from(event_class, step.result)
        assert step.wake_at is not None
        raise Suspend(step.wake_at, recheck=lambda: self._wake_if_settled(name))

    def send_event(self, name: str, sent: Event) -> str:
        """Send ``sent`` once, in the same transaction as this step's record: however often the
        run resumes, the event is sent one time. Returns its id."""
        step = self._begin(name, StepKind.SEND)
        if step is not None and step.status == StepStatus.SUCCEEDED:
            return str(step.result)
        now = timezone.now()
        with transaction.atomic():
            self._fence()
            [record] = send_events([sent])
            self._succeed(name, StepKind.SEND, step, now, str(record.pk), fenced=True)
        return str(record.pk)

    def invoke(
        self,
        name: str,
        function: DurableFunction[Any],
        event: Event | None = None,
        *,
        timeout: timedelta | None = None,
    ) -> Any:
        """Start a run of ``function`` (with ``event``) and park until it ends: its result. A
        run that dies or is cancelled fails this step for good (``NonRetriable``)."""
        step = self._begin(name, StepKind.INVOKE)
        if step is not None and step.status == StepStatus.SUCCEEDED:
            return step.result
        now = timezone.now()
        if step is None:
            with transaction.atomic():
                self._fence()
                given = None if event is None else event_argument(event)
                [child] = runs.start_runs([(function.spec, given)])
                step = self._write(
                    name,
                    None,
                    fenced=True,
                    kind=StepKind.INVOKE,
                    status=StepStatus.WAITING,
                    started_at=now,
                    wake_at=now + timeout if timeout else None,
                    child_id=child.pk,
                )
        assert step.child_id is not None
        child_status, result, error = Job.objects.values_list("status", "result", "error").get(
            pk=step.child_id
        )
        if child_status == JobStatus.SUCCEEDED:
            self._succeed(name, StepKind.INVOKE, step, step.started_at, result)
            return result
        if child_status in (JobStatus.DEAD, JobStatus.CANCELLED):
            reason = f"the run it invoked ({step.child_id}) is {child_status}: {error}".strip()
            self._failed(name, step, NonRetriable(reason), step.started_at)
        if step.wake_at is not None and step.wake_at <= now:
            self._failed(name, step, NonRetriable("timed out waiting for its run"), now)
        until = step.wake_at or now + INVOKE_RECHECK
        raise Suspend(until, recheck=lambda: self._wake_if_child_ended(step.child_id))

    # --- bookkeeping -------------------------------------------------------------------------

    def _begin(self, name: str, kind: StepKind) -> Step | None:
        """The stored step ``name``, after checking the name and the run's order of steps."""
        if not isinstance(name, str) or not 0 < len(name) <= 255:
            raise NonRetriable(f"a step needs a name of 1 to 255 characters, not {name!r}")
        self._ctx.check_cancelled()
        if name in self._seen:
            raise NonRetriable(
                f"step name {name!r} is used twice in one run of {self._spec.name}: give each "
                "step its own name (in a loop, put the index in it: f'charge-{i}')"
            )
        position = len(self._seen)
        self._seen.add(name)
        stored = self._stored.get(name)
        was = self._by_position.get(position)
        if (stored is not None and (stored.position != position or stored.kind != kind)) or (
            was is not None and was != name
        ):
            raise NonRetriable(
                f"step {name!r} ({kind}) is step {position + 1} of {self._spec.name} now, but this "
                f"run began with {was!r} there"
                + (
                    f" and {name!r} as step {stored.position + 1} ({stored.kind})"
                    if stored is not None
                    else ""
                )
                + ": the function's code changed under a run in progress. Cancel the run and "
                "start it again, or keep the old steps until such runs finish."
            )
        self._position_of_next = position
        return stored

    def _fence(self) -> None:
        """Inside a transaction: hold this attempt's job row, or raise LeaseLost (another
        attempt took over) or JobCancelled (the run was asked to stop: nothing more is done)."""
        held = (
            Job.objects.attempt_running(self._job_id, self._ctx.attempt)
            .select_for_update()
            .values_list("cancel_requested", flat=True)
        )
        found = list(held)
        if not found:
            raise LeaseLost(f"attempt {self._ctx.attempt} of run {self._job_id} was taken over")
        if found[0]:
            raise JobCancelled(f"run {self._job_id} was cancelled")

    def _write(
        self,
        name: str,
        step: Step | None,
        *,
        wait: tuple[str, str] | None = None,
        fenced: bool = False,
        **values: Any,
    ) -> Step:
        """Write step ``name``, fenced by the attempt; with ``wait``, its EventWait too.
        ``fenced``: the caller's transaction holds the fence already (``_fence()``)."""
        with transaction.atomic() if not fenced else contextlib.nullcontext():
            if not fenced:
                self._fence()
            if step is None:
                step = Step.objects.create(
                    job_id=self._job_id, name=name, position=self._position_of_next, **values
                )
            else:
                Step.objects.filter(pk=step.pk).update(**values)
                for field, value in values.items():
                    setattr(step, field, value)
            if wait is not None:
                EventWait.objects.create(
                    job_id=self._job_id,
                    event_name=wait[0],
                    key=wait[1],
                    step=name,
                    created_at=timezone.now(),
                )
        self._stored[name] = step
        self._by_position[step.position] = name
        return step

    def _reload(self, name: str) -> Step:
        step = Step.objects.get(job_id=self._job_id, name=name)
        self._stored[name] = step
        return step

    def _succeed(
        self,
        name: str,
        kind: StepKind,
        step: Step | None,
        started: datetime,
        result: Any,
        fenced: bool = False,
    ) -> None:
        now = timezone.now()
        self._write(
            name,
            step,
            fenced=fenced,
            kind=kind,
            status=StepStatus.SUCCEEDED,
            attempts=(step.attempts if step else 0) + 1,
            result=result,
            error="",
            started_at=step.started_at if step else started,
            finished_at=now,
            duration_ms=max(int((now - started).total_seconds() * 1000), 0),
        )

    def _failed(
        self, name: str, step: Step | None, exc: BaseException, started: datetime
    ) -> NoReturn:
        """Record the failed attempt of a step; raise what ends this attempt of the run. A
        ``RetryAfter`` (a rate-limited call) spends none of the step's attempts, as in a job."""
        snoozed = isinstance(exc, RetryAfter) and not exc.spend_attempt
        attempts = (step.attempts if step else 0) + (0 if snoozed else 1)
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        now = timezone.now()
        self._write(
            name,
            step,
            kind=step.kind if step else StepKind.RUN,
            status=StepStatus.FAILED,
            attempts=attempts,
            error=error,
            started_at=step.started_at if step else started,
            finished_at=now,
            duration_ms=max(int((now - started).total_seconds() * 1000), 0),
        )
        budget = self._spec.job.max_attempts
        delay = retry_delay(self._spec.job, exc, attempts)
        if delay is None or (attempts >= budget and not snoozed):
            raise NonRetriable(
                f"step {name!r} failed (attempt {attempts} of {budget}): {error}"
            ) from exc
        raise Suspend(
            now + timedelta(seconds=delay),
            error=f"step {name!r} (attempt {attempts} of {budget}): {error}",
            traceback="".join(tb.format_exception(exc)),
        )

    def _sleep(self, name: str, until: Callable[[datetime], datetime]) -> None:
        step = self._begin(name, StepKind.SLEEP)
        if step is not None and step.status == StepStatus.SUCCEEDED:
            return
        now = timezone.now()
        if step is None:
            wake_at = until(now)
            step = self._write(
                name,
                None,
                kind=StepKind.SLEEP,
                status=StepStatus.SLEEPING,
                started_at=now,
                wake_at=wake_at,
            )
        assert step.wake_at is not None
        if step.wake_at > now:
            raise Suspend(step.wake_at)
        self._succeed(name, StepKind.SLEEP, step, step.started_at, None)

    def _wait_key(self, name: str, match: str | None) -> str:
        if match is None:
            return ANY
        if self._event is None or not hasattr(self._event, match):
            raise NonRetriable(
                f"step {name!r} matches on {match!r}, but this run's event "
                f"({type(self._event).__name__ if self._event else 'none'}) has no such field"
            )
        key = wait_key(match, getattr(self._event, match))
        if len(key) > MAX_KEY:
            raise NonRetriable(f"step {name!r}: the value of {match!r} is too long to match on")
        return key

    def _look_back(self, step: Step, event_class: type[Event], match: str | None) -> Step:
        """An event sent since the run started, before the wait was in place, matches too."""
        earlier = EventRecord.objects.filter(
            name=name_of(event_class), created_at__gte=self.run_started_at
        ).exclude(pk=self._event_id)
        if match is not None:
            earlier = earlier.filter(**{f"data__{match}": getattr(self._event, match)})
        # An event a wait of this run matched already is not the next one's.
        taken = [s.matched_event_id for s in self._stored.values() if s.matched_event_id]
        found = earlier.exclude(pk__in=taken).order_by("created_at", "id").first()
        if found is None:
            return step
        matching.settle_wait(self._job_id, step.name, found)
        return self._reload(step.name)

    def _wake_if_settled(self, name: str) -> None:
        """After parking: an event matched while the run was getting there wakes it now."""
        if Step.objects.filter(
            job_id=self._job_id, name=name, status=StepStatus.SUCCEEDED
        ).exists():
            states.wake([self._job_id])

    def _wake_if_child_ended(self, child_id: Any) -> None:
        if not Job.objects.unfinished().filter(pk=child_id).exists():
            states.wake([self._job_id])


def _event_from(event_class: type[E], result: Any) -> E | None:
    if result is None:
        return None
    found = event_type(result["name"]) or event_class
    return found.from_payload(result["data"])  # type: ignore[return-value]
