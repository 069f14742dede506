"""The Redis database the Redis-backed systems use, and the command counter read around a
drain. The systems without Redis never import redis-py from here (the peers' virtualenv has
none)."""

from __future__ import annotations

import os
from typing import Any

REDIS_URL_ENV = "BENCH_PEERS_REDIS_URL"
# DB 12: bench/run.py uses 14, the chaos suite 13, bench/delivery.py 10. FLUSHDB'd by the bench.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"


def redis_url() -> str:
    return os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL)


_reader: Any = None  # one connection for every reading: a new one would add its handshake


def commands_total() -> int:
    """Commands the server has executed so far, from INFO commandstats (server-wide: Redis has
    no per-database count). INFO itself is left out, so that reading the counter does not
    move it."""
    global _reader
    if _reader is None:
        import redis

        _reader = redis.Redis.from_url(redis_url())
    stats = _reader.info("commandstats")
    return sum(int(value["calls"]) for name, value in stats.items() if name != "cmdstat_info")


def flush() -> None:
    """Empty the bench's Redis database (only that one)."""
    import redis

    redis.Redis.from_url(redis_url()).flushdb()
