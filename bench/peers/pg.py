"""PostgreSQL for the bench: where the server is, the peers' databases, and the counters read
around each drain. Uses psycopg only (installed in both virtualenvs)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg

# The server only; each system gets its own database on it.
SERVER_URL_ENV = "BENCH_PEERS_PG_URL"
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432"


def server_params() -> dict[str, Any]:
    """host, port, user, password of BENCH_PEERS_PG_URL (a database name in it is ignored)."""
    url = urlsplit(os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL))
    params = {
        "host": url.hostname,
        "port": url.port,
        "user": unquote(url.username) if url.username else None,
        "password": unquote(url.password) if url.password else None,
    }
    return {key: value for key, value in params.items() if value}


def django_database(name: str) -> dict[str, Any]:
    """A Django DATABASES entry for database ``name`` on the bench's server."""
    params = server_params()
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "HOST": params.get("host", ""),
        "PORT": str(params.get("port", "")),
        "USER": params.get("user", ""),
        "PASSWORD": params.get("password", ""),
    }


def admin_connection() -> psycopg.Connection:
    """Autocommit connection to the ``postgres`` database: creating databases, and reading the
    statistics without adding transactions to the database being measured."""
    return psycopg.connect(dbname="postgres", autocommit=True, **server_params())


def ensure_database(name: str) -> bool:
    """CREATE DATABASE ``name`` unless it exists; True if it was created."""
    with admin_connection() as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(f'CREATE DATABASE "{name}"')
        return True


@dataclass(frozen=True)
class PgCounters:
    """Cumulative counters at one moment (subtract two of them for a window)."""

    commits: int  # pg_stat_database.xact_commit of the measured database
    rows: int  # tup_inserted + tup_updated + tup_deleted of the measured database
    wal_syncs: int  # pg_stat_wal.wal_sync: cluster-wide, there is no per-database figure
    wal_records: int  # pg_stat_wal.wal_records, cluster-wide
    other_commits: int  # xact_commit of every other database but ``postgres`` (noise check)

    def __sub__(self, other: PgCounters) -> PgCounters:
        return PgCounters(
            self.commits - other.commits,
            self.rows - other.rows,
            self.wal_syncs - other.wal_syncs,
            self.wal_records - other.wal_records,
            self.other_commits - other.other_commits,
        )


def wait_for_no_clients(database: str, timeout: float = 60.0) -> None:
    """Until no client backend is connected to ``database``. A backend flushes its statistics
    when it exits, before it leaves pg_stat_activity, so after this the counters of everything
    that ran in that database are in pg_stat_database."""
    deadline = time.monotonic() + timeout
    with admin_connection() as conn:
        while True:
            (left,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = %s AND backend_type = 'client backend'",
                (database,),
            ).fetchone() or (0,)
            if left == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{left} connections to {database} still open after {timeout}s")
            time.sleep(0.05)


def counters(database: str | None) -> PgCounters:
    """The counters now (database None: a system without PostgreSQL; its figures are 0)."""
    with admin_connection() as conn:
        # Each statement is its own transaction in autocommit: no cached statistics snapshot.
        own = (0, 0)
        if database:
            row = conn.execute(
                "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted "
                "FROM pg_stat_database WHERE datname = %s",
                (database,),
            ).fetchone()
            own = (int(row[0]), int(row[1])) if row else (0, 0)
        wal_sync, wal_records = conn.execute(
            "SELECT wal_sync, wal_records FROM pg_stat_wal"
        ).fetchone() or (0, 0)
        (others,) = conn.execute(
            "SELECT coalesce(sum(xact_commit), 0) FROM pg_stat_database "
            "WHERE datname IS NOT NULL AND datname <> 'postgres' AND datname IS DISTINCT FROM %s",
            (database,),
        ).fetchone() or (0,)
    return PgCounters(own[0], own[1], int(wal_sync), int(wal_records), int(others))


def server_facts() -> dict[str, str]:
    with admin_connection() as conn:
        facts = {}
        for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method"):
            facts[name] = str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
    return facts
