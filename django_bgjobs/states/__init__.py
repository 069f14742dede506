"""Every change of a job's status, each one a conditional UPDATE.

Nothing else writes ``Job.status``. The WHERE clause of each UPDATE is the fence: a worker
holding a stale message, or finishing after its lease was taken over, updates zero rows and
learns it lost. Signals are sent after the change is written. One module per who asks:
``attempts.py`` (the running attempt), ``sweeps.py`` (the dispatcher), ``requests.py``
(people and events), over ``base.py``.
"""

from django_bgjobs.states.attempts import (
    cancelled_while_running,
    claim,
    fail,
    heartbeat,
    release,
    report_progress,
    succeed,
    suspend,
)
from django_bgjobs.states.base import Claim, announce, announce_blocked, lease_until
from django_bgjobs.states.requests import cancel, cancel_many, retry, retry_many, wake
from django_bgjobs.states.sweeps import (
    admit,
    expire_leases,
    next_due,
    promote_due,
    reclaim_unpublished,
    ungate,
)

__all__ = [
    "Claim",
    "admit",
    "announce",
    "announce_blocked",
    "cancel",
    "cancel_many",
    "cancelled_while_running",
    "claim",
    "expire_leases",
    "fail",
    "heartbeat",
    "lease_until",
    "next_due",
    "promote_due",
    "reclaim_unpublished",
    "release",
    "report_progress",
    "retry",
    "retry_many",
    "succeed",
    "suspend",
    "ungate",
    "wake",
]
