"""Time-ordered UUIDs, so new job rows land at the end of the primary-key index."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import datetime

_lock = threading.Lock()
_last = 0  # the last id this process made


def uuid7() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, increasing within
    this process: an id made in the same millisecond as the one before (or after the clock
    stepped back) is that one plus one (RFC 9562's monotonic random). Jobs of one key go by
    priority, then id: the order they were enqueued in."""
    global _last
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 68) & 0xFFF) << 64  # rand_a
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)
    with _lock:
        if value <= _last:
            # The random bits count on from the last id's (74 of them: never full in one
            # millisecond).
            value = _last + 1
        _last = value
    return uuid.UUID(int=value)


def uuid7_bound(moment: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of ``moment``'s millisecond: rows made from then on have ids at or
    above it, so a time range is a primary-key range."""
    millis = int(moment.timestamp() * 1000)
    return uuid.UUID(int=((millis & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (0b10 << 62))
