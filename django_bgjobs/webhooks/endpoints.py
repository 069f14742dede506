"""``BGJOBS["WEBHOOKS"]`` entries as objects, and verification of a request against one."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

from django_bgjobs import extensions
from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.webhooks.verify import (
    Headers,
    Verdict,
    verify_github,
    verify_qstash,
    verify_standard,
    verify_stripe,
)

SCHEMES = ("qstash", "standard", "stripe", "github")
# Default tolerance in seconds: QStash's leeway on exp/nbf; the others' timestamp window.
TOLERANCE = {"qstash": 30, "standard": 300, "stripe": 300, "github": 0}
# ``"secrets": "<name>"`` verifies with the keys a key source of that name gives at each request
# (extensions.register_key_source); django_bgjobs.delivery registers this one: this project's
# own delivery keys, for its qstash endpoints.
OWN_KEYS = "bgjobs"
# The headers kept on a receipt (signatures are not: they prove nothing once verified).
KEPT_HEADERS = (
    "Content-Type",
    "User-Agent",
    "Upstash-Message-Id",
    "Upstash-Retried",
    "Upstash-Topic-Name",
    "Upstash-Schedule-Id",
    "Upstash-Caller-Ip",
    "webhook-id",
    "webhook-timestamp",
    "svix-id",
    "svix-timestamp",
    "X-GitHub-Delivery",
    "X-GitHub-Event",
    "X-GitHub-Hook-ID",
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    scheme: str
    secrets: tuple[str, ...]
    job: str | None
    url: str | None
    tolerance: int
    max_body: int
    # The key source named by ``secrets`` (which is then empty), asked at each request so that
    # a rotation is seen at once.
    key_source: str | None = None

    def keys(self) -> tuple[str, ...]:
        if self.key_source is None:
            return self.secrets
        source = extensions.key_source(self.key_source)
        if source is None:  # unregistered since the endpoint was read (endpoint() checks it)
            raise ImproperlyConfigured(_unknown_source(self.name, self.key_source))
        return tuple(source.keys())

    def verify(self, body: bytes, headers: Headers, now: float | None = None) -> Verdict:
        moment = time.time() if now is None else now
        keys = self.keys()
        if self.scheme == "qstash":
            return verify_qstash(
                body, headers, keys=keys, url=self.url, now=moment, leeway=self.tolerance
            )
        if self.scheme == "standard":
            return verify_standard(
                body, headers, secrets=keys, now=moment, tolerance=self.tolerance
            )
        if self.scheme == "stripe":
            return verify_stripe(body, headers, secrets=keys, now=moment, tolerance=self.tolerance)
        return verify_github(body, headers, secrets=keys)


def _unknown_source(name: str, source: str) -> str:
    hint = (
        "add 'django_bgjobs.delivery' to INSTALLED_APPS (it provides this project's own "
        "delivery keys)"
        if source == OWN_KEYS
        else f"register it with extensions.register_key_source({source!r}, ...) from an "
        "AppConfig.ready()"
    )
    return (
        f"BGJOBS['WEBHOOKS'][{name!r}]['secrets'] = {source!r} names a key source no installed "
        f"app provides: {hint}, or give a list of keys"
    )


def _secrets(name: str, scheme: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) and value:
        source = extensions.key_source(value)
        if source is None:
            raise ImproperlyConfigured(_unknown_source(name, value))
        if source.scheme != scheme:
            raise ImproperlyConfigured(
                f"BGJOBS['WEBHOOKS'][{name!r}]['secrets'] = {value!r} ({source.description}) "
                f"goes with scheme {source.scheme!r}, not {scheme!r}"
            )
        return ()
    if (
        not isinstance(value, Sequence)
        or not value
        or not all(isinstance(s, str) and s for s in value)
    ):
        raise ImproperlyConfigured(
            f"BGJOBS['WEBHOOKS'][{name!r}]['secrets'] must be a non-empty list of strings "
            "(for QStash: the current signing key, then the next one; or "
            f"{OWN_KEYS!r} for this project's own delivery keys)"
        )
    return tuple(value)


def endpoint(name: str) -> Endpoint | None:
    """The endpoint called ``name``, or None if there is none. Raises ImproperlyConfigured
    for an entry that is wrong (the system check reports those at start-up)."""
    config = bgjobs_settings.WEBHOOKS.get(name)
    if config is None:
        return None
    scheme = config.get("scheme")
    if scheme not in SCHEMES:
        raise ImproperlyConfigured(
            f"BGJOBS['WEBHOOKS'][{name!r}]['scheme'] must be one of {SCHEMES}, not {scheme!r}"
        )
    unknown = set(config) - {"scheme", "secrets", "job", "url", "tolerance", "max_body"}
    if unknown:
        raise ImproperlyConfigured(
            f"BGJOBS['WEBHOOKS'][{name!r}] has unknown key(s) {sorted(unknown)}"
        )
    url = config.get("url")
    if scheme == "qstash" and not url:
        raise ImproperlyConfigured(
            f"BGJOBS['WEBHOOKS'][{name!r}] needs 'url': the public URL QStash delivers to "
            "(its token's sub is compared with it; build_absolute_uri() guesses wrong behind "
            "a proxy)"
        )
    return Endpoint(
        name=name,
        scheme=scheme,
        secrets=_secrets(name, scheme, config.get("secrets")),
        job=config.get("job"),
        url=url,
        tolerance=int(config.get("tolerance", TOLERANCE[scheme])),
        max_body=int(config.get("max_body", bgjobs_settings.WEBHOOK_MAX_BODY)),
        key_source=secrets if isinstance(secrets := config.get("secrets"), str) else None,
    )


def kept_headers(headers: Headers) -> dict[str, str]:
    lowered = {k.lower(): v for k, v in headers.items()}
    return {name: lowered[name.lower()] for name in KEPT_HEADERS if name.lower() in lowered}
