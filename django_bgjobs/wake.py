"""Waking a worker's dispatcher when a job of one of its pool processes comes due sooner than
the dispatcher's next pass.

The dispatcher sleeps until its next whole pass, or until the earliest waiting job is due,
read as it goes to sleep. A retry recorded while it sleeps, due in less than
``DISPATCH_INTERVAL`` (a ``retry_delay`` of 300 ms), would start up to an interval late. So the
worker's main process makes a pipe before its pool is forked (worker/task.py); a pool process
that records such a retry writes a byte to it, and the dispatcher, which waits on the pipe,
reads the earliest due time again and sleeps until then.

Jobs due that soon but written by other processes (a web process's ``enqueue(delay=0.3)``)
do not wake it: they start within ``DISPATCH_INTERVAL``, as the docs say.
"""

from __future__ import annotations

import os
import select
import threading
from datetime import datetime

from django.utils import timezone

from django_bgjobs.conf import bgjobs_settings

_pipe: tuple[int, int] | None = None  # (read, write), both non-blocking


def share_pipe() -> None:
    """In the worker's main process, before its pool is forked."""
    global _pipe
    if _pipe is None:
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        _pipe = (read, write)


def due_at(due: datetime) -> None:
    """A job became due at ``due``: wake the dispatcher if that is before its next pass."""
    if _pipe is None:
        return
    if (due - timezone.now()).total_seconds() >= bgjobs_settings.DISPATCH_INTERVAL:
        return
    poke()


def poke() -> None:
    if _pipe is not None:
        try:
            os.write(_pipe[1], b"\0")
        except OSError:  # full (BlockingIOError): the dispatcher has wake-ups waiting already
            pass


def sleep(seconds: float, stop: threading.Event) -> None:
    """The dispatcher's pause: ``seconds``, or less when woken (by a poke, or by ``stop``,
    which pokes too)."""
    if _pipe is None:
        stop.wait(seconds)
        return
    ready, _, _ = select.select([_pipe[0]], [], [], seconds)
    if ready:
        try:
            while os.read(_pipe[0], 4096):
                pass
        except BlockingIOError:
            pass
