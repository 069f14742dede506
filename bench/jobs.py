"""The bgjobs side: a no-op job (autodiscovered, ``bench`` is an installed app)."""

from django_bgjobs import Concurrency, bgjob


@bgjob(name="bench.noop_job")
def noop_job() -> None:
    """Does nothing; bgjobs records every attempt in PostgreSQL."""


@bgjob(name="bench.jobs.handle_webhook")
def handle_webhook(receipt_id: int) -> None:
    """The handler bench/webhooks.py enqueues for each delivery (never run there)."""


@bgjob(name="bench.keyed_job")
def keyed_job(key: int) -> None:
    """bench/flow.py's job without a limit."""


@bgjob(name="bench.limited_job", concurrency=Concurrency(limit=1, key="key"))
def limited_job(key: int) -> None:
    """bench/flow.py's job with a concurrency of one per key."""


# The durable functions of bench/functions.py, loaded with the jobs.
from bench import durable_jobs  # noqa: E402, F401
