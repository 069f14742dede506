"""The dispatcher: the sweep that keeps the database and the broker in agreement.

Every DISPATCH_INTERVAL it publishes waiting jobs that became due (delays and retries live in
the database, never in a broker ``eta``), republishes queued jobs the broker never got or lost,
and takes back running jobs whose lease expired. Several may run at once (one per worker): on
PostgreSQL, SKIP LOCKED gives each row to one of them; elsewhere a rare double publish is
absorbed by the claim fence.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, ProgrammingError, connections
from django.utils import timezone

from django_bgjobs import extensions, states, wake
from django_bgjobs._db import discard_broken_connections
from django_bgjobs.celery.broker import MessageRef, publish, queue_depth
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.flow import admission
from django_bgjobs.models import Job

logger = logging.getLogger("django_bgjobs.dispatcher")


@dataclass(frozen=True, slots=True)
class Sweep:
    due: int
    republished: int
    expired: int

    @property
    def busy(self) -> bool:
        return bool(self.due or self.republished or self.expired)


def _publish(jobs: list[Job]) -> None:
    publish([MessageRef.next_attempt(job) for job in jobs])


def _lost_in_the_broker(jobs: list[Job]) -> list[Job]:
    """Of the queued jobs not started long after they were published, those whose message the
    broker must have lost. A queue holding as many messages as it has queued jobs is a backlog
    (or has no consumer): republishing there would only add a copy of every job each
    REPUBLISH_AFTER. A queue holding fewer lost the difference (Redis flushed or restarted
    empty, a crash between commit and publish): the oldest that many jobs are published again.
    Which ones were lost cannot be told; a copy of one that was not is dropped by the claim's
    fence, and one lost among the newer is found when it too has waited REPUBLISH_AFTER."""
    never_published = [job for job in jobs if job.published_at is None]
    by_queue: dict[str, list[Job]] = {}
    for job in jobs:
        if job.published_at is not None:
            by_queue.setdefault(job.queue, []).append(job)
    lost = list(never_published)
    for queue, waiting in by_queue.items():
        depth = queue_depth(queue)
        if not depth:  # empty (or the broker cannot say: publishing will tell)
            lost.extend(waiting)
            continue
        expected = Job.objects.queued().filter(queue=queue, published_at__isnull=False).count()
        missing = min(expected - depth, len(waiting))
        if missing > 0:
            lost.extend(waiting[:missing])  # in the sweep's order: priority, then oldest
        logger.info(
            "queue %r holds %d message(s) for %d queued job(s): %d of its %d stale job(s) "
            "published again",
            queue,
            depth,
            expected,
            max(missing, 0),
            len(waiting),
        )
    return lost


def _run_extension_sweeps() -> None:
    """The sweeps other apps registered (outbound delivery settles and admits its messages
    here). One that fails is logged and the others still run; a database error goes up to the
    pass's own handling, as the jobs' sweep's does."""
    for name, sweep in extensions.sweeps():
        try:
            sweep()
        except DatabaseError:
            raise
        except Exception:
            logger.exception("dispatcher: sweep %r failed; the pass goes on", name)


# The shortest pause between passes: a job due now that another dispatcher holds (SKIP LOCKED)
# is not polled for in a busy loop.
MIN_PAUSE = 0.05


class Dispatcher:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> Sweep:
        """The whole pass: due jobs, republishing, expired leases, the other apps' sweeps."""
        now = timezone.now()
        limit = bgjobs_settings.DISPATCH_BATCH
        due = self._publish_due(now)
        stale = states.reclaim_unpublished(now, limit)
        _publish(_lost_in_the_broker(stale))
        expired = states.expire_leases(now, limit)
        admission.admit_waiting()
        _run_extension_sweeps()
        return self._report(Sweep(due, len(stale), len(expired)))

    def run_due(self) -> Sweep:
        """The short pass between whole ones: only the waiting jobs that became due."""
        return self._report(Sweep(self._publish_due(timezone.now()), 0, 0))

    @staticmethod
    def _publish_due(now: datetime) -> int:
        due = states.promote_due(now, bgjobs_settings.DISPATCH_BATCH)
        _publish(due)
        return len(due)

    @staticmethod
    def _report(sweep: Sweep) -> Sweep:
        if sweep.busy:
            logger.info(
                "dispatched: %d due, %d republished, %d expired leases",
                sweep.due,
                sweep.republished,
                sweep.expired,
                extra={
                    "due": sweep.due,
                    "republished": sweep.republished,
                    "expired": sweep.expired,
                },
            )
        return sweep

    def run_forever(self) -> None:
        interval = bgjobs_settings.DISPATCH_INTERVAL
        next_whole = time.monotonic()
        try:
            while not self._stop.is_set():
                whole = time.monotonic() >= next_whole
                sweep = self._guarded(self.run_once if whole else self.run_due)
                if whole:
                    next_whole = time.monotonic() + interval
                # A full batch means more is waiting: go again at once.
                full = max(sweep.due, sweep.republished) >= bgjobs_settings.DISPATCH_BATCH
                if not full:
                    pause, whole_then = self._pause(max(next_whole - time.monotonic(), 0.0))
                    if whole_then:  # an app's work comes due then: its sweep must run
                        next_whole = time.monotonic() + pause
                    wake.sleep(pause, self._stop)
        finally:
            connections.close_all()

    @staticmethod
    def _guarded(run: Callable[[], Sweep]) -> Sweep:
        try:
            return run()
        except ProgrammingError as exc:
            # A table or column missing: the code is newer than the database.
            logger.error("dispatcher: %s. Run `manage.py migrate`; retrying", exc)
            discard_broken_connections()
        except DatabaseError as exc:
            # The database is away: keep trying, it is the source of truth.
            logger.warning("dispatcher: database error (%s); retrying", exc)
            discard_broken_connections()
        except Exception:
            logger.exception("dispatcher pass failed; retrying")
        return Sweep(0, 0, 0)

    @staticmethod
    def _pause(until_whole: float) -> tuple[float, bool]:
        """Until the next pass: the next whole one, or sooner when something waiting comes due
        first, so that it starts on time, not up to an interval late. A waiting job (a delay,
        a retry, a durable function's sleep) gets a short pass that only publishes what became
        due; an app's hint (extensions.register_next_due) gets a whole pass. Returns the
        seconds, and whether the pass then is a whole one."""
        hints: list[tuple[datetime, bool]] = []
        try:
            due = states.next_due()
            if due is not None:
                hints.append((due, False))
            for name, next_due in extensions.next_due_hints():
                try:
                    hinted = next_due()
                    if hinted is not None:
                        if not (isinstance(hinted, datetime) and hinted.tzinfo is not None):
                            raise TypeError(f"an aware datetime or None, not {hinted!r}")
                        hints.append((hinted, True))
                except DatabaseError:
                    raise
                except Exception:
                    logger.exception("dispatcher: next-due hint %r failed", name)
        except DatabaseError:
            discard_broken_connections()
        if not hints:
            return until_whole, False
        when, whole = min(hints, key=lambda hint: hint[0])
        seconds = max(MIN_PAUSE, (when - timezone.now()).total_seconds())
        return (seconds, whole) if seconds < until_whole else (until_whole, False)

    def start_thread(self) -> None:
        self._thread = threading.Thread(
            target=self.run_forever, name="bgjobs-dispatcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        wake.poke()
        if self._thread is not None:
            self._thread.join(timeout)
