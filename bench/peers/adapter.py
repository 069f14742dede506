"""What the bench needs from each system, implemented once per system (``*_adapter.py``).

An adapter runs inside ``driver.py``, in the virtualenv where its system is installed. The
orchestrator never imports one: it talks to the driver, so that the peers' packages (another
virtualenv) and bgjobs never meet in one process.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field


@dataclass
class Workers:
    """How to start the system's workers: one process per command, all with ``env`` added."""

    commands: list[list[str]]
    env: dict[str, str] = field(default_factory=dict)
    unset_env: list[str] = field(default_factory=list)  # variables the workers must not see
    describe: str = ""


class Adapter:
    """Defaults shared by every system; a subclass fills in its own parts."""

    database: str | None = None  # its own PostgreSQL database, None without one
    settings: str | None = None  # its Django settings module, None without Django
    packages: tuple[str, ...] = ()  # the distributions whose versions the report shows
    uses_redis = False

    def __init__(self) -> None:
        if self.settings is not None:
            django_setup(self.settings)

    def setup(self) -> dict[str, str]:
        """Create and migrate what is missing, empty it; return the versions that matter."""
        from importlib.metadata import version

        from bench.peers import pg

        if self.database is not None:
            pg.ensure_database(self.database)
        if self.settings is not None:
            migrate()
        self.reset()
        return {name: version(name) for name in self.packages}

    def reset(self) -> None:
        """Empty the system's queue and job tables."""
        raise NotImplementedError

    def enqueue(self, n: int, published: float) -> None:
        """Enqueue job number ``n`` of the no-op body, one call, autocommit."""
        raise NotImplementedError

    def enqueue_bulk(self, count: int) -> None:
        """Enqueue jobs 0..count-1 for the drain (not timed: the fastest way the system has)."""
        for n in range(count):
            self.enqueue(n, 0.0)

    def close(self) -> None:
        """Close this process's database connections (so that their statistics are flushed)."""
        from django.db import connections

        connections.close_all()

    def workers(self) -> Workers:
        raise NotImplementedError

    def check(self, count: int) -> str:
        """After the drain, with the workers stopped: what the system's own rows say."""
        return ""


def django_setup(settings_module: str) -> None:
    """Configure Django with ``settings_module``, in this process and the workers it starts."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def app_tables(*app_labels: str) -> list[str]:
    """The tables of the models of those Django apps."""
    from django.apps import apps

    return [
        model._meta.db_table
        for label in app_labels
        for model in apps.get_app_config(label).get_models()
    ]


def prefixed_tables(prefix: str) -> list[str]:
    """The tables of the default database whose names start with ``prefix``."""
    from django.db import connection

    with connection.cursor() as cursor:
        return [
            name for name in connection.introspection.table_names(cursor) if name.startswith(prefix)
        ]


def truncate(tables: list[str]) -> None:
    """TRUNCATE those tables (a system's own), restarting their sequences."""
    from django.db import connection

    if not tables:
        raise RuntimeError("no tables to empty: has the system's schema changed?")
    with connection.cursor() as cursor:
        quoted = ", ".join(connection.ops.quote_name(name) for name in tables)
        cursor.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")


def python() -> str:
    """This virtualenv's interpreter: the workers run in the same one as the driver."""
    return sys.executable
