#!/usr/bin/env python
"""Outbound delivery against bare Celery, on PostgreSQL + Redis: ``python bench/delivery.py``.

Its own database (BENCH_DELIVERY_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/bgjobs_bench_delivery, created if missing) and Redis DB 10
(BENCH_DELIVERY_BROKER_URL; FLUSHDB of that DB only). The target is a threaded HTTP server in a
subprocess on 127.0.0.1 (this file with ``--serve``): it reads each request, answers 200 with an
empty body and closes the connection (HTTP/1.0, so both sides open one TCP connection per
request), and counts the requests, the signed ones and the first and last arrival times.
Figures are printed; nothing is asserted.

1. Publish latency per call, p50/p99, in autocommit, no worker running: ``publish(url,
   json=...)`` (INSERT job + message, commit, publish the job to Redis) next to
   ``noop_job.enqueue()`` and bare Celery's ``noop.delay()``; alternating in blocks of 100
   after a warm-up, as bench/run.py. Also the statements one publish makes.
2. Delivery drain: N messages (``--messages``, 2,000) published with no worker running, then ONE
   worker with 2 prefork processes (bench/run.py's ``Worker``) delivers them; timed at the
   server from the first request's arrival to the last's. Bare Celery: N ``post_signed.delay()``
   (bench/tasks.py, queue ``bare``: one httpx.Client per process, a fresh QStash JWT per request
   from django_bgjobs.webhooks.sign.qstash_signature, as bgjobs signs) drained by a bare Celery
   worker with 2 processes. Both sides sign every request. Then, in this process, one at a
   time, alternating, 200 each (p50/p99): the bare task body, ``httpx.post()``, making an
   ``httpx.Client``, bgjobs' ``http.deliver()`` (also given one SSLContext made once), and the
   whole delivery job (``worker.execute``: claim, SELECTs, sign + POST, DeliveryAttempt,
   finish, settle); and each statement and COMMIT of one delivery job with its time
   (``recording()``: execute_wrapper like bench/run.py's ``counting``, plus the prepared claim
   and finish, which execute_wrapper and CaptureQueriesContext do not see).
3. Queue admission: M messages (``--gated``, 500) published one by one to a queue with
   parallelism 2 (their per-call latency is printed), then the same worker drains them: each
   finished delivery admits the next message. Its rate is printed next to the ungated drain's,
   then the statements a gated delivery job adds (admitting the next one), in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
# bench/settings.py reads these; the worker subprocesses inherit them.
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DELIVERY_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bgjobs_bench_delivery"
)
os.environ["CELERY_BROKER_URL"] = os.environ.get(
    "BENCH_DELIVERY_BROKER_URL", "redis://127.0.0.1:6379/10"
)
os.environ.pop("BENCH_REDIS_URL", None)

BODY = {"type": "invoice.paid", "data": {"object": {"id": "in_1", "amount_paid": 4200}}}
GATED_QUEUE = "bench-gated"


def say(text: str = "") -> None:
    print(text, flush=True)


# --- the target: a counting HTTP server (its own process) --------------------------------------


def serve() -> None:
    lock = threading.Lock()
    stats = {"count": 0, "signed": 0, "first": None, "last": None}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            now = time.time()
            with lock:
                stats["count"] += 1
                stats["signed"] += "Upstash-Signature" in self.headers
                stats["first"] = stats["first"] or now
                stats["last"] = now
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:  # noqa: N802 - GET /stats; /reset zeroes them
            with lock:
                data = json.dumps(stats).encode()
                if self.path == "/reset":
                    stats.update(count=0, signed=0, first=None, last=None)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


class Target:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
        )
        self.base = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"
        self.url = f"{self.base}/hook"

    def stats(self, reset: bool = False) -> dict:
        import httpx

        return httpx.get(f"{self.base}/{'reset' if reset else 'stats'}", trust_env=False).json()

    def wait(self, n: int, worker, timeout: float = 900) -> dict:
        deadline = time.monotonic() + timeout
        while (found := self.stats())["count"] < n:
            worker.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{found['count']} of {n} requests\n{worker.tail()}")
            time.sleep(0.2)
        return found

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


# --- helpers -----------------------------------------------------------------------------------


def reset() -> None:
    """FLUSHDB of the bench's Redis DB only; empty the message and job tables."""
    from django.db import connection

    from bench.run import redis_client
    from django_bgjobs.delivery.models import DeliveryAttempt, DeliveryQueue, Message
    from django_bgjobs.models import Job, JobRun

    redis_client().flushdb()
    tables = ", ".join(
        m._meta.db_table for m in (DeliveryAttempt, Message, DeliveryQueue, JobRun, Job)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} CASCADE")


def timed(fn, out: list[float]) -> None:
    t0 = time.perf_counter_ns()
    fn()
    out.append((time.perf_counter_ns() - t0) / 1e6)


def alternate(calls: dict[str, object], n: int, warmup: int, block: int = 100) -> dict:
    """Each callable ``n`` times, in alternating blocks, after ``warmup`` calls each."""
    out: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    for start in range(0, n, block):
        for name, fn in calls.items():
            for _ in range(min(block, n - start)):
                timed(fn, out[name])
    return out


def row(label: str, values: list[float]) -> str:
    from bench.run import pct

    return f"  {label:<64} {pct(values, 0.5):>8.3f} {pct(values, 0.99):>8.3f}"


@contextmanager
def recording():
    """Every statement on the default connection with its time in ms: Django's (through
    execute_wrapper, like bench/run.py's ``counting``) and bgjobs' prepared claim and finish
    (raw psycopg cursors, which execute_wrapper and CaptureQueriesContext do not see), and the
    COMMIT of each atomic block. Autocommit statements are marked ``(autocommit)``."""
    from django.db import connection

    from bench.run import _table_of
    from django_bgjobs import _sql

    seen: list[tuple[str, float]] = []

    def record(what: str, sql: str, t0: int) -> None:
        what = what or f"{sql.split()[0]} {_table_of(sql).removeprefix('django_bgjobs_')}"
        alone = "" if connection.in_atomic_block else " (autocommit)"
        seen.append((what + alone, (time.perf_counter_ns() - t0) / 1e6))

    def wrapper(execute, sql, params, many, context):
        t0 = time.perf_counter_ns()
        try:
            return execute(sql, params, many, context)
        finally:
            record("", sql, t0)

    prepared, commit = _sql._execute_prepared, connection.commit

    def timed_prepared(conn, sql, params):
        t0 = time.perf_counter_ns()
        try:
            return prepared(conn, sql, params)
        finally:
            record(
                "claim (prepared UPDATE job, asynchronous commit)"
                if "synchronous_commit" in sql
                else "finish (prepared UPDATE job + INSERT jobrun)",
                sql,
                t0,
            )

    def timed_commit() -> None:
        t0 = time.perf_counter_ns()
        commit()
        seen.append(("COMMIT (atomic block)", (time.perf_counter_ns() - t0) / 1e6))

    _sql._execute_prepared, connection.commit = timed_prepared, timed_commit
    try:
        with connection.execute_wrapper(wrapper):
            yield seen
    finally:
        _sql._execute_prepared = prepared
        del connection.commit


# --- 1. publish latency ------------------------------------------------------------------------


def measure_publish(target: Target, calls: int, warmup: int) -> None:
    from bench.jobs import noop_job
    from bench.run import pct
    from bench.tasks import noop
    from django_bgjobs.delivery.publish import publish
    from django_bgjobs.testing import capture_jobs

    got = alternate(
        {
            "bare": noop.delay,
            "enqueue": noop_job.enqueue,
            "publish": lambda: publish(target.url, json=BODY),
        },
        calls,
        warmup,
    )
    say(
        f"\n1. Publish latency per call, autocommit, no worker ({calls} calls each after "
        f"{warmup} warm-up, alternating blocks of 100)"
    )
    say(f"  {'what':<64} {'p50 ms':>8} {'p99 ms':>8}")
    say(row("bare Celery noop.delay()", got["bare"]))
    say(row("bgjobs noop_job.enqueue() (INSERT job, commit, publish)", got["enqueue"]))
    say(row("publish(url, json=...) (INSERT job + message, commit, publish)", got["publish"]))
    p50 = {k: pct(v, 0.5) for k, v in got.items()}
    say(
        f"  publish p50 = {p50['publish'] / p50['enqueue']:.2f}x enqueue(), "
        f"{p50['publish'] / p50['bare']:.2f}x bare .delay()"
    )
    runs = []
    with capture_jobs():
        for _ in range(50):
            with recording() as seen:
                publish(target.url, json=BODY)
            runs.append(seen)
    say(
        "  one publish()'s statements, p50 ms each: "
        + ", ".join(
            f"{label} {pct([run[i][1] for run in runs], 0.5):.3f}"
            for i, (label, _) in enumerate(runs[0])
        )
    )


# --- 2. delivery drain and what one delivery costs ---------------------------------------------


def drain(kind: str, target: Target, n: int, logdir: Path) -> dict:
    """Start the worker with the N messages waiting; seconds from the first to the last request."""
    from bench.run import running

    with running(kind, 2, logdir) as worker:
        found = target.wait(n, worker)
        if kind == "bgjobs":  # the outcome recorded too, before the worker stops
            from django.db.models import Count

            from django_bgjobs.delivery.models import DeliveryAttempt
            from django_bgjobs.models import Job, JobStatus

            def recorded() -> bool:
                return Job.objects.filter(status=JobStatus.SUCCEEDED).count() >= n

            t0 = time.time()
            while not recorded() and time.time() - t0 < 60:
                time.sleep(0.1)
            found["recorded_after"] = time.time() - found["last"]
            found["attempts"] = dict(
                DeliveryAttempt.objects.order_by()
                .values("outcome")
                .annotate(n=Count("pk"))
                .values_list("outcome", "n")
            )
        time.sleep(0.5)
        found["extra"] = target.stats()["count"] - n  # duplicate deliveries, if any
    found["seconds"] = found["last"] - found["first"]
    return found


def measure_drain(target: Target, n: int, logdir: Path) -> dict:
    from bench.tasks import post_signed
    from django_bgjobs.delivery.publish import Publish, send_many

    body = json.dumps(BODY, separators=(",", ":"))
    results = {}
    reset()
    target.stats(reset=True)
    for i in range(n):
        post_signed.delay(target.url, body, f"msg_bare_{i}")
    results["bare"] = drain("bare", target, n, logdir)
    reset()
    target.stats(reset=True)
    for start in range(0, n, 500):
        send_many(
            [
                Publish(
                    target.url, body=body.encode(), headers={"Content-Type": "application/json"}
                )
                for _ in range(min(500, n - start))
            ]
        )
    results["bgjobs"] = drain("bgjobs", target, n, logdir)

    bare, bg = results["bare"], results["bgjobs"]
    rate = {k: n / v["seconds"] for k, v in results.items()}
    say(
        f"\n2. Delivery drain: {n} messages, one worker, 2 prefork processes, timed from the "
        "first to the last request at the server"
    )
    say(f"  {'what':<44} {'bare Celery':>12} {'bgjobs':>12} {'bgjobs/bare':>12}")
    say(
        f"  {'deliveries/s':<44} {rate['bare']:>12.1f} {rate['bgjobs']:>12.1f} "
        f"{rate['bgjobs'] / rate['bare']:>11.2f}x"
    )
    say(f"  {'first..last request, s':<44} {bare['seconds']:>12.2f} {bg['seconds']:>12.2f}")
    per = {k: 2 * 1000 / r for k, r in rate.items()}  # ms of one of the 2 processes each
    say(
        f"  {'process time per delivery (2 / rate), ms':<44} {per['bare']:>12.2f} "
        f"{per['bgjobs']:>12.2f}"
    )
    say(f"  overhead per delivery: {per['bgjobs'] - per['bare']:.2f} ms of a worker process")
    say(
        f"  requests signed: bare {bare['signed']}/{bare['count']}, bgjobs "
        f"{bg['signed']}/{bg['count']}; extra requests after N: bare {bare['extra']}, bgjobs "
        f"{bg['extra']}; bgjobs attempts recorded {bg['attempts']}, all jobs succeeded "
        f"{bg['recorded_after']:.2f}s after the last request"
    )

    return rate


def measure_one(target: Target, samples: int = 200) -> list:
    """In this process, one at a time: where a delivery's time goes."""
    import ssl

    import certifi
    import httpx

    from bench.run import pct
    from bench.tasks import http_client, post_signed
    from django_bgjobs.delivery import http
    from django_bgjobs.delivery.keys import signing_keys
    from django_bgjobs.delivery.models import Message
    from django_bgjobs.delivery.publish import publish
    from django_bgjobs.testing import capture_jobs
    from django_bgjobs.worker.task import execute

    body = json.dumps(BODY, separators=(",", ":"))
    reset()
    target.stats(reset=True)
    http_client()
    key = signing_keys().current
    context = ssl.create_default_context(cafile=certifi.where())  # what httpx makes per Client
    attempt = http.Attempt(
        url=target.url,
        body=body.encode(),
        message_id="msg_inprocess",
        headers={"Content-Type": "application/json"},
    )
    with capture_jobs():
        for _ in range(samples + 30):
            publish(target.url, json=BODY)
        jobs = iter(Message.objects.values_list("job_id", flat=True).order_by("created_at"))
        got = alternate(
            {
                "bare": lambda: post_signed(target.url, body, "msg_inprocess"),
                "httpx.post": lambda: httpx.post(
                    target.url, content=body.encode(), trust_env=False
                ),
                "client": lambda: httpx.Client(trust_env=False).close(),
                "deliver": lambda: http.deliver(attempt, signing_key=key),
                "deliver_ctx": lambda: http.deliver(attempt, signing_key=key, verify=context),
                "job": lambda: execute(str(next(jobs)), 1),
            },
            samples,
            warmup=10,
            block=20,
        )
        runs = []
        for _ in range(20):
            with recording() as seen:
                execute(str(next(jobs)), 1)
            runs.append(seen)
    say(
        f"\n  In this process, one at a time ({samples} each, p50/p99 ms; the server in its own "
        "process):"
    )
    say(row("bare task body (reused httpx.Client, sign, POST)", got["bare"]))
    say(row("httpx.post() (a new Client per call)", got["httpx.post"]))
    say(row("httpx.Client() made and closed, nothing sent", got["client"]))
    say(row("bgjobs http.deliver() alone (check URL, sign, new Client, POST)", got["deliver"]))
    say(row("  the same, given one SSLContext made once (verify=context)", got["deliver_ctx"]))
    say(row("bgjobs delivery job, execute() (all of it, with the DB)", got["job"]))
    shapes = {tuple(label for label, _ in run) for run in runs}
    say(
        f"  one delivery job's statements ({len(runs)} jobs, {len(shapes)} distinct "
        f"sequence(s)), p50 ms each:"
    )
    for i, label in enumerate(label for label, _ in runs[0]):
        say(f"    {label:<62} {pct([run[i][1] for run in runs], 0.5):>8.3f}")
    say(f"    {'all of them':<62} {pct([sum(ms for _, ms in run) for run in runs], 0.5):>8.3f}")
    pct50 = {k: pct(v, 0.5) for k, v in got.items()}
    say(
        f"  p50: the job around http.deliver() (statements, ORM, signals) = "
        f"{pct50['job'] - pct50['deliver']:.2f} ms; "
        f"http.deliver() - bare body = {pct50['deliver'] - pct50['bare']:.2f} ms, of which "
        f"a new httpx.Client = {pct50['client']:.2f} ms"
    )
    return runs


# --- 3. queue admission ------------------------------------------------------------------------


def measure_gated(
    target: Target, m: int, logdir: Path, ungated_rate: float, ungated_runs: list
) -> None:
    from django.utils import timezone

    from bench.run import pct
    from django_bgjobs.delivery.models import DeliveryQueue, Message
    from django_bgjobs.delivery.publish import publish
    from django_bgjobs.testing import capture_jobs
    from django_bgjobs.worker.task import execute

    reset()
    target.stats(reset=True)
    now = timezone.now()
    DeliveryQueue.objects.create(name=GATED_QUEUE, parallelism=2, created_at=now, updated_at=now)
    latency: list[float] = []
    for _ in range(m):
        timed(lambda: publish(target.url, json=BODY, queue=GATED_QUEUE), latency)
    found = drain("bgjobs", target, m, logdir)
    rate = m / found["seconds"]
    say(f"\n3. Queue admission: {m} messages to a queue with parallelism 2, same worker")
    say(f"  {'what':<64} {'p50 ms':>8} {'p99 ms':>8}")
    say(row("publish(url, json=..., queue=...) (admission on commit)", latency))
    say(
        f"  drain: {rate:.1f} deliveries/s ({found['seconds']:.2f}s first..last request), "
        f"{rate / ungated_rate:.2f}x the ungated drain above; attempts {found['attempts']}, "
        f"extra requests {found['extra']}"
    )

    # In this process: a gated delivery job, whose end admits the queue's next message.
    reset()
    runs = []
    with capture_jobs():
        for _ in range(22):
            publish(target.url, json=BODY, queue=GATED_QUEUE)  # parallelism 1: one admitted
        for _ in range(20):
            job_id = (
                Message.objects.filter(admitted_at__isnull=False, settled_at__isnull=True)
                .values_list("job_id", flat=True)
                .get()
            )
            with recording() as seen:
                execute(str(job_id), 1)
            runs.append(seen)
    total = {
        name: pct([sum(ms for _, ms in run) for run in got], 0.5)
        for name, got in (("gated", runs), ("ungated", ungated_runs))
    }
    labels = [label for label, _ in runs[0]]
    say(
        f"  one gated delivery job: {len(labels)} statements/commits, p50 {total['gated']:.2f} "
        f"ms in them (ungated: {len(ungated_runs[0])}, {total['ungated']:.2f} ms); the "
        "admission of the next message adds, p50 ms each:"
    )
    for i in range(len(ungated_runs[0]), len(labels)):
        say(f"    {labels[i]:<62} {pct([run[i][1] for run in runs], 0.5):>8.3f}")


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=2000, help="publish calls per side")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--messages", type=int, default=2000, help="messages drained per side")
    parser.add_argument(
        "--gated", type=int, default=500, help="messages through the queue (0: skip measurement 3)"
    )
    args = parser.parse_args()
    if args.serve:
        serve()
        return

    from bench.run import ensure_database

    ensure_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from bench.run import environment
    from django_bgjobs.celery.app import get_celery_app

    call_command("migrate", interactive=False, verbosity=0)
    get_celery_app()
    env = environment()
    load = os.getloadavg()
    say("bench/delivery.py: " + ", ".join(f"{k} {v}" for k, v in env[:9]))
    say(
        f"database {settings.DATABASES['default']['NAME']}, broker {settings.CELERY_BROKER_URL}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
    )
    target = Target()
    logdir = Path(tempfile.mkdtemp(prefix="bgjobs-bench-delivery-"))
    started = time.monotonic()
    try:
        reset()
        measure_publish(target, args.calls, args.warmup)
        rate = measure_drain(target, args.messages, logdir)
        runs = measure_one(target)
        if args.gated:
            measure_gated(target, args.gated, logdir, rate["bgjobs"], runs)
        reset()
    finally:
        target.stop()
        for path in logdir.iterdir():
            path.unlink()
        logdir.rmdir()
    load = os.getloadavg()
    say(
        f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"{time.monotonic() - started:.0f}s"
    )


if __name__ == "__main__":
    main()
