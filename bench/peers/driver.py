"""One system's side of the bench: ``python -m bench.peers.driver MODULE`` (MODULE an adapter).

Reads one JSON request a line on stdin and answers one JSON line on the stdout it was started
with; everything the libraries print goes to stderr instead, so that it cannot garble the
answers. Runs in the system's own virtualenv and keeps its database connection open between
requests, like an application process would.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict
from typing import Any, TextIO

from bench.peers.adapter import Adapter


def enqueue_timed(adapter: Adapter, first: int, calls: int) -> list[float]:
    """``calls`` enqueues of jobs ``first``.. one after the other; each call's time in µs."""
    clock = time.perf_counter_ns
    out = []
    for n in range(first, first + calls):
        t0 = clock()
        adapter.enqueue(n, 0.0)
        out.append((clock() - t0) / 1000)
    return out


def enqueue_spaced(adapter: Adapter, first: int, count: int, spacing: float) -> None:
    """Jobs ``first``.. ``spacing`` seconds apart, each carrying the time it was enqueued at:
    the body's start minus that is the enqueue->start latency."""
    for n in range(first, first + count):
        adapter.enqueue(n, time.time())
        time.sleep(spacing)


def handle(adapter: Adapter, request: dict[str, Any]) -> Any:
    op = request["op"]
    if op == "setup":
        return adapter.setup()
    if op == "info":
        return {
            "database": adapter.database,
            "redis": adapter.uses_redis,
            "python": platform.python_version(),
        }
    if op == "reset":
        return adapter.reset()
    if op == "enqueue_timed":
        return enqueue_timed(adapter, request["first"], request["calls"])
    if op == "enqueue_bulk":
        t0 = time.perf_counter()
        adapter.enqueue_bulk(request["count"])
        return time.perf_counter() - t0
    if op == "enqueue_spaced":
        return enqueue_spaced(adapter, request["first"], request["count"], request["spacing"])
    if op == "close":
        return adapter.close()
    if op == "workers":
        return asdict(adapter.workers())
    if op == "check":
        return adapter.check(request["count"])
    raise ValueError(f"unknown request {op!r}")


def serve(adapter_module: str, answers: TextIO) -> None:
    adapter: Adapter | None = None
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        try:
            if adapter is None:
                # Made on the first request, so that a failing import is answered, not a crash.
                adapter = importlib.import_module(adapter_module).Adapter()
            answer = {"ok": handle(adapter, request)}
        except Exception as exc:  # noqa: BLE001 - reported to the orchestrator, which decides
            traceback.print_exc()
            answer = {"error": f"{type(exc).__name__}: {exc}".strip()[:300]}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    if adapter is not None:
        adapter.close()


def main() -> None:
    # Keep the real stdout for the answers; point fd 1 at stderr for everything else.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    serve(sys.argv[1], answers)


if __name__ == "__main__":
    main()
