"""``manage.py bgjobs``: workers, beat, the dispatcher, the all-in-one dev stack; retry; status;
sync-schedules; prune; and the subcommands other apps register (extensions.register_subcommand:
the delivery side's keys, rotate-keys and create-token)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count
from django.utils import timezone

from django_bgjobs import extensions
from django_bgjobs.conf import bgjobs_settings

DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    match = DURATION.match(text.strip())
    if not match:
        raise CommandError(f"--since takes a duration like 45s, 30m, 1h or 2d, not {text!r}")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


def _manage_command() -> list[str]:
    """How to run another manage.py command in a child process, whatever started this one."""
    script = sys.argv[0]
    if script.endswith("manage.py"):
        return [sys.executable, script]
    return [sys.executable, "-m", "django"]


class Command(BaseCommand):
    help = (
        "Background jobs: worker, beat, dispatcher, dev, retry, status, sync-schedules, prune "
        "(and those of the apps built on it: keys, rotate-keys, create-token with "
        "django_bgjobs.delivery)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)

        worker = sub.add_parser("worker", help="Run a Celery worker consuming every BGJOBS queue.")
        worker.add_argument("--concurrency", "-c", type=int, default=None)
        worker.add_argument(
            "--queues",
            "-Q",
            default=None,
            help="Comma-separated queues (default: all of BGJOBS['QUEUES']).",
        )
        worker.add_argument("--loglevel", "-l", default="info")
        worker.add_argument("--pool", "-P", default=None)
        worker.add_argument("--hostname", "-n", default=None)

        beat = sub.add_parser("beat", help="Run celery beat with django-celery-beat's scheduler.")
        beat.add_argument("--loglevel", "-l", default="info")

        dispatcher = sub.add_parser("dispatcher", help="Run the dispatcher on its own.")
        dispatcher.add_argument("--once", action="store_true", help="One pass, then exit.")

        dev = sub.add_parser("dev", help="Web + worker + beat in one command, for development.")
        dev.add_argument("--port", default="8000")
        dev.add_argument("--concurrency", default="2")

        retry = sub.add_parser("retry", help="Give matching jobs a fresh budget of attempts.")
        retry.add_argument("--status", default="dead", choices=["dead", "cancelled"])
        retry.add_argument("--name", default=None, help="Only jobs with this name.")
        retry.add_argument("--since", default=None, help="Only jobs created within: 30m, 1h, 2d.")
        retry.add_argument("--dry-run", action="store_true")

        sub.add_parser("status", help="Jobs per status and queue.")

        sync = sub.add_parser(
            "sync-schedules", help="Reconcile the code's schedules into django-celery-beat."
        )
        sync.add_argument(
            "--check",
            action="store_true",
            help="Only show the drift between code and database; exit 1 if any.",
        )

        prune = sub.add_parser("prune", help="Delete finished jobs past BGJOBS['PRUNE'].")
        prune.add_argument("--dry-run", action="store_true")

        for extra in extensions.subcommands():  # registered by other apps (delivery: keys, ...)
            parser_ = sub.add_parser(extra.name, help=extra.help)
            if extra.add_arguments is not None:
                extra.add_arguments(parser_)

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        for extra in extensions.subcommands():
            if extra.name == action:
                extra.handle(self, options)
                return
        getattr(self, f"handle_{action.replace('-', '_')}")(**options)

    # --- processes ---

    def handle_worker(
        self,
        concurrency: int | None,
        queues: str | None,
        loglevel: str,
        pool: str | None,
        hostname: str | None,
        **options: Any,
    ) -> None:
        from django_bgjobs.celery.app import get_celery_app

        argv = [
            "worker",
            "--loglevel",
            loglevel,
            "--queues",
            queues or ",".join(bgjobs_settings.QUEUES),
        ]
        if concurrency:
            argv += ["--concurrency", str(concurrency)]
        if pool:
            argv += ["--pool", pool]
        if hostname:
            argv += ["--hostname", hostname]
        get_celery_app().worker_main(argv)

    def handle_beat(self, loglevel: str, **options: Any) -> None:
        from django_bgjobs.celery.app import get_celery_app

        get_celery_app().start(
            [
                "beat",
                "--loglevel",
                loglevel,
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
            ]
        )

    def handle_dispatcher(self, once: bool, **options: Any) -> None:
        from django_bgjobs.dispatcher import Dispatcher

        dispatcher = Dispatcher()
        if once:
            sweep = dispatcher.run_once()
            self.stdout.write(
                f"due {sweep.due}, republished {sweep.republished}, expired leases {sweep.expired}"
            )
            return
        signal.signal(signal.SIGTERM, lambda *a: dispatcher.stop(timeout=0))
        self.stdout.write("dispatcher running; Ctrl-C to stop")
        try:
            dispatcher.run_forever()
        except KeyboardInterrupt:
            pass

    def handle_dev(self, port: str, concurrency: str, **options: Any) -> None:
        from django.contrib.auth import get_user_model

        call_command("migrate", interactive=False, verbosity=0)
        users = get_user_model()
        if not users.objects.filter(is_superuser=True).exists():
            users.objects.create_superuser("admin", "admin@example.com", "admin")
            self.stdout.write(self.style.SUCCESS("Created superuser admin / admin"))
        manage = _manage_command()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        children = {
            "web": [*manage, "runserver", port, "--noreload"],
            "worker": [*manage, "bgjobs", "worker", "--concurrency", concurrency],
            "beat": [*manage, "bgjobs", "beat", "--loglevel", "warning"],
        }
        procs = {name: subprocess.Popen(cmd, env=env) for name, cmd in children.items()}
        self.stdout.write(
            self.style.SUCCESS(
                f"web http://127.0.0.1:{port}/  admin http://127.0.0.1:{port}/admin/  "
                f"(pids: {', '.join(f'{n} {p.pid}' for n, p in procs.items())}); Ctrl-C stops all"
            )
        )
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with {proc.returncode}; stopping")
                        stopping = True
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        # The worker lets running jobs finish for SHUTDOWN_GRACE, then releases them and exits.
        deadline = time.monotonic() + float(bgjobs_settings.SHUTDOWN_GRACE) + 10
        for proc in procs.values():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()

    # --- data ---

    def handle_retry(
        self, status: str, name: str | None, since: str | None, dry_run: bool, **options: Any
    ) -> None:
        from django_bgjobs import states
        from django_bgjobs.models import Job

        jobs = Job.objects.filter(status=status)
        if name:
            jobs = jobs.filter(name=name)
        if since:
            jobs = jobs.filter(created_at__gte=timezone.now() - parse_duration(since))
        if dry_run:
            self.stdout.write(f"would retry {jobs.count()} job(s)")
            return
        done = sum(states.retry(job) for job in jobs.iterator())
        self.stdout.write(self.style.SUCCESS(f"retried {done} job(s)"))

    def handle_status(self, **options: Any) -> None:
        from django_bgjobs.models import Job

        rows = (
            Job.objects.values("queue", "status")
            .annotate(n=Count("id"))
            .order_by("queue", "status")
        )
        if not rows:
            self.stdout.write("no jobs")
        for row in rows:
            self.stdout.write(f"{row['queue']:<20} {row['status']:<10} {row['n']}")

    def handle_sync_schedules(self, check: bool, **options: Any) -> None:
        from django_bgjobs.scheduling.sync import sync

        report = sync(apply=not check)
        for line in report.lines():
            self.stdout.write(line)
        if check and report.drift:
            raise CommandError(
                f"{len(report.drift)} schedule(s) differ from the code; run "
                "`manage.py bgjobs sync-schedules`"
            )

    def handle_prune(self, dry_run: bool, **options: Any) -> None:
        from django_bgjobs.maintenance import prune

        counts = prune(dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(
            ", ".join(f"{verb} {n} {status}" for status, n in counts.items())
            or "nothing to prune (BGJOBS['PRUNE'] keeps everything)"
        )
