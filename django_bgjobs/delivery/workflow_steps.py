"""The steps of an Upstash Workflow run as delivery sends them (api/workflow_runs.py keeps the
runs): which messages are a run's steps, and the body a step is delivered with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django_bgjobs.delivery.models import Message

CALL_TYPE = "upstash-workflow-calltype"


def call_type(headers: Mapping[str, Any]) -> str:
    """``step`` (the trigger, a step, a sleep, a notified wait) or what the SDK named it."""
    for name, value in headers.items():
        if name.lower() == CALL_TYPE:
            return str(value[0] if isinstance(value, list) else value)
    return "step"


def body_sent(message: Message) -> bytes:
    """A run's step goes with an empty body: the app's SDK reads the steps from
    ``GET /v2/workflows/runs/{id}``, as from QStash. Any other message as it is."""
    if message.workflow_run_id and call_type(message.headers) == "step":
        return b""
    return bytes(message.body)
