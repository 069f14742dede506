"""Node.js for the tests that run the official npm SDKs: a package installed by npm into a
temporary folder (outside the repository, install scripts off: nothing but npm packages is
downloaded), and the environment a script runs in."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def npm_install(tmp_path_factory: pytest.TempPathFactory, spec: str) -> Path:
    """A folder with ``spec`` installed; the test is skipped without node and npm."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip(f"node and npm are needed to run {spec}")
    folder = tmp_path_factory.mktemp(spec.strip("@").replace("/", "-").split("@")[0])
    (folder / "package.json").write_text('{"name": "sdk-test", "private": true}')
    done = subprocess.run(
        ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", spec],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.skip(f"npm install {spec} failed: {done.stderr[-500:]}")
    return folder


def run_script(folder: Path, script: Path, *args: str, timeout: float) -> str:
    """Run ``script`` (copied into ``folder``, where its packages are) with node; its last line
    of output. The SDKs read QSTASH_* and UPSTASH_* variables before their arguments: none
    from this environment."""
    shutil.copyfile(script, folder / script.name)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QSTASH_", "UPSTASH_")) and not k.endswith("_QSTASH_URL")
    }
    done = subprocess.run(
        ["node", str(folder / script.name), *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]
