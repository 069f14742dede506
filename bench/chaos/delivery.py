"""Scenario 13: outbound delivery under faults.

Messages are published (a third to a queue of parallelism 2, a third under a flow-control key
of parallelism 3, the rest ungated) to an HTTP receiver in this process that takes 10-80 ms
per request and answers 500 to about one request in ten. Workers are killed with SIGKILL at
seeded times and Redis is wiped once. Afterwards:

- lost: messages with no delivered attempt recorded, or that the receiver never answered 2xx;
- stuck: messages whose delivery job is not finished (or that never started);
- dup_exec: 2xx answers beyond one per message (at-least-once: a worker killed between the
  receiver's answer and the record delivers again);
- failures: a queue or key that had more requests in flight at the receiver than its limit,
  a request with a signature ``qstash.Receiver`` refuses, or a message id the receiver saw
  that was never published.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from django.db.models import Q
from django.utils import timezone
from qstash import Receiver

from bench.chaos.ledger import Report
from django_bgjobs.delivery.keys import signing_keys
from django_bgjobs.delivery.models import DeliveryAttempt, DeliveryQueue, Message
from django_bgjobs.delivery.publish import Flow, Publish, send_many
from django_bgjobs.models import UNFINISHED

if TYPE_CHECKING:
    from bench.chaos.scenarios import Run

LIMITS = {"/queue": 2, "/flow": 3}


class Destination:
    """The receiver: counts 2xx answers per message id and requests in flight per path."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.lock = threading.Lock()
        self.ok: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.bad_signatures = 0
        keys = signing_keys()
        self.verifier = Receiver(current_signing_key=keys.current, next_signing_key=keys.next)
        destination = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                destination.handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def _draw(self, message_id: str, retried: str) -> int:
        return int(
            hashlib.sha256(f"{self.seed}:{message_id}:{retried}".encode()).hexdigest()[:8], 16
        )

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        message_id = request.headers.get("Upstash-Message-Id", "")
        retried = request.headers.get("Upstash-Retried", "")
        try:
            self.verifier.verify(
                signature=request.headers.get("Upstash-Signature", ""),
                body=body.decode(),
                url=self.url(request.path),
            )
        except Exception:
            with self.lock:
                self.bad_signatures += 1
        draw = self._draw(message_id, retried)
        with self.lock:
            self.in_flight[request.path] += 1
            self.most[request.path] = max(self.most[request.path], self.in_flight[request.path])
        time.sleep(0.01 + (draw % 71) / 1000)
        status = 500 if draw % 10 == 0 else 200
        with self.lock:
            self.in_flight[request.path] -= 1
        request.send_response(status)
        request.send_header("Content-Length", "0")
        request.end_headers()
        if status == 200:
            with self.lock:
                self.ok[message_id] += 1

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _requests(destination: Destination, count: int, prefix: str) -> list[Publish]:
    made = []
    for n in range(count):
        body = f'{{"key": "{prefix}-{n}"}}'.encode()
        kind = n % 3
        if kind == 0:
            made.append(
                Publish(
                    destination.url("/queue"),
                    body=body,
                    queue=f"{prefix}-q",
                    retries=10,
                    retry_delay="200",
                )
            )
        elif kind == 1:
            made.append(
                Publish(
                    destination.url("/flow"),
                    body=body,
                    retries=10,
                    retry_delay="200",
                    flow=Flow(f"{prefix}-k", parallelism=LIMITS["/flow"]),
                )
            )
        else:
            made.append(Publish(destination.url("/free"), body=body, retries=10, retry_delay="200"))
    return made


def _settled(ids: list[str]) -> bool:
    pending = Message.objects.filter(pk__in=ids).filter(
        Q(job__isnull=True, cancelled_at__isnull=True) | Q(job__status__in=UNFINISHED)
    )
    return not pending.exists()


def delivery(run: Run) -> Report:
    """13: see the module's docstring."""
    from bench.chaos import scenarios

    rng, prefix = run.rng, run.prefix("13")
    report = Report("13-delivery", run.seed)
    count = max(300, run.size.jobs // 3)
    destination = Destination(run.seed)
    stack = run.stack()
    faults: list[datetime] = []
    ids: list[str] = []
    try:
        now = timezone.now()
        DeliveryQueue.objects.update_or_create(
            name=f"{prefix}-q",
            defaults={"parallelism": LIMITS["/queue"], "created_at": now, "updated_at": now},
        )
        requests = _requests(destination, count, prefix)
        for start in range(0, count, 200):
            ids += [p.message_id for made in send_many(requests[start : start + 200]) for p in made]
        report.attempted = len(ids)
        # Gated messages go two and three at a time: the run takes a while; faults in the
        # first half of it.
        span = max(count / 3 * 0.045 / 2, 5.0)
        plan = run.fault_plan(span, kills_within=(0.1, 0.9))
        faults += run.kills_and_a_wipe(stack, plan, rng)
        deadline = time.monotonic() + run.size.drain_timeout
        while time.monotonic() < deadline and not _settled(ids):
            time.sleep(0.5)
    finally:
        stack.stop()
        destination.close()
    delivered = set(
        DeliveryAttempt.objects.filter(message_id__in=ids, outcome="delivered").values_list(
            "message_id", flat=True
        )
    )
    answered = {m for m in ids if destination.ok[m] > 0}
    report.executed = sum(destination.ok[m] for m in ids)
    report.effects = len(delivered)
    report.lost = len(set(ids) - (delivered & answered))
    report.dup_exec = report.executed - len(answered)
    report.stuck = (
        0
        if _settled(ids)
        else Message.objects.filter(pk__in=ids)
        .filter(Q(job__isnull=True) | Q(job__status__in=UNFINISHED))
        .count()
    )
    report.unexpected = len(set(destination.ok) - set(ids))
    for path, limit in LIMITS.items():
        if destination.most[path] > limit:
            report.failures.append(f"{path} had {destination.most[path]} in flight > {limit}")
    if destination.bad_signatures:
        report.failures.append(f"{destination.bad_signatures} signature(s) refused")
    report.notes.update(
        kills=len(faults) - 1,
        wipe=scenarios.FLUSH,
        restarts=stack.restarts,
        most_in_flight="/".join(str(destination.most[p]) for p in LIMITS),
    )
    return report
