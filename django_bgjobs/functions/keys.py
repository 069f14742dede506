"""What a wait matches on: an event's top-level field and its JSON value, as one string
(``user_id=42``, ``email="a@b.c"``), so that matching an event to the runs waiting for it is one
indexed lookup."""

from __future__ import annotations

import json
from typing import Any

# Longer keys cannot be stored (the column's length): such a value cannot be matched on.
MAX_KEY = 255
# The key of a wait for any event of its name (``wait_for_event`` without ``match``).
ANY = ""


def wait_key(field: str, value: Any) -> str:
    return f"{field}={json.dumps(value, sort_keys=True, separators=(',', ':'))}"


def keys_of(data: dict[str, Any]) -> list[str]:
    """The keys an event with this payload matches: one per field, and ``ANY``."""
    keys = [wait_key(field, value) for field, value in data.items()]
    return [ANY, *(key for key in keys if len(key) <= MAX_KEY)]
