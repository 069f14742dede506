"""The Upstash Workflow protocol through Django's test client, one endpoint at a time (the
whole app, with Node.js, is tests/test_upstash_workflow.py): a run's steps, its end, waits,
notify, timeouts, cancel, and the parts not offered."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from django_bgjobs.delivery.api import workflow_runs
from django_bgjobs.delivery.models import Message, WorkflowRun, WorkflowStep, WorkflowWaiter
from django_bgjobs.delivery.workflow_steps import body_sent
from django_bgjobs.testing import capture_jobs

pytestmark = pytest.mark.django_db

BASE = "/qstash/v2"
URL = "https://app.example.com/workflow"
RUN = "wfr_test1"
STEP_HEADERS = {
    "Upstash-Workflow-RunId": RUN,
    "Upstash-Workflow-Init": "false",
    "Upstash-Workflow-Url": URL,
    "Upstash-Workflow-CallType": "step",
    "Upstash-Forward-Upstash-Workflow-Sdk-Version": "1",
}


@pytest.fixture(autouse=True)
def captured():
    with capture_jobs() as jobs:
        yield jobs


@pytest.fixture
def api(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def publish(api: Client, body: object, **headers: str) -> str:
    response = api.post(
        f"{BASE}/publish/{URL}",
        data=json.dumps(body),
        content_type="application/json",
        headers={**STEP_HEADERS, **headers},
    )
    assert response.status_code == 201, response.content
    return str(response.json()["messageId"])


def started(api: Client) -> tuple[str, str]:
    """A run's trigger and its first step: their message ids."""
    trigger = publish(api, {"n": 21}, **{"Upstash-Workflow-Init": "true"})
    step = {"stepId": 1, "stepName": "double", "stepType": "Run", "out": "42", "concurrent": 1}
    return trigger, publish(api, step)


def test_a_runs_steps_are_its_messages_read_back_in_order(api: Client):
    trigger, step = started(api)
    steps = api.get(f"{BASE}/workflows/runs/{RUN}").json()
    assert [(s["messageId"], s["callType"]) for s in steps] == [(trigger, "step"), (step, "step")]
    assert json.loads(base64.b64decode(steps[0]["body"])) == {"n": 21}
    assert json.loads(base64.b64decode(steps[1]["body"]))["out"] == "42"
    message = Message.objects.get(pk=step)
    # Delivered with the workflow headers and an empty body (the SDK reads the steps back).
    headers = {name.lower(): value for name, value in message.headers.items()}
    assert headers["upstash-workflow-runid"] == RUN
    assert headers["upstash-workflow-sdk-version"] == "1"
    assert body_sent(message) == b""
    assert WorkflowRun.objects.get(pk=RUN).url == URL


def test_an_ended_run_is_gone_and_takes_no_more_steps(api: Client):
    started(api)
    response = api.delete(f"{BASE}/workflows/runs/{RUN}?cancel=false", data='"done"')
    assert response.status_code == 200
    run = WorkflowRun.objects.get(pk=RUN)
    assert run.ended_at is not None and not run.cancelled and run.result == '"done"'
    assert api.get(f"{BASE}/workflows/runs/{RUN}").status_code == 404
    response = api.post(
        f"{BASE}/publish/{URL}", data="{}", content_type="application/json", headers=STEP_HEADERS
    )
    assert response.status_code == 400 and "has ended" in response.json()["error"]
    assert api.delete(f"{BASE}/workflows/runs/wfr_nope").status_code == 404


def wait(api: Client, event: str = "evt-1", timeout: str = "30s") -> None:
    request = {
        "url": URL,
        "timeout": timeout,
        "timeoutUrl": URL,
        "timeoutHeaders": {name: [value] for name, value in STEP_HEADERS.items()},
        "step": {"stepId": 2, "stepType": "Wait", "stepName": "approval", "concurrent": 1},
    }
    response = api.post(
        f"{BASE}/wait/{event}",
        data=json.dumps(request),
        content_type="application/json",
        headers=STEP_HEADERS,
    )
    assert response.status_code == 200, response.content


def test_notify_sends_the_wait_step_back_with_the_event(api: Client):
    started(api)
    wait(api)
    [waiter] = api.get(f"{BASE}/waiters/evt-1").json()
    assert waiter["url"] == URL and waiter["deadline"] > timezone.now().timestamp()
    [answer] = api.post(
        f"{BASE}/notify/evt-1", data='{"by": "ops"}', content_type="text/plain"
    ).json()
    message = Message.objects.get(pk=answer["messageId"])
    step = json.loads(bytes(message.body))
    assert step["stepName"] == "approval" and step["waitTimeout"] is False
    assert json.loads(base64.b64decode(step["out"])) == {"by": "ops"}
    assert message.workflow_run_id == RUN and message.url == URL
    assert {k.lower(): v for k, v in message.headers.items()}["upstash-workflow-calltype"] == "step"
    # Once: a second notify finds no waiter.
    assert api.post(f"{BASE}/notify/evt-1", data="{}", content_type="text/plain").json() == []
    assert api.get(f"{BASE}/waiters/evt-1").json() == []


def test_a_wait_past_its_deadline_is_sent_back_timed_out(api: Client):
    started(api)
    wait(api, timeout="1s")
    assert workflow_runs.time_out_waits(timezone.now()) == 0  # not yet
    assert workflow_runs.next_deadline() is not None
    assert workflow_runs.time_out_waits(timezone.now() + timedelta(seconds=2)) == 1
    waiter = WorkflowWaiter.objects.get()
    step = json.loads(bytes(waiter.message.body))
    assert step["waitTimeout"] is True and "out" not in step
    assert workflow_runs.next_deadline() is None


def test_cancel_ends_the_run_its_waits_and_its_pending_steps(api: Client):
    started(api)
    later = publish(api, {"stepId": 3}, **{"Upstash-Delay": "1h"})
    wait(api)
    response = api.delete(f"{BASE}/workflows/runs?workflowRunIds={RUN}")
    assert response.json() == {"cancelled": 1}
    assert WorkflowRun.objects.get(pk=RUN).cancelled
    assert Message.objects.get(pk=later).job.status == "cancelled"
    assert api.post(f"{BASE}/notify/evt-1", data="{}", content_type="text/plain").json() == []


@pytest.mark.parametrize(
    "headers",
    [{"Upstash-Workflow-CallType": "toCallback"}, {"Upstash-Workflow-Invoke": "true"}],
    ids=["context.call", "context.invoke"],
)
def test_call_and_invoke_answer_501_naming_them(api: Client, headers: dict[str, str]):
    response = api.post(
        f"{BASE}/publish/https://api.example.com/x",
        data="{}",
        content_type="application/json",
        headers={**STEP_HEADERS, **headers},
    )
    assert response.status_code == 501
    assert "context.call and context.invoke are not offered" in response.json()["error"]


@pytest.mark.django_db(transaction=True)
def test_prune_takes_the_steps_with_their_jobs_and_ended_runs_with_their_waits(api: Client):
    from django.db import router

    from django_bgjobs.delivery.prune import MessagePruning

    started(api)
    wait(api)
    [answer] = api.post(f"{BASE}/notify/evt-1", data="{}", content_type="text/plain").json()
    notified = Message.objects.get(pk=answer["messageId"])
    # The messages go with their jobs (a raw DELETE: no FK left behind); the running run keeps
    # its steps, so the app's SDK still reads the whole run back.
    jobs = list(Message.objects.values_list("job_id", flat=True))
    MessagePruning().on_jobs(jobs, router.db_for_write(Message))
    assert not Message.objects.exists() and WorkflowWaiter.objects.get().message is None
    steps = api.get(f"{BASE}/workflows/runs/{RUN}").json()
    assert [s["messageId"] for s in steps][-1] == notified.pk and len(steps) == 3
    assert api.delete(f"{BASE}/workflows/runs/{RUN}?cancel=false").status_code == 200
    MessagePruning().after(timezone.now() + timedelta(days=3650))
    assert not WorkflowRun.objects.exists() and not WorkflowWaiter.objects.exists()
    assert not WorkflowStep.objects.exists()


def test_the_admin_lists_runs_with_their_state_and_waits(api: Client, admin_client: Client):
    from django.urls import reverse

    started(api)
    wait(api)
    html = admin_client.get(reverse("admin:bgjobs_delivery_workflowrun_changelist")).content
    assert RUN in html.decode() and "running" in html.decode()
    page = admin_client.get(reverse("admin:bgjobs_delivery_workflowrun_change", args=[RUN]))
    assert "evt-1" in page.content.decode()  # its wait
    assert f"?q={RUN}" in page.content.decode()  # its steps, in the messages' list


def test_a_wait_that_could_not_be_sent_back_is_refused(api: Client):
    started(api)
    response = api.post(
        f"{BASE}/wait/evt-bad",
        data=json.dumps({"url": URL, "timeoutUrl": "ftp://nowhere", "step": {"stepId": 2}}),
        content_type="application/json",
        headers=STEP_HEADERS,
    )
    assert response.status_code == 400 and "ftp://nowhere" in response.json()["error"]
    assert not WorkflowWaiter.objects.exists()


def test_a_run_that_ends_ends_its_waits(api: Client):
    started(api)
    wait(api)
    assert api.delete(f"{BASE}/workflows/runs/{RUN}?cancel=false").status_code == 200
    assert WorkflowWaiter.objects.get().ended_at is not None
    assert api.post(f"{BASE}/notify/evt-1", data="{}", content_type="text/plain").json() == []
