"""One signed delivery attempt over HTTP (webhook-wire.md 1.5 and 2.3).

``deliver(attempt, signing_key=...)``:

* checks the URL and resolves its host once (``ssrf.check_url``), then connects to that
  address only: the request goes to ``scheme://<pinned IP>:port/...`` with the URL's own
  ``Host`` header, and for https the TLS server name (SNI) and certificate check use the URL's
  host name (httpcore's ``sni_hostname`` extension). No second lookup happens, so a DNS answer
  that changes after the check (rebinding) is never used;
* signs every attempt afresh: ``Upstash-Signature`` is a new JWT (``sub`` = the URL exactly as
  given, ``body`` = the hash of the bytes sent), with ``Upstash-Message-Id`` (the same on every
  retry), ``Upstash-Retried`` and ``User-Agent: Upstash-QStash``;
* never follows redirects: a 3xx is the response (a caller that follows one must check the
  new URL with ``check_url`` again), ignores proxy environment variables (a proxy would
  resolve the name itself), and times out;
* returns the status, the headers and the first ``max_body`` bytes of the body, undecoded
  (no decompression: a small gzip body cannot expand into a large one here).

``Refused`` (from ``ssrf``) is never worth retrying; ``DeliveryFailed`` (no response: DNS,
connection, timeout) is.
"""

from __future__ import annotations

import functools
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from django_bgjobs.delivery.ssrf import Allowlist, NotResolved, Refused, Resolver, check_url
from django_bgjobs.webhooks.sign import qstash_signature, standard_signature

MAX_BODY = 4096  # bytes of a response body kept
DEFAULT_TIMEOUT = 30.0  # seconds, for the whole attempt
USER_AGENT = "Upstash-QStash"
FORWARD_PREFIX = "upstash-forward-"

# Set by deliver() itself, or meaningless to forward (hop-by-hop, framing).
_RESERVED = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
    "te", "trailer", "proxy-connection", "proxy-authorization", "upstash-signature",
    "upstash-message-id", "upstash-retried", "webhook-id", "webhook-timestamp",
    "webhook-signature",
})
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class DeliveryFailed(Exception):
    """No response: the host did not resolve, the connection failed or the attempt timed out.
    Retryable."""


@dataclass(frozen=True)
class Attempt:
    url: str
    body: bytes
    message_id: str
    retried: int = 0  # Upstash-Retried: 0 on the first attempt
    method: str = "POST"
    # Sent as they are: Content-Type, the forwarded headers (see forwarded_headers()),
    # Upstash-Topic-Name, Upstash-Schedule-Id...
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, list[str]]  # lower-case names, values in order received
    body: bytes  # the first max_body bytes, as received (not decompressed)
    truncated: bool  # the body was longer (or stopped arriving before the deadline)
    address: str  # the IP connected to
    elapsed: float  # seconds

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def first_headers(self) -> dict[str, str]:
        return {name: values[0] for name, values in self.headers.items() if values}


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``Upstash-Forward-*`` headers of a publish request, prefix stripped."""
    return {name[len(FORWARD_PREFIX):]: value for name, value in headers.items()
            if name.lower().startswith(FORWARD_PREFIX) and len(name) > len(FORWARD_PREFIX)}


def _request_headers(attempt: Attempt, signed: Mapping[str, str],
                     host_header: str) -> dict[str, str]:
    headers: dict[str, str] = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    for name, value in attempt.headers.items():
        if not _TOKEN.match(name):
            raise Refused(f"header name {name!r} is not valid")
        if any(c in value for c in "\r\n\0"):
            raise Refused(f"header {name!r} contains a line break or NUL")
        if name.lower() in _RESERVED:
            continue
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value
    headers["Host"] = host_header
    headers.update(signed)
    headers["Upstash-Message-Id"] = attempt.message_id
    headers["Upstash-Retried"] = str(attempt.retried)
    return headers


def _signature_headers(attempt: Attempt, signing_key: str, standard_secret: str | None,
                       now: float) -> dict[str, str]:
    """Upstash-Signature, or the Standard Webhooks headers when a secret is given."""
    if standard_secret is None:
        return {"Upstash-Signature": qstash_signature(attempt.body, attempt.url, signing_key,
                                                      now)}
    timestamp = int(now)
    return {"webhook-id": attempt.message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_signature(attempt.body, attempt.message_id, timestamp,
                                                    standard_secret)}


def deliver(attempt: Attempt, *, signing_key: str, standard_secret: str | None = None,
            timeout: float = DEFAULT_TIMEOUT,
            max_body: int = MAX_BODY, allow: Allowlist | None = None,
            resolver: Resolver | None = None, now: float | None = None,
            verify: ssl.SSLContext | None = None,
            transport: httpx.BaseTransport | None = None) -> Response:
    """Send one attempt, signed with ``signing_key`` (QStash), or with ``standard_secret``
    (Standard Webhooks) when given. ``verify``: the TLS context (default: the system's CAs
    through certifi, made once per process). Raises ``Refused`` (do not retry) or
    ``DeliveryFailed`` (retry)."""
    if not _TOKEN.match(attempt.method):
        raise Refused(f"method {attempt.method!r} is not valid")
    try:
        target = check_url(attempt.url, allow=allow, resolver=resolver)
    except NotResolved as exc:
        raise DeliveryFailed(str(exc)) from None
    signed = _signature_headers(attempt, signing_key, standard_secret,
                                time.time() if now is None else now)
    headers = _request_headers(attempt, signed, target.host_header)
    url = httpx.URL(attempt.url).copy_with(scheme=target.scheme, host=target.address,
                                          port=target.port)
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    started = time.monotonic()
    deadline = started + timeout
    with httpx.Client(transport=transport, verify=verify or default_tls(), trust_env=False,
                      follow_redirects=False, timeout=httpx.Timeout(timeout)) as client:
        request = client.build_request(attempt.method.upper(), url, headers=headers,
                                       content=attempt.body, extensions=extensions)
        try:
            response = client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(f"timed out after {timeout:g} s ({type(exc).__name__})") \
                from None
        except httpx.TransportError as exc:
            raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from None
        try:
            body, truncated = _read_bounded(response, max_body, deadline)
        finally:
            response.close()
    received: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        received.setdefault(name.lower(), []).append(value)
    return Response(status=response.status_code, headers=received, body=body,
                    truncated=truncated, address=target.address,
                    elapsed=time.monotonic() - started)


@functools.cache
def default_tls() -> ssl.SSLContext:
    """One TLS context per process: making one reads certifi's CA bundle, about 19 ms of CPU,
    which per attempt was most of a delivery's cost (bench/delivery.py)."""
    return httpx.create_ssl_context()


def _read_bounded(response: httpx.Response, max_body: int,
                  deadline: float) -> tuple[bytes, bool]:
    """The first ``max_body`` bytes; a body that is longer, breaks off or is still arriving at
    the deadline is cut (the status is what counts; the body is only kept for display)."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_raw():
            chunks.append(chunk)
            size += len(chunk)
            if size > max_body or time.monotonic() > deadline:
                return b"".join(chunks)[:max_body], True
    except httpx.HTTPError:
        return b"".join(chunks)[:max_body], True
    return b"".join(chunks), False
