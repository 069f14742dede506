"""What a user declares on a job or a durable function to control its flow:

    @bgjob(concurrency=Concurrency(limit=1, key="customer_id"))
    @bgjob(throttle=Throttle(limit=10, period=timedelta(seconds=1), key="account_id"))
    @bgjob(rate_limit=RateLimit(limit=100, period=timedelta(minutes=1), key="ip"))
    @bgjob(debounce=Debounce(period=timedelta(seconds=5), key="doc_id"))
    @bgjob(singleton=Singleton(key="tenant_id", mode="cancel_running"))
    @bgjob(batch=Batch(max_size=100, timeout=timedelta(seconds=5), key="tenant_id", into="events"))

A ``key`` is an argument's name (``"customer_id"``), a path into one (``"order.customer_id"``:
a dict's item or an object's attribute), a function of some of the arguments (called with them
by name), or None: one key for every call. Each value of the key is limited on its own. A
``name`` shares a limit between jobs: every job that names ``"crm-api"`` counts against the
same limit, per key value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypedDict

from django_bgjobs.exceptions import JobConfigurationError

KeySource = str | Callable[..., Any] | None


@dataclass(frozen=True)
class Concurrency:
    """At most ``limit`` jobs of each key value queued or running at once, across every worker.
    The others wait (``blocked``) in the database, by priority then age, and are let through
    as the ones running finish, fail or are cancelled."""

    limit: int
    key: KeySource = None
    name: str | None = None


@dataclass(frozen=True)
class Throttle:
    """At most ``limit`` starts per ``period`` for each key value: enqueues over it are kept
    and start later, spread evenly (one every ``period / limit``). ``burst`` lets that many
    start at once after a quiet time; then at most ``limit + burst - 1`` start in any window
    of ``period``."""

    limit: int
    period: timedelta
    key: KeySource = None
    burst: int = 1
    name: str | None = None


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` enqueues per ``period`` for each key value are kept: the others are
    dropped (stored as ``cancelled``, with the reason, and never run). It allows ``limit`` at
    once, refilling at ``limit`` per ``period``: at most ``2 * limit - 1`` in any window of
    ``period``, and ``limit`` per ``period`` over time."""

    limit: int
    period: timedelta
    key: KeySource = None
    name: str | None = None


@dataclass(frozen=True)
class Debounce:
    """Run once the calls for a key value stop for ``period``: a call while one is waiting
    replaces its arguments and pushes its start back, but never past ``max_wait`` after the
    first of them."""

    period: timedelta
    key: KeySource = None
    max_wait: timedelta | None = None


@dataclass(frozen=True)
class Singleton:
    """One job of each key value at a time. ``mode="skip"``: a call while one is unfinished
    returns that job and adds none; ``"cancel_running"``: the unfinished one is cancelled (a
    running one is asked to stop) and the new one starts once it has."""

    key: KeySource = None
    mode: Literal["skip", "cancel_running"] = "skip"
    name: str | None = None


@dataclass(frozen=True)
class Batch:
    """Gather the calls of each key value into one job: the list argument named ``into`` of
    every call joins one list, and the job runs once ``max_size`` items are in it, or
    ``timeout`` after its first call, whichever comes first. ``send_digest.enqueue(tenant_id=1,
    events=[...])`` adds to the open batch of tenant 1 (a new one once it is full)."""

    max_size: int
    timeout: timedelta
    into: str
    key: KeySource = None


class FlowOptions(TypedDict, total=False):
    """The flow-control keywords of ``@bgjob`` and ``@function``."""

    concurrency: Concurrency
    throttle: Throttle
    rate_limit: RateLimit
    debounce: Debounce
    singleton: Singleton
    batch: Batch


_KINDS: dict[str, type] = {
    "concurrency": Concurrency,
    "throttle": Throttle,
    "rate_limit": RateLimit,
    "debounce": Debounce,
    "singleton": Singleton,
    "batch": Batch,
}


def check_options(options: FlowOptions, where: str) -> None:
    """Refuse what cannot work, naming the job and the option."""
    for option, value in options.items():
        kind = _KINDS.get(option)
        if kind is None:
            raise JobConfigurationError(f"{where}: no flow-control option is named {option!r}")
        if not isinstance(value, kind):
            raise JobConfigurationError(
                f"{where}: {option}= takes a {kind.__name__}(...), not {value!r}"
            )
        for count in ("limit", "burst", "max_size"):
            number = getattr(value, count, 1)
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise JobConfigurationError(
                    f"{where}: {kind.__name__}.{count} must be an integer >= 1, not {number!r}"
                )
        for span in ("period", "max_wait", "timeout"):
            length = getattr(value, span, None)
            if length is not None and (not isinstance(length, timedelta) or length <= timedelta(0)):
                raise JobConfigurationError(
                    f"{where}: {kind.__name__}.{span} must be a positive timedelta, not {length!r}"
                )
        if isinstance(value, Singleton) and value.mode not in ("skip", "cancel_running"):
            raise JobConfigurationError(
                f"{where}: Singleton.mode is 'skip' or 'cancel_running', not {value.mode!r}"
            )
    keys: dict[str, KeySource] = {option: value.key for option, value in options.items()}  # type: ignore[attr-defined]
    if len({_identity(key) for key in keys.values()}) > 1:
        raise JobConfigurationError(
            f"{where}: its flow-control options have different keys ({_spell(keys)}): give "
            "them the same key (each job has one key, limited by every option)"
        )
    names = {getattr(value, "name", None) for value in options.values()} - {None}
    if len(names) > 1:
        raise JobConfigurationError(
            f"{where}: its flow-control options name different limits "
            f"({', '.join(sorted(map(str, names)))}): give them one name"
        )
    if "singleton" in options and "concurrency" in options:
        raise JobConfigurationError(
            f"{where}: Singleton is a concurrency of 1 per key: give one of the two"
        )
    if "batch" in options and {"debounce", "singleton"} & set(options):
        raise JobConfigurationError(
            f"{where}: Batch gathers the calls of a key into one job: it does not go with "
            "Debounce or Singleton"
        )
    if "debounce" in options and "singleton" in options:
        raise JobConfigurationError(
            f"{where}: Debounce already keeps one waiting job per key: drop Singleton"
        )


def _identity(key: KeySource) -> object:
    return key if isinstance(key, str) or key is None else id(key)


def _spell(keys: dict[str, KeySource]) -> str:
    return ", ".join(
        f"{option}: {key!r}" if not callable(key) else f"{option}: {key.__name__}"
        for option, key in keys.items()
    )
