"""One settings object over ``settings.BGJOBS``; nothing else in the package reads settings.

Reads are lazy and the cache is dropped on ``setting_changed``, so ``override_settings`` works.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from importlib import import_module
from typing import Any, Generic, TypeVar, overload

from django.conf import settings  # noqa: TID251 - the one place allowed to
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

T = TypeVar("T")


class Setting(Generic[T]):
    """One key of ``BGJOBS``: its default, and how a given value is read (``parse``). Read
    through the settings object, typed: ``bgjobs_settings.LEASE_SECONDS`` is a float."""

    def __init__(self, default: T, parse: Callable[[Any], T] | None = None) -> None:
        self.default = default
        self.parse = parse
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Setting[T]: ...
    @overload
    def __get__(self, obj: BgJobsSettings, owner: type) -> T: ...
    def __get__(self, obj: BgJobsSettings | None, owner: type) -> Setting[T] | T:
        if obj is None:
            return self
        given = obj.user_settings.get(self.name, self.default)
        return self.parse(given) if self.parse is not None else given


def _duration(value: timedelta | float) -> timedelta:
    """A timedelta, or a number of seconds."""
    return value if isinstance(value, timedelta) else timedelta(seconds=value)


def _merged(defaults: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A dict setting whose given keys replace the defaults' and leave the others."""

    def merge(given: dict[str, Any]) -> dict[str, Any]:
        return {**defaults, **given}

    return merge


_BACKOFF = {"base": 2.0, "factor": 2.0, "max": 600.0, "jitter": True}
_PRUNE: dict[str, timedelta | float | None] = {
    "succeeded": timedelta(days=7),
    "cancelled": timedelta(days=7),
    "dead": timedelta(days=30),
}


class BgJobsSettings:
    """``settings.BGJOBS`` as typed attributes with defaults: ``bgjobs_settings.MAX_ATTEMPTS``.
    Every key is optional; a key this class does not know is refused (ImproperlyConfigured)."""

    QUEUES: Setting[list[str]] = Setting(["default"])
    """Queues that exist. ``@bgjob(queue=...)`` must name one; ``bgjobs worker`` consumes them
    all."""
    DEFAULT_QUEUE: Setting[str] = Setting("default")
    """The queue of a job that names none."""
    MAX_ATTEMPTS: Setting[int] = Setting(4)
    """Attempts of a job that sets no ``max_attempts``."""
    BACKOFF: Setting[dict[str, Any]] = Setting(_BACKOFF, _merged(_BACKOFF))
    """Seconds: the delay before attempt n+1 is ``min(max, base * factor ** (n - 1))``, with
    full jitter on top. Keys given replace the defaults' (``{"max": 60}``)."""
    LEASE_SECONDS: Setting[float] = Setting(30.0)
    """A running job owns its lease this long; the worker's heartbeat extends it. A worker that
    vanished has its jobs taken back once the lease expires."""
    DISPATCH_INTERVAL: Setting[float] = Setting(1.0)
    """Seconds between the dispatcher's passes (due jobs, stranded jobs, expired leases), at
    most: it wakes sooner when a waiting job (a delay, a retry, a durable function's sleep) or
    a delivery's rate window is due sooner, within about 50 ms. A job due sooner than this,
    written while it sleeps, may start up to this late, unless it is a retry recorded by the
    same worker (which wakes it)."""
    REPUBLISH_AFTER: Setting[float] = Setting(60.0)
    """A queued job published this long ago (seconds) and still not started is published again:
    the broker lost it (Redis flushed, a crash between commit and publish)."""
    PUBLISH_IN_BACKGROUND: Setting[bool] = Setting(True)
    """An enqueue outside a Celery worker returns once its row is committed; its message is
    sent by a thread of the process. False sends it inside the call (needed under uWSGI
    without ``--enable-threads``, where threads do not run)."""
    DISPATCH_BATCH: Setting[int] = Setting(500)
    """Rows one dispatcher pass handles per kind of work."""
    DISPATCHER: Setting[str] = Setting("worker")
    """``"worker"`` runs the dispatcher inside every Celery worker's main process; ``"off"``
    leaves it to ``manage.py bgjobs dispatcher``."""
    IDEMPOTENCY_WINDOW: Setting[timedelta] = Setting(timedelta(hours=24), _duration)
    """How long an idempotency key keeps a second enqueue from making a second job (timedelta
    or seconds)."""
    ON_SIGNUP: Setting[list[str]] = Setting([])
    """Dotted paths of jobs enqueued, with the user's primary key, when a user signs up."""
    CELERY_APP: Setting[str | None] = Setting(None)
    """Dotted path of the Celery app (``"proj.celery:app"``); None uses the current app."""
    PRUNE: Setting[dict[str, timedelta | float | None]] = Setting(_PRUNE, _merged(_PRUNE))
    """How long finished jobs (and their attempts) are kept, by status (timedelta or seconds);
    None keeps them. Keys given replace the defaults'."""
    PRUNE_SCHEDULE: Setting[str | None] = Setting("17 * * * *")
    """When the built-in prune job runs (cron, UTC); None: never."""
    PRUNE_BATCH: Setting[int] = Setting(1000)
    """Rows deleted per statement, each batch its own short transaction (no long table lock)."""
    WEBHOOKS: Setting[dict[str, dict[str, Any]]] = Setting({})
    """Inbound webhook endpoints, by name: ``{"scheme": "qstash" | "standard" | "stripe" |
    "github", "secrets": [...] or the name of a key source, "job": "app.jobs.handler",
    "url": the public URL QStash signs for (QStash only), "tolerance": seconds, "max_body":
    bytes}``. See the inbound webhooks guide."""
    WEBHOOK_MAX_BODY: Setting[int] = Setting(1024 * 1024)
    """Bodies larger than this (bytes) are refused with 413 before any hashing (per endpoint:
    ``max_body``)."""
    WEBHOOK_STORE_REJECTED: Setting[bool] = Setting(False)
    """Keep a record (without the body) of deliveries that failed verification."""
    DELIVERY_ALLOW_HOSTS: Setting[list[str]] = Setting([])
    """Outbound delivery refuses private, loopback, link-local and metadata addresses; hosts
    (exact names) and networks (CIDRs, ``"127.0.0.0/8"``) listed here are delivered to anyway,
    for tests and local development."""
    DELIVERY_SIGNING_KEYS: Setting[dict[str, str] | None] = Setting(None)
    """Outbound signing keys to start from (``{"current": "sig_…", "next": "sig_…"}``); None
    draws random ones on first use. After that they live in the database
    (``bgjobs rotate-keys``)."""
    DELIVERY_KEY_OVERLAP: Setting[timedelta] = Setting(timedelta(hours=1), _duration)
    """How long after a rotation this project's own verifiers still accept the previous
    current key."""
    DELIVERY_DEDUP_WINDOW: Setting[timedelta] = Setting(timedelta(minutes=10), _duration)
    """A message published again with the same deduplication id (or content, with
    content-based deduplication) within this window gets the first message's id."""
    DELIVERY_MAX_RESPONSE_BODY: Setting[int] = Setting(4096)
    """Response bytes kept on each delivery attempt."""
    DELIVERY_TIMEOUT: Setting[float] = Setting(30.0)
    """Seconds a delivery attempt may take when the message sets no timeout."""
    DELIVERY_MAX_TIMEOUT: Setting[float] = Setting(900.0)
    """The longest timeout a message may set (an attempt holds a worker process that long)."""
    DELIVERY_JOB_QUEUE: Setting[str | None] = Setting(None)
    """The queue the delivery jobs run on (one of QUEUES); None: DEFAULT_QUEUE."""
    MAX_ERROR_LENGTH: Setting[int] = Setting(10_000)
    """Errors and tracebacks kept on rows are cut to this many characters."""
    SHUTDOWN_GRACE: Setting[float] = Setting(25.0)
    """Seconds a worker told to stop (SIGTERM: a warm shutdown) lets its running jobs finish;
    then it gives the rest back to the queue (the attempt recorded as ``released``) and exits.
    Below Kubernetes' default terminationGracePeriodSeconds (30), so the release happens before
    the SIGKILL."""
    METRICS_TOKEN: Setting[str | None] = Setting(None)
    """The Prometheus endpoint accepts ``Authorization: Bearer <METRICS_TOKEN>``; None accepts
    staff sessions only."""
    METRICS_WINDOW: Setting[timedelta] = Setting(timedelta(hours=1), _duration)
    """The run time and wait time histograms count the attempts of this recent window."""
    METRICS_WORKERS_WINDOW: Setting[timedelta] = Setting(timedelta(minutes=5), _duration)
    """Workers count as seen if they ran an attempt in this window."""

    def __init__(self) -> None:
        self._user: dict[str, Any] | None = None

    @classmethod
    def names(cls) -> list[str]:
        return sorted(name for name, value in vars(cls).items() if isinstance(value, Setting))

    @property
    def user_settings(self) -> dict[str, Any]:
        if self._user is None:
            user = getattr(settings, "BGJOBS", {}) or {}
            unknown = sorted(set(user) - set(self.names()))
            if unknown:
                raise ImproperlyConfigured(
                    f"Unknown BGJOBS setting(s): {', '.join(unknown)}. "
                    f"Known settings: {', '.join(self.names())}."
                )
            self._user = dict(user)
        return self._user

    def resolve(self, name: str, path: str) -> Any:
        """The object the dotted path ``path``, given in setting ``name``, names:
        ``"pkg.module.attr"`` or ``"pkg.module:attr"``. ImproperlyConfigured names the setting
        and the path when it cannot be imported."""
        module_path, _, attr = path.replace(":", ".").rpartition(".")
        try:
            return getattr(import_module(module_path), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"BGJOBS[{name!r}] names {path!r}, which cannot be imported ({exc}). "
                "Give a dotted path such as 'myapp.jobs.send_welcome' or 'proj.celery:app'."
            ) from exc

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
