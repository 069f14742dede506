"""Typed events, and sending them: ``@event("user/signed_up") class SignedUp(Event): user_id: int``,
then ``SignedUp(user_id=1).send()``.

An event class is a frozen, keyword-only dataclass whose fields hold JSON values (``int``,
``float``, ``str``, ``bool``, ``None``, ``list[...]``, ``dict[str, ...]``, ``Literal``, unions
of these, ``Any``). The types are checked when the class is declared, and the values when an
event is made, so a payload that does not fit is refused at ``send()`` by an error that names
the field, never later in a worker.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from django.db import router, transaction
from django.utils import timezone

from django_bgjobs._payload import json_problem
from django_bgjobs.exceptions import JobConfigurationError, PayloadError
from django_bgjobs.functions.argument import run_event

if TYPE_CHECKING:
    from django_bgjobs.models import EventRecord

E = TypeVar("E", bound="Event")

_types: dict[str, type[Event]] = {}


@typing.dataclass_transform(kw_only_default=True, frozen_default=True)
class Event:
    """The base of typed events. Subclasses are frozen, keyword-only dataclasses; name one with
    ``@event("area/what_happened")`` to send it."""

    event_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(frozen=True, kw_only=True)(cls)

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            problem = _mismatch(getattr(self, field.name), hints[field.name])
            if problem:
                where = f"{type(self).__name__}.{field.name}"
                raise PayloadError(f"{where}{'' if problem.startswith('[') else ' '}{problem}")
        # Any, list and dict fields hold anything the types allow: what JSON cannot store is
        # refused here, not by the INSERT inside the caller's transaction.
        if not_json := json_problem(self.payload(), type(self).__name__):
            raise PayloadError(not_json)

    def payload(self) -> dict[str, Any]:
        """The fields as the JSON object stored and given to listeners."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_payload(cls: type[E], data: Mapping[str, Any]) -> E:
        """The event a stored payload describes; PayloadError names a missing or unknown field."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise PayloadError(f"{cls.__name__} has no field {', '.join(map(repr, unknown))}")
        try:
            return cls(**data)
        except TypeError as exc:  # a required field is missing
            raise PayloadError(f"{cls.__name__}: {exc}") from None

    def send(self, *, using: str | None = None) -> EventRecord:
        """Store this event in the current transaction and start a run of every function that
        listens to it; once the transaction commits, wake the runs waiting for it and cancel
        those it cancels. A rolled-back transaction sends nothing."""
        return send_events([self], using=using)[0]


def event(name: str) -> Callable[[type[E]], type[E]]:
    """Name an event class: ``@event("user/signed_up")``. The name is what is stored and what
    functions listen to; it must be unique in the project."""
    if not isinstance(name, str) or not name or len(name) > 255:
        raise JobConfigurationError(f"@event needs a name of 1 to 255 characters, not {name!r}")

    def decorate(cls: type[E]) -> type[E]:
        if not (isinstance(cls, type) and issubclass(cls, Event)):
            raise JobConfigurationError(f"@event({name!r}) decorates subclasses of Event")
        known = _types.get(name)
        if known is not None and _origin(known) != _origin(cls):
            raise JobConfigurationError(
                f"Two events are named {name!r}: {_origin(known)} and {_origin(cls)}"
            )
        for field_name, hint in _hints(cls).items():
            if problem := _unsupported(hint):
                raise JobConfigurationError(
                    f"Event {cls.__name__}.{field_name}: {problem}. Fields hold JSON values: "
                    "int, float, str, bool, None, list[...], dict[str, ...], Literal, Any."
                )
        cls.event_name = name
        _types[name] = cls
        return cls

    return decorate


def send_events(events: Sequence[Event], using: str | None = None) -> list[EventRecord]:
    """``Event.send()`` for several events: their rows and their listeners' runs, in the current
    transaction (on PostgreSQL one statement); delivered to waiting runs once it commits."""
    from django_bgjobs.functions import specs
    from django_bgjobs.functions.matching import deliver_events
    from django_bgjobs.functions.runs import start_runs
    from django_bgjobs.models import EventRecord

    for sent in events:
        if not isinstance(sent, Event):
            raise PayloadError(f"send_event() takes Event instances, not {sent!r}")
    using = using or router.db_for_write(EventRecord)
    now = timezone.now()
    records = [
        EventRecord(name=name_of(type(sent)), data=sent.payload(), created_at=now)
        for sent in events
    ]
    # No savepoint inside the caller's transaction (two round trips): the rows are written in
    # it, all or nothing with it; outside one, atomic() makes the transaction.
    with transaction.atomic(using=using, savepoint=False):
        start_runs(
            [
                (spec, event_argument(record))
                for record in records
                for spec in specs.listening_to(record.name)
            ],
            along=records,
        )
        ids = [record.pk for record in records]
        transaction.on_commit(lambda: deliver_events(ids), using=using, robust=True)
    return records


def event_argument(source: Event | EventRecord) -> dict[str, Any]:
    """The event as a run's argument (``run_event``), from an event or its stored row."""
    if isinstance(source, Event):
        return run_event(name_of(type(source)), source.payload())
    return run_event(source.name, source.data, source.pk)


def event_type(name: str) -> type[Event] | None:
    return _types.get(name)


def name_of(event_class: type[Event]) -> str:
    """The name ``@event`` gave this class; an error that says to give one."""
    if not event_class.event_name:
        raise JobConfigurationError(
            f"{event_class.__name__} has no name: decorate it with @event('area/what_happened')"
        )
    return event_class.event_name


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_field_types: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The type of each field (resolved once per class: every event made checks its values)."""
    if cls not in _field_types:
        names = {f.name for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls).items()
        _field_types[cls] = {name: hint for name, hint in hints if name in names}
    return _field_types[cls]


def _unsupported(hint: Any) -> str:
    """Why ``hint`` is not a JSON type; empty when it is."""
    origin, args = get_origin(hint), get_args(hint)
    if hint in (int, float, str, bool, type(None), Any, list, dict):
        return ""
    if origin in (Union, types.UnionType, list):
        return next((p for p in map(_unsupported, args) if p), "")
    if origin is dict:
        if args and args[0] is not str:
            return "dict keys must be str (JSON object keys are strings)"
        return _unsupported(args[1]) if args else ""
    if origin is Literal:
        return ""
    return f"{hint!r} is not a JSON type"


def _mismatch(value: Any, hint: Any) -> str:
    """Why ``value`` does not fit ``hint``; empty when it does."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return ""
    if origin in (Union, types.UnionType):
        if any(not _mismatch(value, arg) for arg in args):
            return ""
        return f"must be {_spell(hint)}, not {type(value).__name__} {value!r}"
    if origin is Literal:
        return "" if value in args else f"must be one of {list(args)!r}, not {value!r}"
    if hint is type(None):
        return "" if value is None else f"must be None, not {value!r}"
    if hint is float:
        fits = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is int:
        fits = isinstance(value, int) and not isinstance(value, bool)
    elif hint in (str, bool):
        fits = isinstance(value, hint)
    elif hint is list or origin is list:
        if not isinstance(value, list):
            return f"must be a list, not {type(value).__name__} {value!r}"
        for index, item in enumerate(value):
            if args and (problem := _mismatch(item, args[0])):
                return f"[{index}] {problem}"
        return ""
    elif hint is dict or origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return f"must be a dict with str keys, not {value!r}"
        for key, item in value.items():
            if args and (problem := _mismatch(item, args[1])):
                return f"[{key!r}] {problem}"
        return ""
    else:
        return ""
    return "" if fits else f"must be {_spell(hint)}, not {type(value).__name__} {value!r}"


def _spell(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
