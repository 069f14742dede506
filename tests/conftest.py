"""Fixtures: a real Celery worker process on the test database and the configured broker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from tests.http_receiver import Receiver
from tests.sdk_matrix import pytest_runtest_makereport, pytest_terminal_summary

__all__ = ["pytest_runtest_makereport", "pytest_terminal_summary"]  # hooks, re-exported

REPO = Path(__file__).resolve().parent.parent


def _clear_broker() -> None:
    url = settings.CELERY_BROKER_URL
    if url.startswith("redis"):
        import redis

        redis.Redis.from_url(url).flushdb()
    elif url.startswith("filesystem"):
        for folder in ("data_folder_in", "control_folder"):
            path = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS[folder])
            for item in path.glob("*"):
                item.unlink()


class WorkerProcess:
    """A `manage.py bgjobs worker` subprocess (prefork, 2 children) with its dispatcher."""

    def __init__(
        self,
        db_name: str,
        log_path: Path,
        concurrency: int = 2,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.db_name = db_name
        self.extra_env = env or {}  # more environment (settings read from it: tests/settings.py)
        self.log_path = log_path
        self.concurrency = concurrency
        self.command = command or [
            sys.executable,
            str(REPO / "manage.py"),
            "bgjobs",
            "worker",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "info",
            "--hostname",
            f"tests-{os.getpid()}@%h",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "BGJOBS_TEST_DB_NAME": self.db_name,
            "PYTHONPATH": str(REPO),
            **self.extra_env,
            **extra,
        }

    def start(self) -> None:
        self._log = open(self.log_path, "ab")
        start_offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            self.command,
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(start_offset)
                if b" ready." in log.read():
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early; see {self.log_path}")
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after 60s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc is not None:
            self._log.close()

    def children(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


# The session's worker, once a test has started it (other tests may need it out of the way).
_session_workers: list[WorkerProcess] = []


@pytest.fixture
def no_session_worker() -> None:
    """Stop the session's worker (and its dispatcher) for a test that must own the jobs. The
    next test that asks for ``worker`` starts it again: tests that own the jobs, one after
    another, share one stop (a start costs seconds)."""
    for running in _session_workers:
        if running.proc is not None and running.proc.poll() is None:
            running.stop()


@pytest.fixture(scope="session")
def session_worker(django_db_setup: None, django_db_blocker: Any) -> Iterator[WorkerProcess]:
    with django_db_blocker.unblock():
        db_name = str(connection.settings_dict["NAME"])
    _clear_broker()
    proc = WorkerProcess(db_name, Path(settings.STATE_DIR) / "worker.log")
    _session_workers.append(proc)
    yield proc
    proc.stop()


@pytest.fixture
def worker(session_worker: WorkerProcess) -> WorkerProcess:
    """The session's worker process, started if it is not running."""
    if session_worker.proc is None or session_worker.proc.poll() is not None:
        session_worker.start()
    return session_worker


def wait_for(condition, timeout: float = 20.0, poll: float = 0.05, message: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll until ``condition()`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(poll)


@pytest.fixture
def backend_is_postgres() -> bool:
    return connection.vendor == "postgresql"


class BeatProcess(WorkerProcess):
    """A `manage.py bgjobs beat` subprocess (django-celery-beat's DatabaseScheduler, reading
    the test database). Ready once it has sent a task: it has read the schedules."""

    SENT = re.compile(rb"Sending due task (\S+) ")

    def __init__(self, db_name: str, log_path: Path, env: dict[str, str] | None = None) -> None:
        super().__init__(
            db_name,
            log_path,
            env=env,
            command=[
                sys.executable,
                str(REPO / "manage.py"),
                "bgjobs",
                "beat",
                "--loglevel",
                "info",
            ],
        )

    def start(self) -> None:
        self._log = open(self.log_path, "ab")
        start_offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            self.command,
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(start_offset)
                if self.SENT.search(log.read()):
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"beat exited early; see {self.log_path}")
            time.sleep(0.05)
        raise RuntimeError(f"beat sent nothing after 60s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM, repeated: celery beat can lose one that lands while it publishes (redis-py
        turns the SystemExit into an error that beat logs as "Couldn't apply scheduled task",
        and beat carries on). SIGKILL after 10 s."""
        if self.proc is not None:
            for _ in range(5):
                if self.proc.poll() is not None:
                    break
                os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(2)
                except subprocess.TimeoutExpired:
                    pass
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last sync of its schedule state."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def sent(self, name: str | None = None) -> int:
        """Tasks it logged as sent (``name``: of that PeriodicTask only)."""
        found = self.SENT.findall(self.log_path.read_bytes())
        return sum(1 for task in found if name is None or task.decode() == name)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 that records what outbound delivery sends it."""
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def token(db: None) -> str:
    """A token of the QStash-compatible API (``bgjobs create-token``)."""
    from django_bgjobs.delivery.api import tokens

    return tokens.create_token("sdk tests")[1]


@pytest.fixture
def base_url(live_server: Any) -> str:
    """The API's root on the live server, the SDKs' ``base_url``."""
    return live_server.url + "/qstash"
