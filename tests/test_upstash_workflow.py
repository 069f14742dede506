"""An unchanged Upstash Workflow app (``@upstash/workflow``'s ``serve``, pinned in WORKFLOW_SDK)
run with Node.js against the API on a live server and a real worker: ``trigger``,
``context.run``, ``context.sleep``, ``context.waitForEvent`` notified and timed out,
``getWaiters``, ``notify`` and ``cancel`` (tests/upstash_workflow_app.js). Skipped when node
and npm are not there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from django_bgjobs.delivery.models import Message, WorkflowRun, WorkflowWaiter
from tests.node import npm_install, run_script

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

WORKFLOW_SDK = "@upstash/workflow@1.3.3"  # with @upstash/qstash as it depends on it
APP = Path(__file__).with_name("upstash_workflow_app.js")


@pytest.fixture(scope="session")
def workflow_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return npm_install(tmp_path_factory, WORKFLOW_SDK)


def test_an_upstash_workflow_app_runs_unchanged(
    worker, workflow_sdk: Path, token: str, base_url: str
):
    out: dict[str, Any] = json.loads(run_script(workflow_sdk, APP, base_url, token, timeout=120))
    first, second = out["runIds"]

    # Each step ran once; the run saw the notified event, and the other wait time out.
    assert sorted(out["ran"]) == ["double o1", "double o2", "finish o1"]
    [finished] = out["finished"]
    assert finished == {
        "runId": first,
        "result": {
            "doubled": 42,
            "approved": {"by": "ops"},
            "approvalTimedOut": False,
            "neverTimedOut": True,
        },
    }
    [waiter] = out["waiters"]
    assert waiter["url"].endswith("/workflow") and waiter["deadline"] > 0
    [notified] = out["notified"]
    assert notified["messageId"].startswith("msg_") and notified["error"] == ""
    # The cancelled run: ended, its wait gone, nothing more delivered.
    assert out["cancel"] == {"cancelled": 1} and out["notifiedAfterCancel"] == []
    runs = {run.pk: run for run in WorkflowRun.objects.all()}
    assert runs[first].ended_at is not None and not runs[first].cancelled
    assert runs[second].ended_at is not None and runs[second].cancelled
    assert not WorkflowWaiter.objects.filter(ended_at__isnull=True).exists()
    # The steps of the first run: the trigger, a step, the sleep, the two waits' steps back.
    assert Message.objects.filter(workflow_run_id=first).count() >= 5
