"""The processes of a chaos run and the faults done to them.

A ``Stack`` is N real ``manage.py bgjobs worker`` processes (prefork, each with its dispatcher
thread) under a small supervisor that restarts one that dies, as systemd or Kubernetes would.
Faults are real: SIGKILL/SIGSTOP of a whole process group, Redis FLUSHALL or CLIENT PAUSE, the
database refusing every connection.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection

from django_bgjobs.models import UNFINISHED, Job

REPO = Path(__file__).resolve().parents[2]


def child_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.chaos.settings",
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def broker() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def admin_connection():  # type: ignore[no-untyped-def]
    """An autocommit connection to the server's ``postgres`` database (outside the faults)."""
    import psycopg

    params = connection.settings_dict
    return psycopg.connect(
        host=params["HOST"] or "127.0.0.1",
        port=params["PORT"] or 5432,
        user=params["USER"] or None,
        password=params["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    )


def ensure_database() -> None:
    name = connection.settings_dict["NAME"]
    with admin_connection() as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def reset_data() -> None:
    """Empty the job tables, the ledger and the broker: each scenario starts from nothing."""
    with connection.cursor() as cursor:
        # CASCADE: the tables that point at jobs too (schedule slots, webhook receipts).
        cursor.execute(
            "TRUNCATE django_bgjobs_jobrun, django_bgjobs_job, django_bgjobs_eventrecord, "
            "chaos_effect, chaos_execution, chaos_order CASCADE"
        )
    broker().flushdb()


@dataclass
class WorkerProcess:
    index: int
    concurrency: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "django",
                "bgjobs",
                "worker",
                "--concurrency",
                str(self.concurrency),
                "--loglevel",
                "info",
                "--hostname",
                f"chaos{self.index}-{os.getpid()}@%h",
            ],
            env=child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,  # its own process group: a fault hits the whole worker
        )
        log.close()
        self._ready_from = offset

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(self._ready_from)
                if b" ready." in log.read():
                    return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.index} exited at start; see {self.log_path}")
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.index} not ready after {timeout}s; see {self.log_path}")

    def signal_group(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Stack:
    """N workers and a supervisor thread that restarts any that dies."""

    workers: int
    concurrency: int
    log_dir: Path
    procs: list[WorkerProcess] = field(default_factory=list)
    restarts: int = 0
    # Exits the harness did not cause: a worker that gave up on its own (e.g. database outage).
    unexpected_exits: int = 0

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._expected: set[int] = set()  # pids the harness killed on purpose
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.procs = [
            WorkerProcess(i, self.concurrency, self.log_dir / f"worker{i}.log")
            for i in range(self.workers)
        ]
        try:
            for proc in self.procs:
                proc.start()
            for proc in self.procs:
                proc.wait_ready()
        except BaseException:
            self.stop()
            raise
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stopping.wait(0.2):
            for proc in self.procs:
                if proc.proc is None or proc.proc.poll() is None:
                    continue
                with self._lock:
                    if proc.proc.pid not in self._expected:
                        self.unexpected_exits += 1
                    # Kill what is left of its group (pool children of a killed main process).
                    proc.signal_group(signal.SIGKILL)
                    self.restarts += 1
                    proc.start()

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to worker ``index``'s whole process group (main process, pool children)."""
        proc = self.procs[index]
        with self._lock:
            if sig == signal.SIGKILL and proc.proc is not None:
                self._expected.add(proc.proc.pid)
            proc.signal_group(sig)

    def terminate(self, index: int) -> None:
        """SIGTERM to worker ``index``'s main process only, as Kubernetes or systemd
        (KillMode=mixed) stop a worker; it is restarted once it has exited."""
        proc = self.procs[index]
        with self._lock:
            if proc.proc is not None:
                self._expected.add(proc.proc.pid)
                proc.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        with self._lock:
            self._kill_all()

    def _kill_all(self) -> None:
        for proc in self.procs:
            if proc.proc is not None:
                proc.signal_group(signal.SIGCONT)
                proc.signal_group(signal.SIGKILL)  # the group: pool children outlive a main
                proc.proc.wait()


@dataclass
class BeatProcess:
    """A ``manage.py bgjobs beat`` process (django-celery-beat's DatabaseScheduler). Marked
    with this harness's pid in its environment (see ``kill_leftovers``)."""

    index: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _ready_from: int = 0

    def start(self) -> None:
        self._ready_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "django", "bgjobs", "beat", "--loglevel", "info"],
            env=child_env(**{HARNESS_MARK: str(os.getpid())}),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        log.close()

    def wait_ready(self, timeout: float = 60) -> None:
        """Until it has sent a task: it has read the schedules from the database."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(self._ready_from)
                if b"Sending due task" in log.read():
                    return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"beat {self.index} exited at start; see {self.log_path}")
            time.sleep(0.05)
        raise RuntimeError(f"beat {self.index} sent nothing after {timeout}s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last write of its schedule state."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM, repeated (beat can lose one that lands while it publishes: redis-py turns
        the SystemExit into an error beat logs and carries on); SIGKILL after 10 s."""
        for _ in range(5):
            if not self.alive():
                return
            assert self.proc is not None
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(2)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sent(self) -> int:
        """Tasks it has sent, by its log (all its runs)."""
        if not self.log_path.exists():
            return 0
        return self.log_path.read_bytes().count(b"Sending due task")


HARNESS_MARK = "CHAOS_HARNESS_PID"
WORKER_MARK = re.compile(r"--hostname\0chaos\d+-(\d+)@")


def _harness_of(pid: int, cmdline: str) -> str | None:
    """The pid of the harness that started this chaos worker or beat, if it is one."""
    if "bgjobs\0worker" in cmdline:
        mark = WORKER_MARK.search(cmdline)
        return mark[1] if mark else None
    if "bgjobs\0beat" in cmdline:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except OSError:
            return None
        found = re.search(rf"(?:^|\0){HARNESS_MARK}=(\d+)(?:\0|$)", environ)
        return found[1] if found else None
    return None


def kill_leftovers() -> int:
    """Kill chaos workers and beats whose harness is gone (it was killed): they would serve
    this run's queue with their own settings, or fire its schedules. Those of a harness still
    running (another run, on another database) are left alone."""
    found = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().decode(errors="replace")
            pid = int(cmdline.parent.name)
        except (OSError, ValueError):
            continue
        harness_pid = _harness_of(pid, text)
        if harness_pid is None or Path(f"/proc/{harness_pid}").exists():
            continue
        found += 1
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found


def unfinished() -> int:
    return Job.objects.filter(status__in=UNFINISHED).count()


def wait_quiet(timeout: float, poll: float = 0.5, tick: Callable[[], None] | None = None) -> float:
    """Wait until no job is unfinished (two polls in a row). Returns the seconds waited."""
    started = time.monotonic()
    quiet_polls = 0
    while time.monotonic() - started < timeout:
        if tick is not None:
            tick()
        quiet_polls = quiet_polls + 1 if unfinished() == 0 else 0
        if quiet_polls >= 2:
            break
        time.sleep(poll)
    return time.monotonic() - started


def run_web(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """A "web process" (bench/chaos/web.py) that enqueues like views do."""
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.chaos.web", *args],
        env=child_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    log.close()
    return proc


class DatabaseOutage:
    """The database gone: every connection cut and new ones refused
    (``ALLOW_CONNECTIONS false`` + ``pg_terminate_backend``), for this database only, so the
    server and its other databases carry on. To the workers it looks like a server down."""

    def __init__(self) -> None:
        self.name = connection.settings_dict["NAME"]

    def begin(self) -> None:
        connection.close()
        with admin_connection() as admin:
            admin.execute(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.name],
            )

    def end(self) -> None:
        with admin_connection() as admin:
            admin.execute(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS true')
