"""The event as a run gets it: the argument of its job and the result of a wait step that
matched it, ``{"id": ..., "name": ..., "data": {...}}``."""

from __future__ import annotations

from typing import Any


def run_event(name: str, data: dict[str, Any], event_id: Any = None) -> dict[str, Any]:
    """``event_id`` is the stored event's; None for an event handed to ``enqueue()`` or
    ``invoke``, which is not sent."""
    return {"id": None if event_id is None else str(event_id), "name": name, "data": data}
