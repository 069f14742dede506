"""``Upstash-*`` request headers -> the fields of a ``delivery.publish.Publish``.

Only the fields a header set are returned, so the same parser serves a publish (the rest
default) and a DLQ retry (the rest stay as the dead message had them). Every value is checked
here and a bad one is a ``HeaderError`` naming the header (400): a typo must not turn into a
silently different delivery.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from django_bgjobs.delivery import labels, publish_request, redaction, retry_delay
from django_bgjobs.delivery.api.destination import DestinationError, check, is_url
from django_bgjobs.delivery.api.durations import DurationError, parse_duration
from django_bgjobs.delivery.api.errors import WORKFLOW_STEP, InputError, NotOffered
from django_bgjobs.delivery.limits import MAX_FLOW_PERIOD, MAX_PARALLELISM, MAX_RATE
from django_bgjobs.delivery.publish_request import Callback, Flow

METHODS = publish_request.METHODS  # the engine's list: GET POST PUT PATCH DELETE HEAD OPTIONS
MAX_RETRIES = publish_request.MAX_RETRIES
MAX_TEXT = 200  # deduplication ids, labels, queue and flow-control names (the columns hold 255)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP header name (RFC 9110 token)
_NAME = re.compile(r"[A-Za-z0-9._\-]{1,200}")

# Never forwarded by Upstash-Header-Forward: true. Hop-by-hop headers describe our connection,
# not the message; Authorization is the caller's token for *this* API; Host, Content-Length
# and the proxy headers describe the request that reached us, not the one we will send;
# Cookie holds this site's cookies; Accept-Encoding and Expect are for the delivery client to
# choose (it decodes what it asks for).
NOT_FORWARDED = frozenset(
    {
        "authorization",
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "proxy-connection",
        "forwarded",
        "via",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-real-ip",
        "cookie",
        "accept-encoding",
        "expect",
    }
)


class HeaderError(InputError):
    """A header's value is not acceptable; the message names the header."""


class PublishFields(TypedDict, total=False):
    """The ``Publish`` fields the headers set (``destination``, ``body``, ``caller_ip`` and
    ``schedule_id`` come from elsewhere)."""

    headers: dict[str, str]
    method: str
    retries: int
    retry_delay: str
    delay: float
    not_before: datetime
    timeout: float
    deduplication_id: str
    content_based_deduplication: bool
    callback: Callback
    failure_callback: Callback
    queue: str
    flow: Flow
    label: str
    redact: tuple[str, ...]
    workflow_run_id: str


@dataclass
class _CallbackParts:
    """A callback as its headers are read: the URL, the ``Callback`` fields they set (the others
    keep ``Callback``'s defaults) and the headers to forward."""

    url: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def build(self) -> Callback | None:
        if self.url is None:
            return None  # its settings without a URL configure nothing
        return Callback(url=self.url, headers=self.headers, **self.settings)


def _items(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found = []
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, str):
            raise HeaderError(f"header {name!r}: names and values must be strings")
        found.append((name, value))
    return found


def _check_header(name: str, value: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise HeaderError(f"invalid header name {name!r}")
    if any(c in value for c in "\r\n\x00"):
        raise HeaderError(f"header {name}: the value holds a line break or NUL; remove it")


def _int(name: str, value: str, *, minimum: int = 0, maximum: int) -> int:
    text = value.strip()
    if not text.isdigit() or not minimum <= int(text) <= maximum:
        raise HeaderError(
            f"{name}: expected a whole number from {minimum} to {maximum}, got {value!r}"
        )
    return int(text)


def _duration(name: str, value: str, *, maximum: float | None = None) -> float:
    try:
        return parse_duration(value) if maximum is None else parse_duration(value, maximum=maximum)
    except DurationError as exc:
        raise HeaderError(f"{name}: {exc}") from None


def _method(name: str, value: str) -> str:
    method = value.strip().upper()
    if method not in METHODS:
        raise HeaderError(f"{name}: {value!r} is not one of {', '.join(sorted(METHODS))}")
    return method


def _retry_delay(name: str, value: str) -> str:
    try:
        retry_delay.parse(value)
    except retry_delay.RetryDelayError as exc:
        raise HeaderError(f"{name}: {exc}") from None
    return value.strip()


def _url(name: str, value: str) -> str:
    url = value.strip()
    if not is_url(url):
        raise HeaderError(f"{name}: {value!r} is not an http(s) URL")
    try:
        return check(url)
    except DestinationError as exc:
        raise HeaderError(f"{name}: {exc}") from None


def _bool(name: str, value: str) -> bool:
    text = value.strip().lower()  # the Python SDK sends True / False
    if text not in ("true", "false"):
        raise HeaderError(f"{name}: expected true or false, got {value!r}")
    return text == "true"


def _text(name: str, value: str, *, pattern: re.Pattern[str] | None = None) -> str:
    text = value.strip()
    if not text:
        raise HeaderError(f"{name}: the value is empty; leave the header out instead")
    if len(text) > MAX_TEXT:
        raise HeaderError(f"{name}: {len(text)} characters, at most {MAX_TEXT}")
    if pattern is not None and not pattern.fullmatch(text):
        raise HeaderError(
            f"{name}: {value!r} holds characters that are not allowed: "
            "letters, digits, '.', '_' and '-' only"
        )
    return text


def parse_flow_value(name: str, value: str) -> tuple[int | None, int | None, float]:
    """``parallelism=N, rate=N, period=<duration>`` (any order, "," or ", ")."""
    parallelism: int | None = None
    rate: int | None = None
    period = 1.0
    for part in value.split(","):
        key, sep, raw = part.strip().partition("=")
        key = key.strip().lower()
        if not sep or not raw.strip():
            raise HeaderError(f"{name}: expected key=value pairs, got {part.strip()!r}")
        if key == "parallelism":
            parallelism = _int(f"{name} {key}", raw, minimum=1, maximum=MAX_PARALLELISM)
        elif key == "rate":
            rate = _int(f"{name} {key}", raw, minimum=1, maximum=MAX_RATE)
        elif key == "period":
            period = _duration(name, raw, maximum=MAX_FLOW_PERIOD)
            if period <= 0:
                raise HeaderError(f"{name}: the period must be longer than 0")
        else:
            raise HeaderError(f"{name}: unknown setting {key!r} (parallelism, rate, period)")
    return parallelism, rate, period


def _callback_header(parts: _CallbackParts, display: str, suffix: str, value: str) -> None:
    """``Upstash-Callback-<suffix>``: a setting, ``Forward-<N>``, or (what the Python SDK's
    ``callback_headers`` sends) a bare header name to forward to the callback."""
    key = suffix.lower()
    if key == "retries":
        parts.settings["retries"] = _int(display, value, maximum=MAX_RETRIES)
    elif key == "timeout":
        parts.settings["timeout"] = _duration(display, value)
    elif key == "delay":
        parts.settings["delay"] = _duration(display, value)
    elif key == "method":
        parts.settings["method"] = _method(display, value)
    elif key == "retry-delay":
        parts.settings["retry_delay"] = _retry_delay(display, value)
    else:
        forwarded = suffix[len("forward-") :] if key.startswith("forward-") else suffix
        _check_header(forwarded, value)
        parts.headers[forwarded] = value


def parse(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> PublishFields:
    """The Publish fields set by these headers (any letter case)."""
    fields: PublishFields = {}
    forwarded: dict[str, str] = {}
    others: dict[str, str] = {}
    callback, failure = _CallbackParts(), _CallbackParts()
    flow_key: str | None = None
    flow_value: str | None = None
    forward_all = False
    for name, value in _items(headers):
        key = name.lower()
        if key == "content-type":
            _check_header("Content-Type", value)
            forwarded["Content-Type"] = value
        elif key.startswith("upstash-forward-"):
            target = name[len("upstash-forward-") :]
            _check_header(target, value)
            forwarded[target] = value
        elif key == "upstash-header-forward":
            forward_all = _bool(name, value)
        elif key == "upstash-method":
            fields["method"] = _method(name, value)
        elif key == "upstash-retries":
            fields["retries"] = _int(name, value, maximum=MAX_RETRIES)
        elif key == "upstash-retry-delay":
            fields["retry_delay"] = _retry_delay(name, value)
        elif key == "upstash-delay":
            fields["delay"] = _duration(name, value)
        elif key == "upstash-not-before":
            seconds = _int(name, value, maximum=253402300799)  # 9999-12-31
            fields["not_before"] = datetime.fromtimestamp(seconds, tz=UTC)
        elif key == "upstash-timeout":
            timeout = _duration(name, value)
            if timeout <= 0:
                raise HeaderError(f"{name}: the timeout must be longer than 0")
            fields["timeout"] = timeout
        elif key == "upstash-deduplication-id":
            fields["deduplication_id"] = _text(name, value)
        elif key == "upstash-content-based-deduplication":
            fields["content_based_deduplication"] = _bool(name, value)
        elif key == "upstash-callback":
            callback.url = _url(name, value)
        elif key == "upstash-failure-callback":
            failure.url = _url(name, value)
        elif key.startswith("upstash-callback-"):
            _callback_header(callback, name, name[len("upstash-callback-") :], value)
        elif key.startswith("upstash-failure-callback-"):
            _callback_header(failure, name, name[len("upstash-failure-callback-") :], value)
        elif key == "upstash-flow-control-key":
            flow_key = _text(name, value)
        elif key == "upstash-flow-control-value":
            flow_value = value
        elif key == "upstash-label":
            fields["label"] = labels.joined(_text(name, value))
        elif key == "upstash-redact-fields":
            fields["redact"] = tuple(redaction.parse(value, name))
        elif key == "upstash-queue-name":
            fields["queue"] = _text(name, value, pattern=_NAME)
        elif key == "upstash-workflow-invoke" or (
            key == "upstash-workflow-calltype" and value.strip() == "toCallback"
        ):
            raise NotOffered(WORKFLOW_STEP)  # context.invoke, context.call
        elif key.startswith("upstash-workflow-"):
            # An Upstash Workflow app's trigger or step: delivered to its endpoint with the
            # message, as QStash does (its SDK reads them); the run id ties the steps together.
            _check_header(name, value)
            forwarded[name] = value
            if key == "upstash-workflow-runid":
                fields["workflow_run_id"] = _text(name, value)
        elif key.startswith("upstash-") or key in NOT_FORWARDED:
            # Upstash-Telemetry-*, -Cron, -Schedule-Id (read by the schedules view),
            # and the like.
            continue
        else:
            others[name] = value
    if forward_all:
        for name, value in others.items():
            _check_header(name, value)
            forwarded.setdefault(name, value)
    if forwarded:
        fields["headers"] = forwarded
    if flow_value is not None and flow_key is None:
        raise HeaderError("Upstash-Flow-Control-Value needs Upstash-Flow-Control-Key")
    if flow_key is not None:
        parallelism, rate, period = (
            parse_flow_value("Upstash-Flow-Control-Value", flow_value)
            if flow_value is not None
            else (None, None, 1.0)
        )
        fields["flow"] = Flow(key=flow_key, parallelism=parallelism, rate=rate, period=period)
    if (built := callback.build()) is not None:
        fields["callback"] = built
    if (built := failure.build()) is not None:
        fields["failure_callback"] = built
    return fields
