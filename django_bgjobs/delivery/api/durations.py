"""QStash durations: ``100s``, ``10m``, ``1d10h30m``, ``500ms``; a bare number is seconds
(the SDKs turn an int into ``"<n>s"``, but a hand-written ``Upstash-Delay: 60`` is clear)."""

from __future__ import annotations

import math
import re

from django_bgjobs.delivery.api.errors import InputError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Longer than any plan's maximum delay; large enough to be a mistake, small enough that
# datetime arithmetic cannot overflow.
MAX_SECONDS = 366 * 86400.0


class DurationError(InputError):
    pass


def parse_duration(value: str, *, maximum: float = MAX_SECONDS) -> float:
    """Seconds. Units in any order, each at most once; ``DurationError`` says what is wrong."""
    text = value.strip()
    if _NUMBER.fullmatch(text):
        seconds = float(text)
    else:
        seconds, seen, position = 0.0, set(), 0
        for part in _PART.finditer(text):
            if part.start() != position or part.group(2) in seen:
                break
            seen.add(part.group(2))
            seconds += float(part.group(1)) * _UNITS[part.group(2)]
            position = part.end()
        if not seen or position != len(text):
            raise DurationError(f"{value!r} is not a duration (like 30s, 10m, 1d10h30m)")
    if not math.isfinite(seconds) or seconds > maximum:
        raise DurationError(f"{value!r} is longer than {maximum:g} seconds")
    return seconds
