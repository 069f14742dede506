"""The bounded graceful shutdown of a worker: SIGTERM lets running jobs finish within
SHUTDOWN_GRACE, then releases the ones still running (recorded, queued again, published) and
stops them, so that a deploy never leaves a job to wait for its lease to expire."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from billiard.pool import SIG_SOFT_TIMEOUT
from celery.bootsteps import RUN  # type: ignore[attr-defined]  # missing from the stubs
from celery.worker import state as worker_state
from django.db import connections
from django.db.models import Q

from django_bgjobs import states
from django_bgjobs.celery import continuation
from django_bgjobs.celery.broker import EXECUTE_TASK, MessageRef, publish
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.execution import PROCESS_SIGNALS, process_id
from django_bgjobs.models import Job, JobStatus

logger = logging.getLogger("django_bgjobs.worker")

# After the grace period: how long released attempts get to end once interrupted before their
# processes are killed. Short, so that grace + this stays under the supervisor's own timeout
# (Kubernetes: 30 s).
STOP_WAIT = 3.0
# After the release: how long Celery's warm shutdown may take to end before the process exits
# anyway. Longer than billiard's worker_lost_wait (10 s), which a killed pool process costs.
EXIT_WAIT = 15.0


class GracefulShutdown:
    """A warm shutdown (SIGTERM) of the worker in this process, bounded by SHUTDOWN_GRACE.

    Celery's warm shutdown stops taking messages and waits, without limit, for running tasks.
    Jobs that finish within the grace period finish normally. Once it is over, the attempts
    still running in this worker are released (``states.release``: recorded as ``released``,
    the job queued again without spending an attempt), the pool processes running them are
    stopped, which ends Celery's wait, and the jobs are published for another worker. Nothing
    waits for a lease to expire, and the supervisor does not have to SIGKILL the worker.
    """

    def __init__(self, worker: Any, grace: float) -> None:
        self.worker = worker
        self.grace = grace
        # Set on worker_shutdown, in the main thread: the pool has stopped.
        self.pool_stopped = threading.Event()
        self.pids = {os.getpid()}  # this process and its pool's, as seen while they ran
        self.thread = threading.Thread(target=self._run, name="bgjobs-shutdown", daemon=True)

    def _run(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, PROCESS_SIGNALS)  # for Celery's main thread
        logger.info("warm shutdown: running jobs have %gs (SHUTDOWN_GRACE) to finish", self.grace)
        try:
            if self.pool_stopped.wait(self.grace):
                return  # everything finished in time
            released = self._release()
            if not released:
                return  # no job of ours is running; whatever else runs is Celery's business
            self._stop(released)
            # A message already handed to a pool process may have been claimed meanwhile.
            if more := self._release():
                self._stop(more)
                released += more
            # Just after SIGTERM the consumer may still take a message (a synchronous transport
            # such as the filesystem broker polls once more, for up to 2 s): publishing before it
            # stopped could hand the job back to this worker.
            _wait_until(lambda: not self._consuming(), STOP_WAIT)
            # Published once the old attempts have stopped, so that a job never runs twice at
            # once (an old attempt could not record anything anyway: the fence rejects it).
            publish(
                [MessageRef.next_attempt(job) for job in released if job.status == JobStatus.QUEUED]
            )
            self._exit_if_stuck()
        except Exception:
            # The jobs are safe in the database either way: released ones are republished by
            # a dispatcher after REPUBLISH_AFTER, unreleased ones when their lease expires.
            logger.exception("graceful shutdown: releasing running jobs failed")
        finally:
            connections.close_all()

    def _exit_if_stuck(self) -> None:
        """Celery's warm shutdown ends on its own once nothing of ours runs, but billiard can wait
        forever on a pool whose process was killed (seen under load). The jobs are safe by now
        (released, published): end the process rather than leave the supervisor to SIGKILL it."""
        if self.pool_stopped.wait(EXIT_WAIT):
            return
        logger.error(
            "the worker did not finish its warm shutdown %gs after releasing its jobs; exiting now",
            EXIT_WAIT,
        )
        for pid in set(self._pool_processes()) | self.pids:
            if pid != os.getpid() and _running_child(pid):
                _signal(pid, signal.SIGKILL)
        logging.shutdown()  # flush the log before the hard exit
        os._exit(0)

    def _consuming(self) -> bool:
        """The worker's consumer loop still runs (its blueprint leaves RUN when it stops)."""
        return bool(getattr(getattr(self.worker, "blueprint", None), "state", None) == RUN)

    def _pool_processes(self) -> list[int]:
        """The pool's processes now ([] once the pool has stopped, or for a thread pool)."""
        try:
            return [int(pid) for pid in self.worker.pool.info.get("processes") or []]
        except Exception:  # the pool is gone (stopped) or does not list processes
            return []

    def _release(self) -> list[Job]:
        self.pids.update(self._pool_processes())
        # Job.worker is "host:pid", or "host:pid/thread" for a thread pool in this process.
        here = Q(worker__in=[process_id(pid) for pid in self.pids]) | Q(
            worker__startswith=f"{process_id()}/"
        )
        running = list(Job.objects.running().filter(here).values_list("pk", "attempts"))
        reason = (
            f"released: the worker was told to stop and the attempt was still running "
            f"after SHUTDOWN_GRACE ({self.grace:g}s); queued again"
        )
        released = [
            job
            for pk, attempt in running
            if (job := states.release(pk, attempt, reason)) is not None
        ]
        if released:
            logger.warning(
                "shutdown grace (%gs) is over: released %d running job(s) to the queue: %s",
                self.grace,
                len(released),
                ", ".join(str(job.pk) for job in released),
                extra={"job_ids": [str(job.pk) for job in released]},
            )
        return released

    def _stop(self, released: list[Job]) -> None:
        """End the released attempts in their pool processes, the way a soft time limit does:
        billiard's SIG_SOFT_TIMEOUT (SIGUSR1) raises SoftTimeLimitExceeded in the job, its
        ``finally`` blocks run, its outcome is rejected by the fence, and the task returns. The
        process stays in the pool, so Celery's warm shutdown ends as it normally does: no
        WorkerLostError, no wait for a lost process's result (``worker_lost_wait``), exit code
        0; the message is acknowledged (its attempt is recorded). An attempt still running
        after STOP_WAIT (it swallowed the exception, or is stuck in C code) has its process
        killed.

        Not SIGTERM to the process, nor Celery's cold shutdown (SIGQUIT), which sends it: a
        process that dies with a task leaves billiard's synchronous pool (the filesystem broker)
        waiting ``worker_lost_wait`` (10 s) for its result. A thread pool's attempts run in
        this process: they are released but go on until it exits.
        """
        attempts = {(str(job.pk), job.attempts) for job in released}
        # A job run within another job's message (celery/continuation.py) has no request of
        # its own: it is known by the message its process executes now (the job's worker is
        # host:pid), and only that message: once it ends, the process may run another.
        by_id = {process_id(pid): pid for pid in self.pids}
        holders = {by_id[job.worker] for job in released if job.worker in by_id}
        messages = {r.id for r in _active_requests() if r.worker_pid in holders}
        for pid in _processes_running(attempts, messages):
            _signal(pid, SIG_SOFT_TIMEOUT)
        if _wait_until(lambda: not _processes_running(attempts, messages), STOP_WAIT):
            return
        for pid in _processes_running(attempts, messages):
            logger.warning("pool process %s did not end its released attempt; killing it", pid)
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended just now
        os.kill(pid, signum)


def _active_requests() -> list[Any]:
    """The messages this worker is executing (Celery's requests)."""
    for _ in range(10):
        try:
            return list(worker_state.active_requests)
        except RuntimeError:  # changed while read: a WeakSet, updated by the main thread
            time.sleep(0.01)
    return []


def _processes_running(attempts: set[tuple[str, int]], messages: set[str]) -> set[int]:
    """The pool processes running these attempts (job id, attempt), or these messages (by
    request id): from this worker's active requests, and only live children of this process,
    so that a signal never reaches another task, this process, or a reused pid."""
    pids = set()
    for request in _active_requests():
        args = tuple(request.args or ())
        if (
            request.name == EXECUTE_TASK
            and len(args) == 2
            and request.worker_pid
            and ((str(args[0]), int(args[1])) in attempts or request.id in messages)
            and _running_child(request.worker_pid)
        ):
            pids.add(int(request.worker_pid))
    return pids


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not (done := condition()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return done


def _running_child(pid: int) -> bool:
    """Whether ``pid`` is a child of this process that has not exited (so the pid is still
    its). Looks without reaping (WNOWAIT): the pool reaps its own children."""
    try:
        exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False  # reaped already, or not a child of this process
    return exited is None


_worker: Any = None
_shutdown: GracefulShutdown | None = None


def remember_worker(sender: Any = None, **kwargs: Any) -> None:
    global _worker
    _worker = sender


def begin_graceful_shutdown(sender: Any = None, how: str = "", **kwargs: Any) -> None:
    """Celery's worker_shutting_down, sent from its signal handler in the main process.

    Only a warm shutdown (SIGTERM, a first Ctrl+C) is bounded here: a cold one (SIGQUIT) has
    already stopped the running tasks when this is sent. Runs inside a signal handler: it only
    starts a thread, once (a supervisor may send SIGTERM more than once).
    """
    global _shutdown
    if how != "Warm" or _shutdown is not None or _worker is None:
        return
    continuation.stop_taking()  # a job handed a place from now on goes to another worker
    _shutdown = GracefulShutdown(_worker, float(bgjobs_settings.SHUTDOWN_GRACE))
    _shutdown.thread.start()


def end_graceful_shutdown(sender: Any = None, **kwargs: Any) -> None:
    """worker_shutdown: the pool has stopped. A release under way publishes before the exit."""
    if _shutdown is not None:
        _shutdown.pool_stopped.set()
        _shutdown.thread.join(STOP_WAIT + 10)
