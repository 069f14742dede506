"""The bgjobs side's job (found by bgjobs' autodiscovery: ``bench.peers`` is an installed app
in bgjobs_settings)."""

from bench.peers import body
from django_bgjobs import bgjob


@bgjob(name="bench.peers.noop")
def noop(n: int, published: float) -> None:
    body.noop(n, published)
