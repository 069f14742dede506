"""``Upstash-Redact-Fields``: the parts of a message kept out of sight.

A redacted body or header is stored as sent (it is delivered as sent, and a DLQ retry sends
it again) but shown everywhere else as ``REDACTED:<sha256 of the value>``, as QStash shows it:
the message APIs, the DLQ, the logs, a callback's ``sourceBody`` and ``sourceHeader``, a
schedule's template, and the admin. The hash lets a user check a value they hold without
the API revealing it.

A message's fields are a list of ``"body"``, ``"header"`` (every header) and
``"header:<lowercased name>"``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from django_bgjobs.delivery.publish_request import PublishError

MARK = "REDACTED:"
_HEADER = re.compile(r"header\[([!#$%&'*+.^_`|~0-9A-Za-z-]+)\]", re.IGNORECASE)


def parse(value: str, name: str = "redact") -> list[str]:
    """``body,header[Authorization]`` (the SDKs' form) as the stored fields; ``name`` is what
    an error calls the value (the header, or ``publish()``'s option)."""
    fields: list[str] = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        if part.lower() in ("body", "header", "headers"):
            field = part.lower().rstrip("s")
        elif named := _HEADER.fullmatch(part):
            field = f"header:{named.group(1).lower()}"
        else:
            raise PublishError(f"{name}: {part!r} is not body, header or header[<name>]")
        if field not in fields:
            fields.append(field)
    return fields


def mark(value: bytes | str) -> str:
    data = value.encode() if isinstance(value, str) else value
    return MARK + hashlib.sha256(data).hexdigest()


def shown_body(fields: Sequence[str], body: bytes) -> bytes:
    return mark(body).encode() if "body" in fields else body


def shown_headers(fields: Sequence[str], headers: Mapping[str, Any]) -> dict[str, Any]:
    """The headers as they may be shown; a value that is a list has each item marked."""
    if not fields:
        return dict(headers)
    every = "header" in fields
    named = {f.partition(":")[2] for f in fields if f.startswith("header:")}
    return {
        name: (
            ([mark(str(v)) for v in value] if isinstance(value, list) else mark(str(value)))
            if every or name.lower() in named
            else value
        )
        for name, value in headers.items()
    }
