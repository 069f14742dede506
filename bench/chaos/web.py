"""A "web process" for the chaos suite: requests that write a business row and enqueue its job
in one transaction, as a view does. Every line it writes to ``--journal`` is one outcome:

    ok KEY          committed (the request answered 2xx)
    rollback KEY    the request failed after enqueue and rolled back: no job may run
    refused KEY     the database was unavailable: the request failed, nothing accepted
    kill KEY        about to die between COMMIT and the on-commit publish (fault injection)

``python -m bench.chaos.web --prefix P --start I --count N --rate R --journal F
[--rollback 0.1] [--kill-at I,J,...]``
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time

import django


class RolledBack(Exception):
    pass


def wants_rollback(prefix: str, index: int, rate: float) -> bool:
    """Deterministic per request, so the checker knows which keys were rolled back."""
    return random.Random(f"{prefix}/{index}").random() < rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0, help="requests per second (0: flat out)")
    parser.add_argument("--ms", type=int, default=20, help="how long each job works")
    parser.add_argument("--rollback", type=float, default=0.0)
    parser.add_argument("--kill-at", default="")
    parser.add_argument("--journal", required=True)
    args = parser.parse_args()

    django.setup()
    from django.db import DatabaseError, transaction

    from bench.chaos.jobs import work
    from bench.chaos.models import Order

    kill_at = {int(i) for i in args.kill_at.split(",") if i}
    journal = open(args.journal, "a", buffering=1)
    began = time.monotonic()
    for index in range(args.start, args.start + args.count):
        if args.rate:
            time.sleep(max(0.0, began + (index - args.start) / args.rate - time.monotonic()))
        key = f"{args.prefix}-{index}"
        try:
            with transaction.atomic():
                Order.objects.create(key=key)
                if index in kill_at:
                    # Registered before enqueue's own callback, so it runs first: the process
                    # dies after COMMIT and before the message is published.
                    journal.write(f"kill {key}\n")
                    transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
                work.enqueue(key, args.ms)
                if wants_rollback(args.prefix, index, args.rollback):
                    raise RolledBack
        except RolledBack:
            journal.write(f"rollback {key}\n")
            continue
        except DatabaseError:
            journal.write(f"refused {key}\n")
            continue
        journal.write(f"ok {key}\n")
    journal.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
