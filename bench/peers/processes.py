"""The processes the bench starts: one driver per system, and each system's workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[2]


class PeerFailure(RuntimeError):
    """Something went wrong with one system: its row says so, the others carry on."""


def base_env(extra: dict[str, str] | None = None, unset: list[str] | None = None) -> dict[str, str]:
    """The environment of every process started here: the repository importable, output
    unbuffered, and no DJANGO_SETTINGS_MODULE unless a system sets its own."""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    for key in unset or []:
        env.pop(key, None)
    return env


class Driver:
    """``python -m bench.peers.driver ADAPTER`` in the system's virtualenv, one JSON request and
    answer a line."""

    def __init__(self, python: str, adapter: str, log_path: Path, env: dict[str, str]) -> None:
        self.adapter = adapter
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [python, "-m", "bench.peers.driver", adapter],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,  # a Ctrl-C reaches the bench, which stops it in order
        )

    def request(self, op: str, **arguments: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError) as exc:
            raise PeerFailure(f"driver gone ({exc}): {tail(self.log_path)}") from exc
        if not line:
            raise PeerFailure(f"driver exited: {tail(self.log_path, 3)}")
        answer = json.loads(line)
        if "error" in answer:
            raise PeerFailure(f"{op}: {answer['error']}")
        return answer["ok"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.close()
                self.proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


class WorkerGroup:
    """A system's worker processes, each in a session (process group) of its own, so that
    stopping one reaches its children and nothing else."""

    def __init__(self, commands: list[list[str]], env: dict[str, str], log_prefix: Path) -> None:
        self.spawned_at = time.time()
        self.logs: list[Path] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self._files: list[TextIO] = []
        for i, command in enumerate(commands):
            log = log_prefix.with_name(f"{log_prefix.name}-{i}.log")
            handle = open(log, "w")  # noqa: SIM115 - closed in stop()
            self.logs.append(log)
            self._files.append(handle)
            self.procs.append(
                subprocess.Popen(
                    command,
                    cwd=REPO,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def check_alive(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                raise PeerFailure(f"worker exited with {proc.returncode}: {tail(log, 3)}")

    def tail(self) -> str:
        return "\n".join(tail(log) for log in self.logs)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (each system's warm shutdown), then wait for the whole process group to be
        gone; SIGKILL to the group only after ``timeout``."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            while _group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)  # children (prefork pool, qcluster's processes) exit after
            if _group_alive(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for handle in self._files:
            handle.close()

    def __enter__(self) -> WorkerGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader still counts: reap it if it is ours, then look again.
    return _has_live_member(pgid)


def _has_live_member(pgid: int) -> bool:
    """True if a process of group ``pgid`` other than a zombie exists (from /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
