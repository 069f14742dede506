"""Every public method of the npm SDK (``@upstash/qstash``, pinned in JS_SDK) against the API
on a live server and a real worker, with Node.js: tests/qstash_conformance.js runs one check
per method (deliveries to its own HTTP server on 127.0.0.1, verified with the SDK's stock
``Receiver``) and each test here asserts one method's check. They join the Python SDK's in the
method x client matrix (tests/sdk_matrix.py). Skipped when node and npm are not there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from tests.node import npm_install, run_script
from tests.sdk_matrix import sdk_method

pytestmark = pytest.mark.worker

JS_SDK = "@upstash/qstash@2.12.0"  # written against; the README says which versions are supported
SCRIPT = Path(__file__).with_name("qstash_conformance.js")

# The script's checks, in its order: one per public method, and the callback count that
# QStash documents (one callback per attempt, one failure callback).
METHODS = [
    "messages.deleteAll", "messages.cancel", "messages.delete", "messages.deleteMany",
    "messages.get", "publish", "publishJSON", "publishJSON: retries, callback, failureCallback",
    "batch", "batchJSON", "logs", "events",
    "queue.upsert", "queue.get", "queue.list", "queue.enqueue", "queue.enqueueJSON",
    "queue.pause", "queue.resume", "queue.delete",
    "schedules.create", "schedules.get", "schedules.list", "schedules.pause",
    "schedules.resume", "schedules.delete",
    *(f"{api}.{name}" for api in ("urlGroups", "topics")
      for name in ("addEndpoints", "get", "list", "removeEndpoints", "delete")),
    "dlq.listMessages", "dlq.retry", "dlq.delete", "dlq.deleteMany",
    "flowControl.get", "flowControl.getGlobalParallelism", "flowControl.pause",
    "flowControl.resume", "flowControl.pin", "flowControl.unpin", "flowControl.resetRate",
    "chat.getAuthorizationToken", "chat.create", "chat.prompt", "chat.createThirdParty",
    "workflow.cancel", "Receiver.verify",
]  # fmt: skip


@pytest.fixture(scope="session")
def js_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return npm_install(tmp_path_factory, JS_SDK)


@pytest.fixture(scope="module")
def js_results(
    js_sdk: Path, live_server: Any, session_worker: Any, django_db_blocker: Any
) -> Iterator[dict[str, Any]]:
    """The script's results, run once for the module against the live server; its rows are
    flushed afterwards, as a transactional test's are."""
    from django_bgjobs.delivery.api import tokens

    if session_worker.proc is None or session_worker.proc.poll() is not None:
        session_worker.start()
    with django_db_blocker.unblock():
        token = tokens.create_token("js conformance")[1]
        try:
            last_line = run_script(js_sdk, SCRIPT, live_server.url + "/qstash", token, timeout=300)
        finally:
            call_command("flush", interactive=False, verbosity=0)
    yield json.loads(last_line)


# Checked to be refused with a 501 that names the capability (the README lists them).
NOT_OFFERED = {"chat.create", "chat.prompt"}
# Methods that never call the server (checked all the same: they work beside it).
SDK_ONLY = {"chat.getAuthorizationToken", "chat.createThirdParty"}


def cell(method: str) -> str:
    return (
        "501 not offered"
        if method in NOT_OFFERED
        else "ok (SDK only)"
        if method in SDK_ONLY
        else "ok"
    )


@pytest.mark.parametrize(
    "method",
    [
        pytest.param(
            m,
            marks=sdk_method(m, "js", cell(m)),
            id=m,
        )
        for m in METHODS
    ],
)
def test_js_sdk_method(js_results: dict[str, Any], method: str):
    result = js_results["results"].get(method)
    assert result is not None, f"the script ran no check named {method!r}"
    assert result["ok"], result["error"]


def test_every_public_method_of_the_js_sdk_has_a_check(js_results: dict[str, Any]):
    assert js_results["untested"] == []
    assert sorted(js_results["results"]) == sorted(METHODS)
