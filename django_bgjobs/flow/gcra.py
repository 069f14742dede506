"""The generic cell rate algorithm (GCRA): a rate kept as one timestamp per key, the
"theoretical arrival time" (TAT) of the next event at the steady rate of one per ``interval``.
An event conforms when ``now >= TAT - tolerance``; ``burst`` events may come at once after a
quiet time (``tolerance = (burst - 1) * interval``). O(1) per event, no window to count."""

from __future__ import annotations

from datetime import datetime, timedelta


def next_start(
    tat: datetime | None, wanted: datetime, interval: timedelta, burst: int
) -> tuple[datetime, datetime]:
    """Throttle: when an event wanted at ``wanted`` may happen (then or later), and the new
    TAT. At most ``burst + n - 1`` events happen in any ``n`` intervals."""
    tat = tat or wanted
    start = max(wanted, tat - (burst - 1) * interval)
    return start, max(tat, start) + interval


def conforms(
    tat: datetime | None, now: datetime, interval: timedelta, burst: int
) -> tuple[bool, datetime | None]:
    """Rate limit: whether an event now conforms, and the new TAT (unchanged when it does not:
    a dropped event spends nothing)."""
    tat = tat or now
    if now < tat - (burst - 1) * interval:
        return False, tat
    return True, max(tat, now) + interval
