"""What the peers' settings modules share: quiet logging, no DEBUG (which would keep every query
in memory), and the bench's CONN_MAX_AGE for every system (``conn_max_age()``)."""

import os

SECRET_KEY = "bench-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}


def conn_max_age() -> int | None:
    """BENCH_CONN_MAX_AGE, read the way bench/settings.py reads it ("none": persistent), so
    that all the systems run with the same value; the orchestrator sets it for all of them."""
    value = os.environ.get("BENCH_CONN_MAX_AGE", "0").strip().lower()
    return None if value in ("none", "") else int(value)
