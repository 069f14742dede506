"""A publish request: the ``Publish`` value object (with its ``Callback`` and ``Flow``), its
JSON form, the ``Published`` result, and the checks a request must pass before anything is
written (``check_request``, raising ``PublishError``). Nothing here touches the database:
``publish.py`` writes the rows.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from django.utils import timezone

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.delivery import retry_delay
from django_bgjobs.delivery.limits import MAX_FLOW_PERIOD

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
MAX_RETRIES = 100


class PublishError(ValueError):
    """The publish request is not valid; the message says what to change."""


class RunEnded(PublishError):
    """A step published to an Upstash Workflow run that has ended (its SDK then stops)."""


class UnknownTopic(PublishError):
    """The destination names a URL group that does not exist."""


@dataclass(frozen=True)
class Callback:
    """Where to report a message's attempts (``callback``) or its failure
    (``failure_callback``): a signed delivery of its own, with QStash's callback body."""

    url: str
    method: str = "POST"
    retries: int = 3
    timeout: float | None = None
    delay: float | None = None
    retry_delay: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Flow:
    """A flow-control key: at most ``parallelism`` messages of the key in delivery and at most
    ``rate`` admitted per ``period`` seconds, across every worker."""

    key: str
    parallelism: int | None = None
    rate: int | None = None
    period: float = 1.0


@dataclass(frozen=True)
class Publish:
    """One publish request, as ``publish()`` and the QStash API make it."""

    destination: str  # a URL, or the name of a URL group
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)  # sent as they are
    method: str = "POST"
    retries: int = 3
    retry_delay: str | None = None  # milliseconds, an Upstash-Retry-Delay expression
    delay: float | None = None  # seconds
    not_before: datetime | None = None  # wins over delay
    timeout: float | None = None  # seconds per attempt
    deduplication_id: str | None = None
    content_based_deduplication: bool = False
    callback: Callback | None = None
    failure_callback: Callback | None = None
    queue: str | None = None
    flow: Flow | None = None
    label: str = ""  # comma-separated labels
    redact: tuple[str, ...] = ()  # redaction.py's fields
    signature: Literal["qstash", "standard"] = "qstash"
    caller_ip: str = ""
    schedule_id: str = ""
    workflow_run_id: str = ""  # a step of an Upstash Workflow run (api/workflow_runs.py)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["body"] = base64.b64encode(self.body).decode()
        data["headers"] = dict(self.headers)
        data["not_before"] = self.not_before.isoformat() if self.not_before else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Publish:
        values = dict(data)
        values["body"] = base64.b64decode(values.get("body") or "")
        if values.get("not_before"):
            values["not_before"] = datetime.fromisoformat(values["not_before"])
        values["redact"] = tuple(values.get("redact") or ())
        for name, kind in (("callback", Callback), ("failure_callback", Callback), ("flow", Flow)):
            if values.get(name) is not None:
                values[name] = kind(**values[name])
        return cls(**values)


@dataclass(frozen=True)
class Published:
    message_id: str
    url: str
    deduplicated: bool = False


def is_url(destination: str) -> bool:
    return destination.startswith(("http://", "https://"))


def check_destination_url(url: str) -> None:
    """The syntax a destination must have. Whether its address may be called is decided at
    each delivery (``ssrf.check_url``: DNS answers change), where a refusal is final."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise PublishError(f"destination {url!r} contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise PublishError(f"destination {url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PublishError(f"destination {url!r} is not an http(s) URL with a host")


def check_request(request: Publish) -> None:
    """Raise ``PublishError`` saying what to change if the request cannot be published."""
    if request.method.upper() not in METHODS:
        raise PublishError(f"method {request.method!r} is not one of {sorted(METHODS)}")
    for what, retries in (
        ("retries", request.retries),
        ("callback retries", request.callback and request.callback.retries),
        ("failure callback retries", request.failure_callback and request.failure_callback.retries),
    ):
        if retries is not None and not (isinstance(retries, int) and 0 <= retries <= MAX_RETRIES):
            raise PublishError(f"{what} must be an integer from 0 to {MAX_RETRIES}")
    for expression in (
        request.retry_delay,
        request.callback and request.callback.retry_delay,
        request.failure_callback and request.failure_callback.retry_delay,
    ):
        if expression:
            try:
                retry_delay.parse(expression)
            except retry_delay.RetryDelayError as exc:
                raise PublishError(f"retry delay {expression!r}: {exc}") from None
    limit = float(bgjobs_settings.DELIVERY_MAX_TIMEOUT)
    timings = [("delay", request.delay, None), ("timeout", request.timeout, limit)]
    for what, callback in (
        ("callback", request.callback),
        ("failure callback", request.failure_callback),
    ):
        if callback is not None:
            check_destination_url(callback.url)
            if callback.method.upper() not in METHODS:
                raise PublishError(
                    f"{what} method {callback.method!r} is not one of {sorted(METHODS)}"
                )
            timings += [
                (f"{what} delay", callback.delay, None),
                (f"{what} timeout", callback.timeout, limit),
            ]
    for what, seconds, most in timings:
        if seconds is not None and seconds < 0:
            raise PublishError(f"{what} must not be negative")
        if seconds is not None and most is not None and seconds > most:
            raise PublishError(
                f"{what} {seconds:g} s is over the {most:g} s an attempt may "
                "take (BGJOBS['DELIVERY_MAX_TIMEOUT'])"
            )
    if request.not_before is not None and timezone.is_naive(request.not_before):
        raise PublishError("not_before must be timezone-aware")
    if request.signature not in ("qstash", "standard"):
        raise PublishError("signature must be 'qstash' or 'standard'")
    flow = request.flow
    if flow is not None:
        if not flow.key or len(flow.key) > 255:
            raise PublishError("the flow-control key must be 1 to 255 characters")
        if flow.parallelism is not None and flow.parallelism < 1:
            raise PublishError("flow-control parallelism must be at least 1")
        if flow.rate is not None and flow.rate < 1:
            raise PublishError("flow-control rate must be at least 1")
        if not 0 < flow.period <= MAX_FLOW_PERIOD:
            raise PublishError("flow-control period must be more than 0 s and at most a week")
    if request.queue is not None and not 0 < len(request.queue) <= 255:
        raise PublishError("the queue name must be 1 to 255 characters")
