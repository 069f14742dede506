"""The Celery side: the one task that executes jobs, and the hooks into each worker (the
dispatcher thread, connection reuse, the bounded graceful shutdown of shutdown.py)."""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from functools import cache
from typing import Any

from celery import shared_task
from celery.exceptions import Reject
from celery.signals import (
    celeryd_init,
    worker_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)
from django.db import InterfaceError, OperationalError

from django_bgjobs import wake
from django_bgjobs._db import discard_broken_connections
from django_bgjobs.celery import continuation, publisher
from django_bgjobs.celery.broker import EXECUTE_TASK, MessageRef, publish
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.execution import run_attempt
from django_bgjobs.worker.shutdown import (
    begin_graceful_shutdown,
    end_graceful_shutdown,
    remember_worker,
)

logger = logging.getLogger("django_bgjobs.worker")

# Seconds a worker process waits before handing back a message it could not claim because the
# database was unreachable.
REQUEUE_PAUSE = 1.0

DB_REUSE_KEY = "CELERY_DB_REUSE_MAX"
DB_REUSE_MAX = 1000


@shared_task(
    name=EXECUTE_TASK,
    # Safe whatever the project's global Celery settings: ack after the attempt is recorded,
    # and requeue when the child dies (the claim fence drops the message if it was recorded).
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    serializer="json",
)
def execute(job_id: str, attempt: int) -> str:
    """Run attempt ``attempt`` of job ``job_id``; the database row says what to run."""
    # Drop a connection broken by a database outage before using it; keep healthy ones
    # (see install_connection_reuse).
    discard_broken_connections()
    handed: list[MessageRef] = []  # the job this one hands its place to, to run next here
    taking = continuation.taking(handed) if _unbounded_in_time() else nullcontext()
    try:
        with taking:
            status = run_attempt(job_id, int(attempt))
    except (OperationalError, InterfaceError) as exc:
        # The database cannot be reached: the claim, or the record of the outcome, failed.
        # Celery would acknowledge a failed task and the message would be gone until the
        # dispatcher republishes it (REPUBLISH_AFTER). Put it back instead: once the database
        # returns, the job is claimed at once (or the message is dropped by the fence, when the
        # attempt had been claimed; its lease then expires). The pause keeps a worker from
        # spinning on it while the outage lasts.
        logger.warning(
            "job %s attempt %s: database unavailable (%s); message requeued", job_id, attempt, exc
        )
        discard_broken_connections()
        _publish_kept(handed)
        time.sleep(REQUEUE_PAUSE)
        raise Reject(exc, requeue=True) from exc
    except BaseException:  # the process is stopping (SystemExit), or recording failed
        _publish_kept(handed)
        raise
    for ref in handed:  # at most one: see celery/continuation.py
        _run_handed(ref)
    return status


# Whether this worker was started with --time-limit or --soft-time-limit (set in its main
# process by celeryd_init, before the pool processes are forked).
_worker_time_limited = False


def _unbounded_in_time() -> bool:
    """No time limit applies to this message (from it, the task, the project's Celery settings
    or the worker's command line): running a second job within it leaves no limit wrong."""
    return not (
        _worker_time_limited or any(execute.request.timelimit or ()) or _limited_by_settings()
    )


@cache
def _limited_by_settings() -> bool:
    """The task's or the project's Celery settings set a time limit (read once: Celery's
    settings lookups cost more than the rest of this check)."""
    conf = execute.app.conf
    return bool(
        execute.time_limit
        or execute.soft_time_limit
        or conf.task_time_limit
        or conf.task_soft_time_limit
    )


def _publish_kept(handed: list[MessageRef]) -> None:
    """The job was handed its place but will not run here: any worker may take it."""
    if handed:
        publish(handed)


def _run_handed(ref: MessageRef) -> None:
    """Run the job this process's job handed its place to, as if its message had come."""
    discard_broken_connections()
    try:
        run_attempt(str(ref.job_id), ref.attempt)
    except (OperationalError, InterfaceError) as exc:
        # Whatever the database kept (queued, or claimed and then running with a lease), a
        # message lets any worker take it on once the database is back; a copy for an
        # attempt already claimed is dropped by the claim's fence.
        logger.warning(
            "job %s attempt %s: database unavailable (%s); published for another worker",
            ref.job_id,
            ref.attempt,
            exc,
        )
        discard_broken_connections()
        publish([ref])


def note_worker_options(sender: Any = None, options: Any = None, **kwargs: Any) -> None:
    """celeryd_init, in the worker's main process before its pool is forked: remember whether
    its command line sets a time limit (it reaches the pool, not the app's settings), share the
    flag its shutdown sets and the pipe that wakes its dispatcher (wake.py), and publish inline
    (celery/publisher.py)."""
    global _worker_time_limited
    options = options or {}
    _worker_time_limited = bool(options.get("time_limit") or options.get("soft_time_limit"))
    continuation.share_stop_flag()
    wake.share_pipe()
    publisher.publish_inline()


def install_connection_reuse(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    """Keep database connections across tasks in this worker (unless the project decided).

    Celery's Django fix-up closes every connection before and after each task unless
    CELERY_DB_REUSE_MAX is set; every job writes to the database, and reconnecting per job made
    throughput several times lower. Broken connections are still dropped before each job
    (discard_broken_connections in ``execute``). The fix-up object has read the setting already by
    celeryd_init (it is made when modules are imported), so the value is given to it directly.
    """
    app = getattr(instance, "app", None)
    if app is None or app.conf.get(DB_REUSE_KEY) is not None:
        return
    for fixup in getattr(app, "_fixups", None) or []:
        worker_fixup = getattr(fixup, "worker_fixup", None)
        if worker_fixup is not None and not worker_fixup.db_reuse_max:
            worker_fixup.db_reuse_max = DB_REUSE_MAX


def consume_job_queues(
    sender: Any = None, instance: Any = None, options: Any = None, **kwargs: Any
) -> None:
    """``celery -A proj worker`` without ``-Q`` would consume only Celery's default queue and
    leave every job waiting: add BGJOBS' queues. An explicit ``-Q`` is left as it is."""
    app = getattr(instance, "app", None)
    if app is None or (options or {}).get("queues"):
        return
    for name in bgjobs_settings.QUEUES:
        app.amqp.queues.select_add(name)


_dispatcher = None


def start_dispatcher(sender: Any = None, **kwargs: Any) -> None:
    global _dispatcher
    if bgjobs_settings.DISPATCHER != "worker":
        return
    from django_bgjobs.dispatcher import Dispatcher

    _dispatcher = Dispatcher()
    _dispatcher.start_thread()
    logger.info("dispatcher started in this worker (every %ss)", bgjobs_settings.DISPATCH_INTERVAL)


def stop_dispatcher(sender: Any = None, **kwargs: Any) -> None:
    if _dispatcher is not None:
        _dispatcher.stop()


def connect() -> None:
    """Called from AppConfig.ready(): hook into any Celery worker that loads Django."""
    celeryd_init.connect(install_connection_reuse, weak=False)
    celeryd_init.connect(consume_job_queues, weak=False)
    celeryd_init.connect(note_worker_options, weak=False)
    worker_init.connect(remember_worker, weak=False)
    worker_ready.connect(start_dispatcher, weak=False)
    worker_shutting_down.connect(begin_graceful_shutdown, weak=False)
    worker_shutdown.connect(end_graceful_shutdown, weak=False)
    worker_shutdown.connect(stop_dispatcher, weak=False)
