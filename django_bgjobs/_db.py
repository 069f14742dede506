"""Connection hygiene for long-lived worker processes."""

from django.db import connections


def discard_broken_connections() -> None:
    """Close connections that failed (the database restarted, a network cut), keep the rest.

    Unlike ``close_old_connections()`` this ignores CONN_MAX_AGE: with its default of 0 that
    would reconnect for every job, which is what workers must avoid.
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is None or not conn.errors_occurred:
            continue
        if conn.is_usable():
            conn.errors_occurred = False
        else:
            conn.close()
