"""Sensitive arguments (``@bgjob(redact=("password", "token"))``) kept out of sight.

The values are stored in the job row (the worker needs them) but never shown: the admin masks
them, and error messages and tracebacks are scrubbed of them before they are stored or logged.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django_bgjobs.registry import JobSpec

MASK = "[redacted]"
# Shorter values are not scrubbed from error text: "1" or "on" would mask half the message.
MIN_SCRUBBED_LENGTH = 4


def _redacted_arguments(spec: JobSpec, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        bound = spec.signature.bind_partial(*args, **kwargs)
    except TypeError:  # stored arguments no longer fit the code: mask nothing by name
        return {}
    found = {name: value for name, value in bound.arguments.items() if name in spec.redact}
    for name, value in bound.arguments.items():  # **kwargs catch-alls
        if spec.signature.parameters[name].kind is spec.signature.parameters[name].VAR_KEYWORD:
            found.update({k: v for k, v in value.items() if k in spec.redact})
    return found


def masked_payload(
    spec: JobSpec | None, args: list[Any], kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """The arguments as they may be shown: redacted ones replaced by MASK."""
    if spec is None or not spec.redact:
        return args, kwargs
    hidden = _redacted_arguments(spec, args, kwargs)
    positional = list(spec.signature.parameters)
    shown_args = [
        MASK if index < len(positional) and positional[index] in hidden else value
        for index, value in enumerate(args)
    ]
    shown_kwargs = {key: MASK if key in hidden else value for key, value in kwargs.items()}
    return shown_args, shown_kwargs


def scrub(text: str, spec: JobSpec | None, args: list[Any], kwargs: dict[str, Any]) -> str:
    """``text`` with every redacted value (and its JSON and repr forms) replaced by MASK."""
    if spec is None or not spec.redact or not text:
        return text
    forms: set[str] = set()
    for value in _redacted_arguments(spec, args, kwargs).values():
        for form in (str(value), repr(value), json.dumps(value)):
            if len(form) >= MIN_SCRUBBED_LENGTH:
                forms.add(form)
    for form in sorted(forms, key=len, reverse=True):  # longest first: repr contains str
        text = text.replace(form, MASK)
    return text
