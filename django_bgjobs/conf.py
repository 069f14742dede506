"""One settings object over ``settings.BGJOBS``; nothing else in the package reads settings.

Reads are lazy and the cache is dropped on ``setting_changed``, so ``override_settings`` works.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings  # noqa: TID251 - the one place allowed to
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Queues that exist. @bgjob(queue=...) must name one; `bgjobs worker` consumes them all.
    "QUEUES": ["default"],
    "DEFAULT_QUEUE": "default",
    "MAX_ATTEMPTS": 4,
    # Seconds: delay before attempt n+1 = min(max, base * factor ** (n - 1)), full jitter on top.
    "BACKOFF": {"base": 2.0, "factor": 2.0, "max": 600.0, "jitter": True},
    # A running job owns its lease this long; the worker's heartbeat extends it.
    "LEASE_SECONDS": 30.0,
    # How often the dispatcher sweeps (due jobs, stranded jobs, expired leases).
    "DISPATCH_INTERVAL": 1.0,
    # A queued job published this long ago and still not started is published again
    # (the broker lost it: Redis flushed, a crash between commit and publish).
    "REPUBLISH_AFTER": 60.0,
    # How many rows one dispatcher pass handles per kind of work.
    "DISPATCH_BATCH": 500,
    # Where the dispatcher runs: "worker" starts it inside every Celery worker's main process;
    # "off" leaves it to `manage.py bgjobs dispatcher`.
    "DISPATCHER": "worker",
    "IDEMPOTENCY_WINDOW": timedelta(hours=24),
    # Dotted paths of jobs enqueued (with the user's pk) when a user signs up.
    "ON_SIGNUP": [],
    # Dotted path of the Celery app ("proj.celery:app"); None uses the current app.
    "CELERY_APP": None,
    # Finished jobs (and their attempts) are deleted this long after they finished, by status;
    # None keeps them. The built-in prune job runs on PRUNE_SCHEDULE (cron, UTC; None: never).
    "PRUNE": {
        "succeeded": timedelta(days=7),
        "cancelled": timedelta(days=7),
        "dead": timedelta(days=30),
    },
    "PRUNE_SCHEDULE": "17 * * * *",
    # Rows deleted per statement (each batch its own short transaction: no long table lock).
    "PRUNE_BATCH": 1000,
    # Inbound webhook endpoints, by name: {"scheme": "qstash" | "standard" | "stripe" |
    # "github", "secrets": [...] (QStash: current key, then next), "job": "app.jobs.handler"
    # (receives the receipt's id), "url": the public URL QStash signs for (QStash only),
    # "tolerance": seconds, "max_body": bytes}. See README "Webhooks in".
    "WEBHOOKS": {},
    # Bodies larger than this are refused (413) before any hashing (per endpoint: max_body).
    "WEBHOOK_MAX_BODY": 1024 * 1024,
    # Keep a record (without the body) of deliveries that failed verification.
    "WEBHOOK_STORE_REJECTED": False,
    # Outbound delivery refuses private, loopback, link-local, metadata... addresses. Hosts
    # (exact names) and networks (CIDRs, "127.0.0.0/8") listed here are delivered to anyway:
    # for tests and local development. See django_bgjobs/delivery/ssrf.py.
    "DELIVERY_ALLOW_HOSTS": [],
    # Outbound signing keys ({"current": "sig_…", "next": "sig_…"}) to start from; None draws
    # random ones on first use. After that they live in the database (`bgjobs rotate-keys`).
    "DELIVERY_SIGNING_KEYS": None,
    # How long after a rotation our own verifiers still accept the previous current key.
    "DELIVERY_KEY_OVERLAP": timedelta(hours=1),
    # A message published again with the same deduplication id (or content, with
    # content-based deduplication) within this window gets the first message's id.
    "DELIVERY_DEDUP_WINDOW": timedelta(minutes=10),
    # Response bytes kept on each delivery attempt.
    "DELIVERY_MAX_RESPONSE_BODY": 4096,
    # Seconds an attempt may take when the message sets no timeout, and the most a message
    # may set (an attempt holds a worker process that long).
    "DELIVERY_TIMEOUT": 30.0,
    "DELIVERY_MAX_TIMEOUT": 900.0,
    # The queue the delivery jobs run on (one of QUEUES); None: DEFAULT_QUEUE.
    "DELIVERY_JOB_QUEUE": None,
    # Errors and tracebacks kept on rows are cut to this many characters.
    "MAX_ERROR_LENGTH": 10_000,
    # Seconds a worker told to stop (SIGTERM: a warm shutdown) lets its running jobs finish;
    # then it gives the rest back to the queue (attempt recorded as `released`) and exits.
    # Below Kubernetes' default terminationGracePeriodSeconds (30), so the release happens
    # before the SIGKILL.
    "SHUTDOWN_GRACE": 25.0,
    # The Prometheus endpoint (django_bgjobs.metrics): a scraper sends
    # "Authorization: Bearer <METRICS_TOKEN>"; None accepts staff sessions only.
    "METRICS_TOKEN": None,
    # The run time and wait time histograms count the attempts of this recent window
    # (timedelta or seconds); workers count as seen if they ran one in METRICS_WORKERS_WINDOW.
    "METRICS_WINDOW": timedelta(hours=1),
    "METRICS_WORKERS_WINDOW": timedelta(minutes=5),
}


# Settings given as a timedelta or a number of seconds; read as a timedelta.
_DURATIONS = (
    "IDEMPOTENCY_WINDOW",
    "METRICS_WINDOW",
    "METRICS_WORKERS_WINDOW",
    "DELIVERY_KEY_OVERLAP",
    "DELIVERY_DEDUP_WINDOW",
)


class BgJobsSettings:
    """Attribute access to ``BGJOBS`` with defaults: ``bgjobs_settings.MAX_ATTEMPTS``."""

    def __init__(self) -> None:
        self._user: dict[str, Any] | None = None

    @property
    def user_settings(self) -> dict[str, Any]:
        if self._user is None:
            user = getattr(settings, "BGJOBS", {}) or {}
            unknown = sorted(set(user) - set(DEFAULTS))
            if unknown:
                raise ImproperlyConfigured(
                    f"Unknown BGJOBS setting(s): {', '.join(unknown)}. "
                    f"Known settings: {', '.join(sorted(DEFAULTS))}."
                )
            self._user = dict(user)
        return self._user

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid BGJOBS setting: {name!r}")
        value = self.user_settings.get(name, DEFAULTS[name])
        if name in ("BACKOFF", "PRUNE"):
            value = {**DEFAULTS[name], **value}
        if name in _DURATIONS and not isinstance(value, timedelta):
            value = timedelta(seconds=value)
        return value

    def reload(self) -> None:
        self._user = None


bgjobs_settings = BgJobsSettings()


def django_setting(name: str, default: Any = None) -> Any:
    """Read a Django setting that is not ours (CELERY_*, AUTH_USER_MODEL...)."""
    return getattr(settings, name, default)


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "BGJOBS":
        bgjobs_settings.reload()


setting_changed.connect(_reload)
