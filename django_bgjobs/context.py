"""What a running job can ask for: ``@bgjob(takes_context=True)`` passes it first."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async

from django_bgjobs.exceptions import JobCancelled, LeaseLost

logger = logging.getLogger("django_bgjobs.job")

# Progress is written at most this often (the last call always waits its turn, not lost
# for good: the next call or the job's end brings the row up to date).
PROGRESS_MIN_INTERVAL = 0.5


@dataclass(eq=False)
class JobContext:
    """The running attempt: which one it is, how to report progress, whether to stop."""

    job_id: Any
    name: str
    attempt: int
    max_attempts: int
    queue: str
    logger: logging.LoggerAdapter[logging.Logger] = field(init=False)
    _cancelled: bool = field(default=False, init=False)
    _lost: bool = field(default=False, init=False)
    _last_progress: float = field(default=0.0, init=False)
    # False when run in-process without a database row (JobFunction.call()).
    tracked: bool = True

    def __post_init__(self) -> None:
        self.logger = logging.LoggerAdapter(
            logger,
            {"job_id": str(self.job_id), "job_name": self.name, "attempt": self.attempt},
        )

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    @property
    def cancelled(self) -> bool:
        """True once someone cancelled this job; updated by the heartbeat and by progress()."""
        return self._cancelled

    def check_cancelled(self) -> None:
        """Stop here (raise JobCancelled) if the job was cancelled, or LeaseLost if taken over."""
        if self._lost:
            raise LeaseLost(f"attempt {self.attempt} of job {self.job_id} lost its lease")
        if self._cancelled:
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        """Report progress (shown in the admin); also a point where a cancelled job stops.

        In an ``async def`` job, use ``await ctx.aprogress(...)``.
        """
        now = time.monotonic()
        final = total is not None and done >= total
        if self.tracked and (final or now - self._last_progress >= PROGRESS_MIN_INTERVAL):
            self._last_progress = now
            from django_bgjobs import states  # models load after this module

            held, cancel = states.report_progress(self.job_id, self.attempt, done, total, message)
            self._lost = self._lost or not held
            self._cancelled = self._cancelled or cancel
        self.check_cancelled()

    async def aprogress(self, done: int, total: int | None = None, message: str = "") -> None:
        """``progress()`` for ``async def`` jobs (the database write runs off the event loop)."""
        await sync_to_async(self.progress)(done, total, message)

    def _heartbeat_said(self, held: bool, cancel: bool) -> None:
        self._lost = self._lost or not held
        self._cancelled = self._cancelled or cancel
