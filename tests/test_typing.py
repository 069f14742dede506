"""@bgjob is typed with ParamSpec: mypy rejects enqueue() calls that do not fit the function."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO

SNIPPET = textwrap.dedent(
    """
    from django_bgjobs import JobContext, bgjob

    @bgjob
    def send_welcome_email(user_id: int) -> dict[str, str]:
        return {}

    @bgjob(queue="default", takes_context=True)
    def with_context(ctx: JobContext, user_id: int) -> None: ...

    send_welcome_email.enqueue(1)
    send_welcome_email.enqueue("x")  # line 12: wrong type
    with_context.enqueue(1)
    with_context.enqueue()  # line 14: missing argument
    send_welcome_email.using(priority=3).prepare(user_id=2)
    """
)


@pytest.mark.skipif(
    shutil.which("mypy", path=str(Path(sys.executable).parent)) is None,
    reason="mypy is installed by scripts/test",
)
def test_enqueue_arguments_are_type_checked(tmp_path):
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    config = tmp_path / "mypy.ini"  # not the project's strict config: only the call sites matter
    config.write_text("[mypy]\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--ignore-missing-imports",
            "--follow-imports=silent",
            "--no-incremental",
            "--python-version",
            "3.12",
            str(snippet),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["12", "14"], result.stdout
    assert 'incompatible type "str"; expected "int"' in errors[0]
