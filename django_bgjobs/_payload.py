"""Check that a job's arguments can be stored as JSON and come back as the same values."""

from __future__ import annotations

import inspect
import math
from typing import Any

from django_bgjobs.exceptions import PayloadError

_SCALARS = (str, int, float, bool, type(None))


def json_problem(value: Any, path: str) -> str | None:
    """Where in ``value`` something is not plain JSON, and what it is; None when all is well."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path} is {value!r}, which JSON cannot represent"
    if isinstance(value, str):
        return _text_problem(value, path)
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            if found := json_problem(item, f"{path}[{index}]"):
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has the key {key!r}; JSON object keys must be strings"
            if found := _text_problem(key, f"{path} key {key!r}"):
                return found
            if found := json_problem(item, f"{path}[{key!r}]"):
                return found
        return None
    kind = type(value).__name__
    hint = ""
    if hasattr(value, "_meta") and hasattr(value, "pk"):
        hint = " Pass model ids (obj.pk), not instances, and load them inside the job."
    elif hasattr(value, "isoformat"):
        hint = " Pass dates and times as ISO 8601 strings (value.isoformat())."
    elif isinstance(value, (set, frozenset)):
        hint = " Pass a list (sorted(value))."
    elif kind in ("Decimal", "UUID"):
        hint = " Pass it as a string (str(value))."
    return f"{path} is a {kind}, which is not JSON-serializable.{hint}"


def _text_problem(text: str, path: str) -> str | None:
    # PostgreSQL's jsonb refuses NUL characters, and lone surrogates are not valid UTF-8.
    if "\x00" in text:
        return f"{path} contains a NUL character (\\x00), which the database cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"{path} contains a lone surrogate, which is not valid Unicode text"
    return None


def validate_arguments(
    name: str, signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Raise PayloadError naming the argument that does not fit the function or is not JSON."""
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise PayloadError(f"{name}(): {exc}") from None
    for param, value in bound.arguments.items():
        if found := json_problem(value, f"argument {param!r}"):
            raise PayloadError(f"{name}(): {found}")
