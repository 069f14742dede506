"""Due times are honoured: a worker with the default DISPATCH_INTERVAL (1 s) delivers each retry
after its ``retry_delay`` (a constant, an expression, and one shorter than the interval) and
opens a flow-control key's rate window when it ends, measured at a local receiver.

The resolution (docs/howto/qstash-api.md, "When messages start"): the dispatcher sleeps until
the earliest due time it knows, at least 50 ms at a time, so a due time is met within about
0.1 s on an idle machine. These tests allow LATE seconds, for a loaded CI machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from django_bgjobs.delivery.models import Message
from django_bgjobs.delivery.publish import Flow, publish
from tests.conftest import WorkerProcess
from tests.http_receiver import Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

LATE = 0.4  # seconds a start may come after its due time here (see the docstring)
EARLY = 0.02  # clocks: the receiver's and the worker's


@pytest.fixture
def default_worker(no_session_worker: None) -> Iterator[WorkerProcess]:
    """A worker whose dispatcher has the default interval (the session's has 0.2 s)."""
    proc = WorkerProcess(
        str(connection.settings_dict["NAME"]),
        Path(settings.STATE_DIR) / "timing-worker.log",
        env={"BGJOBS_TEST_DISPATCH_INTERVAL": "1.0"},
    )
    proc.start()
    yield proc
    proc.stop()


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in zip(times, times[1:], strict=False)]


def within(measured: list[float], expected: list[float]) -> bool:
    return len(measured) == len(expected) and all(
        want - EARLY <= got <= want + LATE for got, want in zip(measured, expected, strict=True)
    )


@pytest.mark.parametrize(
    "retry_delay, expected",
    [
        ("1000", [1.0, 1.0, 1.0]),
        ("pow(2, retried) * 1000", [1.0, 2.0, 4.0]),
        ("300", [0.3, 0.3, 0.3]),  # shorter than the interval: the worker wakes its dispatcher
    ],
    ids=["constant", "exponential", "shorter than the interval"],
)
def test_retries_start_when_their_delay_says(
    default_worker, receiver: Receiver, retry_delay: str, expected: list[float]
):
    receiver.answer("/flaky", *[(500, {}, b"no")] * 4)
    publish(receiver.url("/flaky"), body="x", retries=3, retry_delay=retry_delay)
    measured = gaps([hit.at for hit in receiver.wait("/flaky", 4, timeout=30)])
    assert within(measured, expected), measured


def test_a_rate_window_opens_when_it_ends(default_worker, receiver: Receiver):
    """The rate counts admissions (a message let through to its delivery): two per 2 s."""
    for n in range(6):
        publish(receiver.url("/rated"), body=str(n), flow_control=Flow("timed", rate=2, period=2))
    receiver.wait("/rated", 6, timeout=30)
    admitted = sorted(
        moment.timestamp() for moment in Message.objects.values_list("admitted_at", flat=True)
    )
    measured = gaps([admitted[0], admitted[2], admitted[4]])  # each window's first
    assert within(measured, [2.0, 2.0]), [round(t - admitted[0], 2) for t in admitted]
