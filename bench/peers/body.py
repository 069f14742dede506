"""The no-op job body all the systems run, and the records it leaves behind.

Each execution appends one fixed-size line to a file of its own process in the directory named
by ``BENCH_PEERS_RECORDS``: the job's number, when it was enqueued (0 in the drain), when the
body started and when it ended. Files and not a database or Redis, so that the body adds nothing
to the PostgreSQL and Redis counters the bench reads, and the bench can poll for completion
without touching the system under test. Imports nothing outside the standard library: it runs in
both virtualenvs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

RECORDS_ENV = "BENCH_PEERS_RECORDS"
RECORD_SIZE = 64  # "%9d %17.6f %17.6f %17.6f\n"

_out: tuple[int, int] | None = None  # (pid, fd): prefork children open their own file


def noop(n: int, published: float = 0.0) -> None:
    """Does nothing, and says when it did it."""
    started = time.time()
    ended = time.time()
    _write(f"{n:9d} {published:17.6f} {started:17.6f} {ended:17.6f}\n")


def _write(line: str) -> None:
    global _out
    folder = os.environ.get(RECORDS_ENV)
    if not folder:
        return  # run outside a measurement (e.g. by hand): nothing to record
    pid = os.getpid()
    if _out is None or _out[0] != pid:
        # O_APPEND and one write() per record: a record is never split, and unbuffered, so the
        # bench sees it at once.
        fd = os.open(Path(folder) / f"{pid}.rec", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        _out = (pid, fd)
    os.write(_out[1], line.encode())


@dataclass(frozen=True)
class Record:
    n: int
    published: float
    started: float
    ended: float


def count(folder: Path) -> int:
    """Records written so far (cheap: file sizes only)."""
    return sum(path.stat().st_size for path in folder.glob("*.rec")) // RECORD_SIZE


def read(folder: Path) -> list[Record]:
    """Every complete record in the folder."""
    records = []
    for path in folder.glob("*.rec"):
        data = path.read_bytes()
        whole = len(data) - len(data) % RECORD_SIZE
        for offset in range(0, whole, RECORD_SIZE):
            n, published, started, ended = data[offset : offset + RECORD_SIZE].split()
            records.append(Record(int(n), float(published), float(started), float(ended)))
    return records
