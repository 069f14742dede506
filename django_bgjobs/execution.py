"""Running one attempt: claim, call the function with its context, record the outcome.

Used by the Celery task (``worker/task.py``) and, in-process, by ``testing.py``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import traceback as tb
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from celery.exceptions import SoftTimeLimitExceeded
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from django_bgjobs import states
from django_bgjobs._db import discard_broken_connections
from django_bgjobs._payload import json_problem, validate_arguments
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.context import JobContext
from django_bgjobs.exceptions import JobCancelled, LeaseLost, PayloadError, RetryAfter, Suspend
from django_bgjobs.flow import admission, at_start
from django_bgjobs.redaction import scrub
from django_bgjobs.registry import JobSpec, registry
from django_bgjobs.retry_policy import retry_delay

logger = logging.getLogger("django_bgjobs.worker")


def process_id(pid: int | None = None) -> str:
    """host:pid of this process (or of process ``pid`` on this host)."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def worker_id() -> str:
    """host:pid, and the thread for attempts run by a thread pool."""
    thread = threading.current_thread()
    where = process_id()
    return where if thread is threading.main_thread() else f"{where}/{thread.name}"


# Sent to the process as a whole (by a supervisor, Celery, billiard's soft time limit).
PROCESS_SIGNALS = {
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
}


class Heartbeat:
    """Extends the leases of the attempts running in this process, from a background thread.

    One thread per process, started on first use, so short jobs cost nothing: the first beat
    comes a third of a lease after an attempt starts. Several attempts at once (a threads or
    gevent pool) each keep their own lease.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[JobContext, float]] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        # Off in capture_jobs(): a test's transaction is invisible to another connection.
        self.enabled = True

    def watch(self, ctx: JobContext) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._watched[id(ctx)] = (ctx, time.monotonic())
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="bgjobs-heartbeat", daemon=True
                )
                self._thread.start()

    def unwatch(self, ctx: JobContext) -> None:
        with self._lock:
            self._watched.pop(id(ctx), None)

    def _run(self) -> None:
        # Leave the signals sent to the process to the main thread, where Python handles them
        # and where a pool process runs its job. The kernel may deliver a signal to any thread
        # that does not block it; delivered here, it would not interrupt the job's blocking
        # call (a sleep, a socket read: a soft time limit would wait), and in a billiard pool
        # process that is exiting (SIGTERM back to its default action, and masked only in the
        # main thread while it writes its last message to the pool) it would kill the process
        # in the middle of that write, leaving the pool's result queue locked: the worker then
        # hangs at shutdown.
        signal.pthread_sigmask(signal.SIG_BLOCK, PROCESS_SIGNALS)
        interval = max(bgjobs_settings.LEASE_SECONDS / 3, 0.2)
        try:
            while True:
                time.sleep(min(interval, 1.0))
                with self._lock:
                    due = [
                        ctx
                        for ctx, since in self._watched.values()
                        if time.monotonic() - since >= interval
                    ]
                for ctx in due:
                    try:
                        held, cancel = states.heartbeat(ctx.job_id, ctx.attempt)
                        ctx._heartbeat_said(held, cancel)
                    except DatabaseError:
                        logger.warning("heartbeat failed for job %s", ctx.job_id, exc_info=True)
                        discard_broken_connections()
                    with self._lock:
                        if id(ctx) in self._watched:
                            self._watched[id(ctx)] = (ctx, time.monotonic())
        finally:
            connections.close_all()


heartbeat = Heartbeat()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return "TimeoutError: the attempt ran past its timeout"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _call(spec: JobSpec, ctx: JobContext, args: list[Any], kwargs: dict[str, Any]) -> Any:
    call_args = [ctx, *args] if spec.takes_context else list(args)
    func = spec.func
    if hasattr(func, "__code__") and func.__code__.co_flags & 0x80:  # a coroutine function
        func = async_to_sync(func)
    return func(*call_args, **kwargs)


def run_attempt(job_id: str, attempt: int) -> str:
    """Run attempt ``attempt`` of job ``job_id``. Returns what happened, for logs and tests."""
    claim = states.claim(job_id, attempt, worker_id())
    if claim is None:
        logger.debug("job %s attempt %s: duplicate, stale or deleted; dropped", job_id, attempt)
        return "stale"
    spec = registry.get(claim.job.name)
    if spec is None:
        error = (
            f"unknown job {claim.job.name!r}: no @bgjob has this name in this worker (was it "
            "renamed or removed, or is its module not imported? Jobs in <app>/jobs.py load by "
            "themselves)"
        )
        return states.fail(claim, error, "", retry_in=None) or "superseded"
    job = claim.job
    ctx = JobContext(
        job_id=job.pk,
        name=job.name,
        attempt=attempt,
        max_attempts=job.max_attempts,
        queue=job.queue,
    )
    heartbeat.watch(ctx)
    # Only the job's own code is inside this try. An error while recording the outcome (the
    # database went away) propagates instead of counting as the job failing and running it
    # again: the lease expires and the dispatcher takes over.
    try:
        if spec.flow is not None:
            # Throttled: picked up well before its key may start another, it goes back to
            # wait (no attempt spent). Checked under the heartbeat: the key's row may be
            # locked a while by an enqueue's transaction.
            at_start.wait_for_start(job, spec.flow)
        validate_arguments(spec.name, spec.signature, tuple(job.args), job.kwargs)
        result = _call(spec, ctx, job.args, job.kwargs)
    except JobCancelled:
        return "cancelled" if states.cancelled_while_running(claim) else "superseded"
    except Suspend as suspended:
        # Parked and checked again in one transaction: what the run waits for, arrived while it
        # was getting here, wakes it at the commit (and a crash in between loses neither).
        with transaction.atomic():
            if not states.suspend(claim, suspended.until, suspended.error, suspended.traceback):
                return "superseded"
            if suspended.recheck is not None:
                suspended.recheck()
        if not suspended.error:  # a failed step's retry is announced (job_failed): freed there
            admission.place_freed(job)
        return "retrying" if suspended.error else "parked"
    except (LeaseLost, PayloadError) as exc:
        # LeaseLost: another attempt owns the job (the write is rejected as superseded).
        # PayloadError: the stored arguments no longer fit the function (the code changed).
        return _record_failure(claim, spec, exc, retry_in=None)
    except RetryAfter as exc:
        if exc.spend_attempt:
            return _record_failure(claim, spec, exc, exc.seconds)
        until = timezone.now() + timedelta(seconds=exc.seconds)
        error = scrub(_describe(exc), spec, job.args, job.kwargs)
        return "retrying" if states.suspend(claim, until, error) else "superseded"
    except BaseException as exc:  # SystemExit and CancelledError too: recorded, not lost
        status = _record_failure(claim, spec, exc, retry_delay(spec, exc, attempt))
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise  # recorded; now the process stops as it was asked to
        return status
    finally:
        heartbeat.unwatch(ctx)
    if problem := json_problem(result, "the return value"):
        return states.fail(claim, f"PayloadError: {problem}", "", retry_in=None) or "superseded"
    return "succeeded" if states.succeed(claim, result) else "superseded"


def _record_failure(
    claim: states.Claim, spec: JobSpec, exc: BaseException, retry_in: float | None
) -> str:
    job = claim.job
    # Error text may quote the arguments: redacted ones are scrubbed before it is stored.
    error = scrub(_describe(exc), spec, job.args, job.kwargs)
    trace = scrub("".join(tb.format_exception(exc)), spec, job.args, job.kwargs)
    return states.fail(claim, error, trace, retry_in=retry_in) or "superseded"
