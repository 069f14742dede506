"""The throttle's and the rate limit's stated bounds over a minute, on four worker processes
(docs/howto/flow-control.md): a soak test, run with ``BGJOBS_SOAK=1 scripts/test`` (it takes
about two minutes; the default run leaves it out).

For 60 s, two accounts each enqueue 10 throttled jobs a second (twice their limit of 5 a
second) and one address 5 rate-limited enqueues a second (limit 20 per 10 s); then the workers
catch up. Checked: every throttled job ran, and no window of one second saw more than 5 of an
account's jobs start; no window of 10 s accepted more than 2 * 20 - 1 enqueues of the address,
and over the run about 20 per 10 s."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from django_bgjobs.models import Job, JobStatus
from tests import flow_jobs as fj
from tests.conftest import WorkerProcess, wait_for
from tests.models import Effect

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("BGJOBS_SOAK") != "1", reason="a soak test: BGJOBS_SOAK=1 runs it"
    ),
    pytest.mark.django_db(transaction=True),
]

SECONDS = 60


def most_in_a_window(times: list, window: timedelta) -> int:  # type: ignore[type-arg]
    times = sorted(times)
    return max(
        (sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times)),
        default=0,
    )


def test_throttle_and_rate_limit_hold_their_bounds_over_a_minute(no_session_worker):
    workers = WorkerProcess(
        str(connection.settings_dict["NAME"]),
        Path(settings.STATE_DIR) / "soak-worker.log",
        concurrency=4,
    )
    workers.start()
    try:
        throttled, accepted, n = [], [], 0
        began = time.monotonic()
        while time.monotonic() - began < SECONDS:
            tick = time.monotonic()
            for _ in range(5):  # 10 a second per account, 5 a second for the address
                n += 1
                throttled += [fj.soak_call.enqueue("a", n), fj.soak_call.enqueue("b", n)]
                accepted.append(fj.soak_login.enqueue("10.1.1.1", n))
            time.sleep(max(0.0, 0.5 - (time.monotonic() - tick)))
        ids = [job.pk for job in throttled]
        wait_for(
            lambda: Job.objects.filter(pk__in=ids, status=JobStatus.SUCCEEDED).count() == len(ids),
            timeout=120,
            message="every throttled job to run",
        )
    finally:
        workers.stop()
    for account in ("a", "b"):
        starts = list(Effect.objects.filter(key=f"soak {account}").values_list("at", flat=True))
        assert len(starts) == len(throttled) // 2  # none lost, none twice
        # The starts as the worker times them; the job's first line runs a few ms after.
        assert most_in_a_window(starts, timedelta(seconds=1) - timedelta(milliseconds=25)) <= 5
    kept = [
        job.created_at
        for job in Job.objects.filter(pk__in=[job.pk for job in accepted]).exclude(
            status=JobStatus.CANCELLED
        )
    ]
    assert most_in_a_window(kept, timedelta(seconds=10)) <= 2 * 20 - 1
    assert len(kept) <= 20 + 20 * SECONDS / 10  # the burst, then the refill
