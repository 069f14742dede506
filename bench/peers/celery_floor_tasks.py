"""The floor: bare Celery (acks_late, prefetch 1) plus the least a database-as-source-of-truth
job system must write per job, in plain psycopg with no ORM. Enqueue inserts the job's row
(one durable commit) and sends the message; the worker marks the row running (its claim,
committed without waiting for the WAL flush, as bgjobs' claim is) and, after the body, done
(durable, before the message is acknowledged). No attempt rows, leases, fences or dispatcher:
what is left of bgjobs' cost above this line is its own."""

from __future__ import annotations

import os
from typing import Any

from bench.celery_app import app
from bench.peers import body
from bench.peers.pg import server_params

QUEUE = "peers_floor"
DATABASE = "bench_peers_floor"
TABLE = "floor_job"

_conn: tuple[int, Any] | None = None  # (pid, connection): each prefork child opens its own


def connection() -> Any:
    """This process's autocommit connection to the floor's database."""
    global _conn
    import psycopg

    if _conn is None or _conn[0] != os.getpid():
        _conn = (os.getpid(), psycopg.connect(dbname=DATABASE, autocommit=True, **server_params()))
    return _conn[1]


def close() -> None:
    global _conn
    if _conn is not None:
        _conn[1].close()
        _conn = None


@app.task(name="bench.peers.noop_floor", queue=QUEUE, ignore_result=True)
def noop(n: int, published: float) -> None:
    conn = connection()
    with conn.transaction():
        conn.execute("SET LOCAL synchronous_commit = off")
        conn.execute(f"UPDATE {TABLE} SET status = 'running' WHERE id = %s", (n,))
    body.noop(n, published)
    conn.execute(f"UPDATE {TABLE} SET status = 'done' WHERE id = %s", (n,))
