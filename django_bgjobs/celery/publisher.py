"""Publishing from a background thread, so that an enqueue returns once its row is committed.

The row is the job; the message only wakes a worker. A web request that enqueues pays for the
INSERT and its commit, then hands the message to this process's publisher thread and goes on:
the broker's round trip and Celery's message building (about half of an enqueue's time) happen
beside the request instead of inside it. Nothing is lost if they never happen: a message not
sent (the process died first, the broker was down) is sent by the dispatcher, from the row,
after REPUBLISH_AFTER (at once when the publish failed and the row could be marked).

Messages are sent in the order they were handed over, several per producer checkout when they
queue up. At interpreter exit the thread is given a few seconds to send what is left, so a
management command that enqueues and exits still publishes. A forked child (a pre-forking web
server's worker) starts its own thread on first use.

Not used in Celery worker processes (jobs that enqueue jobs, the dispatcher): there a publish
is sent inline, since a pool process may be ended without running exit handlers.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections import deque
from collections.abc import Sequence

from django.db import connections, transaction

from django_bgjobs.celery import broker
from django_bgjobs.celery.broker import MessageRef, publish
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.models import Job

logger = logging.getLogger("django_bgjobs.broker")

# Seconds the thread gets at interpreter exit to send the messages still waiting.
EXIT_FLUSH_SECONDS = 5.0


class Publisher:
    """One thread per process sending the messages handed to it, in order."""

    def __init__(self) -> None:
        self._waiting: deque[Sequence[MessageRef]] = deque()
        self._cond = threading.Condition()
        self._unsent = 0  # messages handed over and not yet sent (or given up)
        self._thread: threading.Thread | None = None

    def submit(self, refs: Sequence[MessageRef]) -> None:
        """Send these messages soon, from the publisher thread."""
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="bgjobs-publisher", daemon=True
                )
                self._thread.start()
            self._waiting.append(refs)
            self._unsent += len(refs)
            self._cond.notify()

    def flush(self, timeout: float) -> bool:
        """Wait until every message handed over so far was sent; False if still not after
        ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self._unsent == 0, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._waiting))
                batch = [ref for refs in self._waiting for ref in refs]
                self._waiting.clear()
            try:
                publish(batch)  # logs and marks the rows itself when the broker refuses
            except Exception:  # never let the thread die: the dispatcher republishes
                logger.exception("publishing %d job(s) failed", len(batch))
            finally:
                # publish() may have marked rows unpublished: this thread's connection is not
                # kept (it would outlive the request that caused it).
                connections.close_all()
                with self._cond:
                    self._unsent -= len(batch)
                    self._cond.notify_all()


_publisher = Publisher()
_inline = False  # set in Celery worker processes


def publish_inline() -> None:
    """This process is a Celery worker: publish in the caller's thread (see the module)."""
    global _inline
    _inline = True


def publish_on_commit(jobs: Sequence[Job], using: str | None = None) -> None:
    """Publish these queued jobs once the current transaction commits (at once in autocommit):
    from the publisher thread, or inline in a worker, with BGJOBS["PUBLISH_IN_BACKGROUND"]
    off, or while tests capture the messages."""
    if not jobs:
        return
    refs = [MessageRef.next_attempt(job) for job in jobs]
    if _inline or broker.intercepted() or not bgjobs_settings.PUBLISH_IN_BACKGROUND:
        transaction.on_commit(lambda: publish(refs), using=using, robust=True)
    else:
        transaction.on_commit(lambda: _publisher.submit(refs), using=using, robust=True)


def flush(timeout: float = EXIT_FLUSH_SECONDS) -> bool:
    """Wait for the messages this process handed to its publisher thread to be sent (tests,
    and a process about to exit)."""
    return _publisher.flush(timeout)


def _forget_in_child() -> None:
    # A forked child has no thread: it starts its own, and leaves the parent's messages to
    # the parent.
    global _publisher
    _publisher = Publisher()


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(flush)
