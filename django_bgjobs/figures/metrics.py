"""The Prometheus endpoint: figures computed from the database when scraped.

``BgJobsCollector`` is a prometheus_client collector that reads ``stats.snapshot()`` on each
``collect()``: no counters live in a process, so any number of web and worker processes give
the same answer, with no multiprocess mode. ``metrics_view`` serves it, to a staff session or
to ``Authorization: Bearer <BGJOBS["METRICS_TOKEN"]>``; mount it alone or with the job status
API (``django_bgjobs.api.urls``).

The run time and wait time histograms cover a recent window (``METRICS_WINDOW``), so they are
gauge histograms: their buckets can go down as the window slides. Read them as they are
(``histogram_quantile(0.95, sum by (le, name) (bgjobs_run_duration_seconds_bucket))``), without
``rate()``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections.abc import Iterable, Iterator

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from django_bgjobs.conf import bgjobs_settings
from django_bgjobs.figures import stats
from django_bgjobs.models import JobStatus
from django_bgjobs.registry import registry

logger = logging.getLogger("django_bgjobs.metrics")

# Query parameters that look like credentials: refused, since URLs end up in access logs,
# proxies and browser histories. The token goes in the Authorization header.
CREDENTIAL_PARAMETERS = frozenset(
    {"token", "access_token", "bearer", "auth", "api_key", "apikey", "key", "metrics_token"}
)


class BgJobsCollector(Collector):
    """Every bgjobs metric, read from the database at each ``collect()``.

    Register it in your own registry to serve it from an existing endpoint
    (``prometheus_client.REGISTRY.register(BgJobsCollector())``): each scrape then runs the
    queries of ``django_bgjobs.figures.stats``.
    """

    def __init__(self, using: str | None = None) -> None:
        self.using = using

    def describe(self) -> Iterable[Metric]:
        return []  # registering must not query the database

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        snap = stats.snapshot(using=self.using)

        jobs = GaugeMetricFamily(
            "bgjobs_jobs",
            "Jobs in the database, by job name and status.",
            labels=["name", "status"],
        )
        # Every status of every known job, zeros included: a series that exists at 0 graphs and
        # alerts better than one that appears with its first job.
        names = sorted({name for name, _ in snap.jobs} | set(registry.names()))
        for name in names:
            for status in JobStatus.values:
                jobs.add_metric([name, status], snap.jobs.get((name, status), 0))
        yield jobs

        dead = GaugeMetricFamily(
            "bgjobs_dead_jobs",
            "Jobs in the dead-letter state (out of attempts, or failed for "
            "good), all names together.",
            value=snap.dead,
        )
        yield dead

        depth = GaugeMetricFamily(
            "bgjobs_queue_depth",
            "Jobs queued (ready, waiting for a worker), by queue.",
            labels=["queue"],
        )
        oldest = GaugeMetricFamily(
            "bgjobs_queue_oldest_age_seconds",
            "How long the oldest queued job of the queue has "
            "waited since it was published (0 for an empty queue).",
            labels=["queue"],
        )
        for queue, figures in sorted(snap.queues.items()):
            depth.add_metric([queue], figures.depth)
            oldest.add_metric([queue], figures.oldest_age)
        yield depth
        yield oldest

        window = snap.window.total_seconds()
        runs = GaugeHistogramMetricFamily(
            "bgjobs_run_duration_seconds",
            "Run time of the attempts that ended (succeeded, "
            f"failed or cancelled) in the last {window:g} s, by job name.",
            labels=["name"],
        )
        for name, histogram in sorted(snap.run_durations.items()):
            runs.add_metric([name], _buckets(histogram), histogram.total)
        yield runs

        waits = GaugeHistogramMetricFamily(
            "bgjobs_wait_seconds",
            "Time from a job's publication (its enqueue, or the end of its "
            f"delay or backoff) to the start of its latest attempt, for attempts started in the "
            f"last {window:g} s, by job name.",
            labels=["name"],
        )
        for name, histogram in sorted(snap.waits.items()):
            waits.add_metric([name], _buckets(histogram), histogram.total)
        yield waits

        yield GaugeMetricFamily(
            "bgjobs_metrics_window_seconds",
            "The window the run time and wait time histograms cover (BGJOBS['METRICS_WINDOW']).",
            value=window,
        )
        yield GaugeMetricFamily(
            "bgjobs_workers_seen",
            "Worker processes that ended an attempt in the last "
            f"{bgjobs_settings.METRICS_WORKERS_WINDOW.total_seconds():g} s or hold a live lease.",
            value=snap.workers_seen,
        )
        yield GaugeMetricFamily(
            "bgjobs_metrics_collect_seconds",
            "Time taken by the database queries of this scrape.",
            value=time.perf_counter() - started,
        )


def _buckets(histogram: stats.Histogram) -> list[tuple[str, float]]:
    return [
        ("+Inf" if math.isinf(bound) else repr(bound), count)
        for bound, count in histogram.cumulative()
    ]


# --- the view -----------------------------------------------------------------------------------


def _digest(value: str) -> bytes:
    # Compared as digests: equal lengths, so the comparison's time says nothing about the token.
    return hashlib.sha256(value.encode()).digest()


def token_matches(given: str) -> bool:
    """Whether ``given`` is ``BGJOBS["METRICS_TOKEN"]``, compared in constant time."""
    expected = bgjobs_settings.METRICS_TOKEN
    if not expected or not given:
        return False
    return hmac.compare_digest(_digest(given), _digest(str(expected)))


def _unauthorized(error: str = "") -> HttpResponse:
    response = HttpResponse(
        "authentication required: a staff session, or the header 'Authorization: Bearer <token>'\n",
        status=401,
        content_type="text/plain; charset=utf-8",
    )
    challenge = 'Bearer realm="bgjobs metrics"'
    response["WWW-Authenticate"] = f'{challenge}, error="{error}"' if error else challenge
    return response


def refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the request may read the metrics; else the response that refuses it.

    A bearer token in the ``Authorization`` header (``BGJOBS["METRICS_TOKEN"]``), or the
    session of an active staff user. A token in the query string is refused, even the right
    one: it would be written to access logs.
    """
    for key, values in request.GET.lists():
        if key.lower() in CREDENTIAL_PARAMETERS or any(token_matches(v) for v in values):
            return HttpResponse(
                "credentials in the URL are refused (they end up in logs); send "
                "'Authorization: Bearer <token>'\n",
                status=400,
                content_type="text/plain; charset=utf-8",
            )
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        if token_matches(credentials.strip()):
            return None
        logger.warning("metrics: refused a bearer token that is not BGJOBS['METRICS_TOKEN']")
        return _unauthorized("invalid_token")
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        if user.is_active and user.is_staff:
            return None
        return HttpResponse("staff only\n", status=403, content_type="text/plain; charset=utf-8")
    return _unauthorized()


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET``: the metrics in Prometheus' text format (OpenMetrics when the scraper asks)."""
    refused = refusal(request)
    if refused is not None:
        return refused
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    try:
        body = encoder(BgJobsCollector())
    except DatabaseError as exc:
        logger.error("metrics: the database could not be read: %s", exc)
        return HttpResponse(
            "the database could not be read\n", status=503, content_type="text/plain; charset=utf-8"
        )
    return HttpResponse(body, content_type=content_type)
