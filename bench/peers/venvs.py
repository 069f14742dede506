"""The interpreters: the project's .venv for bgjobs and Celery, .venv-peers for the others
(made by setup.sh when missing or made from other requirements)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.peers.processes import REPO

HERE = Path(__file__).resolve().parent
PEERS_VENV = REPO / ".venv-peers"
REQUIREMENTS = HERE / "requirements.txt"
STAMP = PEERS_VENV / "requirements.installed"


def main_python() -> str:
    """The interpreter running the bench (bench/peers/run picks the project's .venv)."""
    return sys.executable


def peers_python() -> tuple[str | None, str | None]:
    """(interpreter, None), or (None, why not) if the peers' virtualenv cannot be made."""
    python = PEERS_VENV / "bin" / "python"
    current = python.exists() and STAMP.exists() and STAMP.read_text() == REQUIREMENTS.read_text()
    if not current:
        done = subprocess.run(
            ["bash", str(HERE / "setup.sh")], stderr=subprocess.PIPE, text=True, check=False
        )
        if done.returncode != 0:
            last = done.stderr.strip().splitlines()[-3:] or ["no output"]
            return None, "setup.sh failed: " + " / ".join(last)
    return str(python), None
