"""The destination of ``/v2/publish/{destination}``, as the caller wrote it.

The SDKs put it in the path unencoded, its own query string included:
``/v2/publish/https://example.com/hook?a=1&b=two%20words``. What reaches a Django view has
been through the WSGI/ASGI server: ``PATH_INFO`` is percent-decoded (``%20`` became a space,
``%2F`` a slash) and the query string is split off. A message must be delivered to (and
signed for, the JWT's ``sub``) the exact URL published, so it is rebuilt from the least
processed form the server gives:

1. the raw request target: gunicorn's ``RAW_URI``, uWSGI's ``REQUEST_URI``, ASGI's
   ``raw_path`` (exact: ``%2F`` survives);
2. otherwise the decoded path, re-quoted where a URL cannot hold a character as it is
   (spaces, non-ASCII), plus ``QUERY_STRING`` as it came (exact unless the destination
   held ``%2F`` or ``%25``, which no decoded form can tell apart).

Every query parameter belongs to the destination: QStash's ``?upstash-*`` configuration
parameters are not supported here, so nothing in the query string is ours (a
``qstash_token`` is refused before this runs). A proxy that merges slashes
(nginx ``merge_slashes``) turns ``https://`` into ``https:/``; that is repaired.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from django.http import HttpRequest

from django_bgjobs.delivery.api.errors import InputError

# Characters a URL path can carry as they are: unreserved, sub-delimiters, ":@/", and "%"
# (an escape that was decoded once already cannot be told from one that was not, so escapes
# are left alone). "?" and "#" in the decoded path were escaped (a real "?" starts the query
# string, which is not in the path), so they are escaped again.
_SAFE = "/:@!$&'()*+,;=-._~%[]"
_MERGED_SCHEME = re.compile(r"^(https?):/+(?=[^/])")
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._\-]{1,255}")
URL_SCHEMES = ("http://", "https://")


class DestinationError(InputError):
    pass


def _raw_target(request: HttpRequest) -> str | None:
    """The request target (path and query) as sent on the wire, if the server kept it."""
    for key in ("RAW_URI", "REQUEST_URI"):
        value = request.META.get(key)
        if isinstance(value, str) and value.startswith("/"):
            return value
    scope = getattr(request, "scope", None)  # ASGIRequest
    if isinstance(scope, dict):
        raw_path, query = scope.get("raw_path"), scope.get("query_string") or b""
        if isinstance(raw_path, bytes) and isinstance(query, bytes):
            target = raw_path.decode("latin-1")
            return target + ("?" + query.decode("latin-1") if query else "")
    return None


def _skip_segments(raw_path: str, count: int) -> str:
    """What follows the first ``count`` slashes of ``raw_path``."""
    position = 0
    for _ in range(count):
        position = raw_path.index("/", position) + 1
    return raw_path[position:]


def rebuild(request: HttpRequest, decoded: str) -> str:
    """The destination of this request. ``decoded`` is what the URL pattern captured from
    the decoded path (``<path:destination>``), always at the end of the path."""
    full_path = request.path  # SCRIPT_NAME + PATH_INFO, decoded
    before = full_path[: len(full_path) - len(decoded)]
    raw = _raw_target(request)
    destination: str | None = None
    if raw is not None:
        raw_path, _, raw_query = raw.partition("?")
        try:
            # Our own segments (the mount prefix, "v2/publish/", a queue name) hold no "/",
            # escaped or not, so the destination starts after as many slashes as they end in.
            tail = _skip_segments(raw_path, before.count("/"))
        except ValueError:
            tail = None
        if tail is not None:
            destination = tail + ("?" + raw_query if "?" in raw else "")
    if destination is None:
        query = request.META.get("QUERY_STRING", "")
        destination = quote(decoded, safe=_SAFE, encoding="utf-8") + ("?" + query if query else "")
    return _MERGED_SCHEME.sub(lambda m: m.group(1) + "://", destination, count=1)


def is_url(destination: str) -> bool:
    # Lower-case schemes only, as the engine decides (delivery.publish.is_url): "HTTPS://"
    # is refused with a clear message rather than taken for a URL group's name.
    return destination.startswith(URL_SCHEMES)


def check(destination: str) -> str:
    """The destination if it is an http(s) URL with a host or a URL group's name."""
    if not destination:
        raise DestinationError(
            "the destination is missing: put the URL or the URL group "
            "name after the path, e.g. /v2/publish/https://example.com/hook"
        )
    if is_url(destination):
        try:
            parts = urlsplit(destination)
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError as exc:
            raise DestinationError(f"invalid destination URL: {exc}") from None
        if not parts.hostname:
            raise DestinationError(f"invalid destination URL {destination!r}: no host")
        if any(ord(c) < 0x21 or c == "\x7f" for c in destination):
            raise DestinationError(
                "the destination URL holds spaces or control characters: "
                "percent-encode them (a space is %20)"
            )
        return destination
    if "://" in destination or not _TOPIC_NAME.fullmatch(destination):
        raise DestinationError(
            f"invalid destination {destination!r}: an http(s) URL or a URL group name "
            "(letters, digits, '.', '_', '-')"
        )
    return destination
