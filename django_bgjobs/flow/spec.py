"""A job's flow control as the enqueue path and the admission use it (``FlowSpec``, made once
when the job is decorated), its key read from each call's arguments, and the gates by name.

A gate is what a limit is counted on: the job's name, or the ``name`` its options give (shared
by every job that gives it). A job's ``flow_key`` column holds ``<gate>`` or ``<gate> <key>``,
e.g. ``shop.jobs.sync_customer customer_id=42``; that string is also the primary key of the
gate's ``FlowKey`` row.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django_bgjobs.exceptions import JobConfigurationError, PayloadError
from django_bgjobs.flow.options import (
    Batch,
    Concurrency,
    Debounce,
    FlowOptions,
    KeySource,
    RateLimit,
    Singleton,
    Throttle,
    check_options,
)

MAX_FLOW_KEY = 255  # the column's length; a longer key is shortened with a hash

KeyReader = Callable[[tuple[Any, ...], dict[str, Any]], str]
# A call's (args, kwargs) -> the values a key names, when they are not its bound arguments.
ArgumentReader = Callable[[tuple[Any, ...], dict[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class FlowSpec:
    gate: str
    read_key: KeyReader = lambda args, kwargs: ""
    concurrency: int | None = None  # Singleton is a concurrency of 1
    throttle: Throttle | None = None
    rate_limit: RateLimit | None = None
    debounce: Debounce | None = None
    singleton: Singleton | None = None
    batch: Batch | None = None

    @property
    def gated(self) -> bool:
        """Whether its jobs wait for a free place (``blocked``) before each start."""
        return self.concurrency is not None

    @property
    def locks_at_enqueue(self) -> bool:
        """Whether an enqueue decides against the key's state (its row locked meanwhile)."""
        return any((self.throttle, self.rate_limit, self.debounce, self.singleton, self.batch))

    def flow_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        key = self.read_key(args, kwargs)
        whole = f"{self.gate} {key}" if key else self.gate
        if len(whole) <= MAX_FLOW_KEY:
            return whole
        digest = hashlib.sha256(whole.encode()).hexdigest()[:16]
        return f"{whole[: MAX_FLOW_KEY - 18]}…#{digest}"


_gates: dict[str, FlowSpec] = {}


def gate(name: str) -> FlowSpec | None:
    return _gates.get(name)


def gates() -> dict[str, FlowSpec]:
    return dict(_gates)


def flow_spec(
    options: FlowOptions,
    job_name: str,
    signature: inspect.Signature,
    where: str,
    arguments: ArgumentReader | None = None,
) -> FlowSpec | None:
    """The FlowSpec of a job's options (None without any), checked against its parameters.
    ``arguments`` maps a call to the values keys are read from (a durable function reads its
    event's fields); by default, the call bound to ``signature``."""
    if not options:
        return None
    check_options(options, where)
    first = next(iter(options.values()))
    names = [name for value in options.values() if (name := getattr(value, "name", None))]
    gate_name = names[0] if names else job_name
    if not gate_name or any(character.isspace() for character in gate_name):
        raise JobConfigurationError(
            f"{where}: flow control counts under {gate_name!r}, a name with spaces: give the "
            "limit (or the job) a name without spaces, e.g. 'crm-api'"
        )
    concurrency = options.get("concurrency")
    singleton = options.get("singleton")
    spec = FlowSpec(
        gate=gate_name,
        read_key=_key_reader(first.key, signature, where, arguments),  # type: ignore[attr-defined]
        concurrency=concurrency.limit
        if isinstance(concurrency, Concurrency)
        else (1 if singleton is not None else None),
        throttle=options.get("throttle"),
        rate_limit=options.get("rate_limit"),
        debounce=options.get("debounce"),
        singleton=singleton,
        batch=_checked_batch(options.get("batch"), signature, where),
    )
    known = _gates.get(gate_name)
    if known is not None and gate_name != job_name and known.concurrency != spec.concurrency:
        raise JobConfigurationError(
            f"{where}: the limit {gate_name!r} is declared twice with different concurrency "
            f"({known.concurrency} and {spec.concurrency}): declare it once, and share it"
        )
    _gates[gate_name] = spec
    return spec


def _checked_batch(batch: Batch | None, signature: inspect.Signature, where: str) -> Batch | None:
    if batch is None:
        return None
    if batch.into not in signature.parameters:
        raise JobConfigurationError(
            f"{where}: Batch(into={batch.into!r}) names no parameter; the list parameter the "
            f"calls' items are gathered in is one of {', '.join(signature.parameters) or 'none'}"
        )
    # A batch's arguments are kept by name: *args, **kwargs and positional-only ones cannot be.
    odd = [p.name for p in signature.parameters.values() if p.kind not in _BY_NAME]
    if odd:
        raise JobConfigurationError(
            f"{where}: a batched job's parameters are passed by name; {', '.join(odd)} cannot be"
        )
    return batch


_BY_NAME = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _key_reader(
    source: KeySource,
    signature: inspect.Signature,
    where: str,
    arguments: ArgumentReader | None,
) -> KeyReader:
    if source is None:
        return lambda args, kwargs: ""
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    named = set(signature.parameters)

    def bound(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
        if arguments is not None:
            return arguments(args, kwargs)
        call = signature.bind(*args, **kwargs)
        call.apply_defaults()
        return call.arguments

    if isinstance(source, str):
        head, *path = source.split(".")
        if not head or (head not in named and not takes_any):
            raise JobConfigurationError(
                f"{where}: the flow-control key {source!r} names no parameter; its parameters "
                f"are {', '.join(sorted(named)) or 'none'}"
            )

        def read_path(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
            value: Any = bound(args, kwargs).get(head)
            for part in path:
                value = (
                    value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
                )
            return f"{source}={_spell(value, source)}"

        return read_path
    if not callable(source):
        raise JobConfigurationError(
            f"{where}: a flow-control key is an argument's name or a function, not {source!r}"
        )
    wanted = [
        p.name
        for p in inspect.signature(source).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    missing = [name for name in wanted if name not in named and not takes_any]
    if missing:
        raise JobConfigurationError(
            f"{where}: the flow-control key {getattr(source, '__name__', source)!r} takes "
            f"{', '.join(missing)}, which the job does not"
        )

    def read_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        given = bound(args, kwargs)
        value = source(**{name: given.get(name) for name in wanted})
        return f"={_spell(value, getattr(source, '__name__', 'key'))}"

    return read_call


def _spell(value: Any, source: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        raise PayloadError(
            f"the flow-control key {source} is {value!r}, which is not a JSON value"
        ) from None
