"""Retry delays: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before the next attempt, in seconds.

    After attempt ``n`` fails, the cap is ``min(max, base * factor ** (n - 1))``; with ``jitter``
    the delay is drawn uniformly from ``[0, cap]`` ("full jitter"), which spreads a burst of
    failures instead of retrying them in lockstep.
    """

    base: float = 2.0
    factor: float = 2.0
    max: float = 600.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.base < 0 or self.max < 0:
            raise ValueError("Backoff base and max must be >= 0 seconds")
        if self.factor < 1:
            raise ValueError("Backoff factor must be >= 1")

    @classmethod
    def from_setting(cls, value: Any) -> Backoff:
        if isinstance(value, Backoff):
            return value
        return cls(**value)

    def cap(self, attempt: int) -> float:
        exponent = max(attempt - 1, 0)
        # Avoid float overflow for absurd attempt counts: past the cap it no longer matters.
        if exponent > 64:
            return self.max
        return min(self.max, self.base * self.factor**exponent)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        cap = self.cap(attempt)
        if not self.jitter:
            return cap
        return (rng or random).uniform(0, cap)
