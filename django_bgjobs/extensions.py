"""The points where another app plugs into the core, registered from its ``AppConfig.ready()``.

The core imports nothing from the apps built on it (``django_bgjobs.delivery`` is one): they
register here, and the core calls what is registered. Each registry is keyed by name, so a
``ready()`` that runs twice (tests, autoreload) replaces its entries instead of adding copies.

- :func:`register_sweep`: work for the dispatcher's pass, run after the jobs' own sweep on
  every worker, every ``DISPATCH_INTERVAL``.
- :func:`register_next_due`: when the app's sweep next has work that comes due with time
  (a rate window that opens, a delayed message): the dispatcher wakes then for a whole pass,
  instead of up to ``DISPATCH_INTERVAL`` later.
- :func:`register_prune_hook`: rows of another app that go with the jobs ``prune`` deletes,
  and its own pruning after.
- :func:`register_subcommand`: a ``manage.py bgjobs <name>`` subcommand.
- :func:`register_key_source`: signing keys an inbound webhook endpoint verifies with,
  named in ``BGJOBS["WEBHOOKS"][...]["secrets"]`` instead of a list of keys.
- :func:`register_job_link`: a line on the admin's job page that leads to what the job
  works for (a delivery job's message, for example).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from django.core.management.base import BaseCommand

    from django_bgjobs.models import Job

Sweep = Callable[[], object]
# The HTML of the job page's line for this job (escaped, e.g. with format_html), or None when
# the job has nothing of this kind.
JobLink = Callable[["Job"], "str | None"]

# When an app's sweep next has work that time makes due; None: nothing waits on time.
NextDue = Callable[[], "datetime | None"]

_sweeps: dict[str, Sweep] = {}
_next_due: dict[str, NextDue] = {}
_prune_hooks: dict[str, PruneHook] = {}
_subcommands: dict[str, Subcommand] = {}
_key_sources: dict[str, KeySource] = {}
_job_links: dict[str, tuple[str, JobLink]] = {}


class PruneHook(Protocol):
    def on_jobs(self, ids: list[Any], using: str) -> None:
        """Inside the batch's transaction, before the jobs ``ids`` are deleted: delete or
        detach the rows that point at them (the jobs go with a raw DELETE, no cascade)."""

    def after(self, now: datetime) -> None:
        """Once the jobs are pruned: prune what has no job to go with."""


@dataclass(frozen=True, slots=True)
class Subcommand:
    name: str
    help: str
    handle: Callable[[BaseCommand, dict[str, Any]], None]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None


def register_sweep(name: str, sweep: Sweep) -> None:
    """Run ``sweep()`` in every dispatcher pass. It must be quick and safe to run on several
    workers at once. An exception is logged and the pass goes on; a DatabaseError ends the
    pass, which is retried after DISPATCH_INTERVAL."""
    _sweeps[name] = sweep


def sweeps() -> list[tuple[str, Sweep]]:
    return list(_sweeps.items())


def register_next_due(name: str, next_due: NextDue) -> None:
    """Ask the dispatcher to run a whole pass (its sweeps included) when ``next_due()`` says,
    if that is before its next one. Called before each pause: it must be a quick read."""
    _next_due[name] = next_due


def next_due_hints() -> list[tuple[str, NextDue]]:
    return list(_next_due.items())


def register_prune_hook(name: str, hook: PruneHook) -> None:
    _prune_hooks[name] = hook


def prune_hooks() -> list[PruneHook]:
    return list(_prune_hooks.values())


@dataclass(frozen=True, slots=True)
class KeySource:
    """Keys an inbound endpoint of ``scheme`` verifies with: ``keys()`` is asked at each request,
    so a rotation is seen at once."""

    name: str
    scheme: str
    keys: Callable[[], Sequence[str]]
    description: str


def register_subcommand(subcommand: Subcommand) -> None:
    _subcommands[subcommand.name] = subcommand


def subcommands() -> list[Subcommand]:
    return list(_subcommands.values())


def register_key_source(source: KeySource) -> None:
    """``BGJOBS["WEBHOOKS"][...]["secrets"] = source.name`` selects it."""
    _key_sources[source.name] = source


def key_source(name: str) -> KeySource | None:
    return _key_sources.get(name)


def register_job_link(name: str, label: str, link: JobLink) -> None:
    _job_links[name] = (label, link)


def job_links() -> list[tuple[str, JobLink]]:
    return list(_job_links.values())
