"""The SDK conformance matrix: each test marked ``@sdk_method("group.method")`` is one cell,
its row the method and its column the client (the test's ``sdk`` parameter, or ``js``). The
table is printed at the end of the run (hooked up in conftest.py) and written to
``$BGJOBS_TEST_STATE/sdk-matrix.md`` when that is set."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

_cells: dict[str, dict[str, str]] = defaultdict(dict)


def sdk_method(name: str, client: str | None = None, passed: str = "ok") -> pytest.MarkDecorator:
    """Mark a test as the conformance test of SDK method ``name`` (for ``client`` when the
    test is not parametrized by ``sdk``); ``passed`` is what its cell says when it passes
    (a test that the server refuses a capability it does not offer passes as "501")."""
    return pytest.mark.sdk_method(name, client=client, passed=passed)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    marker = item.get_closest_marker("sdk_method")
    if marker is None or (report.when != "call" and report.passed):
        return report
    callspec = getattr(item, "callspec", None)
    client = marker.kwargs.get("client") or (callspec.params.get("sdk") if callspec else "")
    passed = marker.kwargs.get("passed", "ok")
    cell = passed if report.passed else "skipped" if report.skipped else "FAIL"
    row = _cells[marker.args[0]]
    if row.get(client, passed) == passed:  # a failed setup or teardown outranks a passed call
        row[client] = cell
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _cells:
        return
    clients = sorted({client for row in _cells.values() for client in row})
    lines = [
        "| method | " + " | ".join(clients) + " |",
        "|---|" + "---|" * len(clients),
        *(
            f"| {method} | " + " | ".join(_cells[method].get(c, "") for c in clients) + " |"
            for method in sorted(_cells)
        ),
    ]
    terminalreporter.write_sep("=", "QStash SDK conformance: method x client")
    for line in lines:
        terminalreporter.write_line(line)
    state = os.environ.get("BGJOBS_TEST_STATE")
    if state:
        Path(state).mkdir(parents=True, exist_ok=True)
        (Path(state) / "sdk-matrix.md").write_text("\n".join(lines) + "\n")
