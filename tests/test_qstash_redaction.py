"""``Upstash-Redact-Fields`` applied wherever a message is shown (the message API, the logs, the
DLQ, a callback's source fields, a schedule, the admin) while the delivery and a DLQ retry
send the values as published; and several labels on one message, found by any of them.
Deliveries run in this process (``capture_jobs().run_all()``) against a real HTTP server."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from qstash.message import parse_message_response

from django_bgjobs.delivery import lifecycle
from django_bgjobs.delivery.models import Message, MessageSchedule
from django_bgjobs.delivery.publish import PublishError, publish
from django_bgjobs.testing import capture_jobs
from tests.http_receiver import Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_session_worker")]

BASE = "/qstash/v2"
BODY = '{"card": "4242 4242 4242 4242"}'
SECRET = "Bearer sk_live_secret"


def redacted(value: str) -> str:
    return "REDACTED:" + hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture
def api(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def publish_via_api(api: Client, url: str, fields: str, **headers: str) -> str:
    response = api.post(
        f"{BASE}/publish/{url}",
        data=BODY,
        content_type="application/json",
        headers={
            "Upstash-Redact-Fields": fields,
            "Upstash-Forward-Authorization": SECRET,
            "Upstash-Forward-X-Trace": "t1",
            **headers,
        },
    )
    assert response.status_code == 201, response.content
    return str(response.json()["messageId"])


def shown(data: dict[str, Any]) -> tuple[str, str, str]:
    """The body and the two headers as the message, DLQ and schedule APIs show them."""
    header = {k.lower(): v for k, v in data["header"].items()}
    return data["body"], header["authorization"][0], header["x-trace"][0]


# (Upstash-Redact-Fields, what is redacted: body, Authorization, X-Trace)
KINDS = [
    ("body", (True, False, False)),
    ("header[Authorization]", (False, True, False)),
    ("header", (False, True, True)),
    ("body,header[Authorization]", (True, True, False)),
]


def expected(kind: tuple[bool, bool, bool]) -> tuple[str, str, str]:
    return tuple(  # type: ignore[return-value]
        redacted(value) if hidden else value
        for value, hidden in zip((BODY, SECRET, "t1"), kind, strict=True)
    )


@pytest.mark.parametrize("fields, kind", KINDS, ids=[k for k, _ in KINDS])
def test_redacted_fields_are_hidden_wherever_the_message_is_shown(
    api: Client, admin_client: Client, receiver: Receiver, fields: str, kind: tuple
):
    receiver.answer("/card", (500, {}, b"no"))
    want = expected(kind)
    with capture_jobs() as captured:
        message_id = publish_via_api(
            api,
            receiver.url("/card"),
            fields,
            **{"Upstash-Retries": "0", "Upstash-Callback": receiver.url("/cb")},
        )
        got = api.get(f"{BASE}/messages/{message_id}").json()
        assert shown(got) == want
        parse_message_response(got)  # the SDK still reads it
        captured.run_all()

    # Delivered as published.
    [hit] = receiver.at("/card")
    assert hit.body.decode() == BODY and hit.headers["authorization"] == SECRET
    # The callback reports on the message as it may be shown.
    [callback] = receiver.at("/cb")
    report = json.loads(callback.body)
    body = base64.b64decode(report["sourceBody"]).decode()
    header = {k.lower(): v[0] for k, v in report["sourceHeader"].items()}
    assert (body, header["authorization"], header["x-trace"]) == want
    # The logs.
    events = api.get(f"{BASE}/logs", {"messageId": message_id}).json()["logs"]
    assert len(events) >= 3  # created, delivered (failed), in the DLQ
    for event in events:
        header = {k.lower(): v[0] for k, v in event["header"].items()}
        body = base64.b64decode(event["body"]).decode()
        assert (body, header["authorization"], header["x-trace"]) == want
    # The DLQ.
    [entry] = api.get(f"{BASE}/dlq").json()["messages"]
    assert shown(entry) == want
    # The admin.
    html = admin_client.get(
        reverse("admin:bgjobs_delivery_message_change", args=[message_id])
    ).content.decode()
    for value, hidden in zip((BODY, "t1"), (kind[0], kind[2]), strict=True):
        assert (redacted(value) in html) is hidden
    assert "4242 4242" not in html if kind[0] else "4242 4242" in html
    # A DLQ retry sends the values as published, and stays redacted where shown.
    with capture_jobs() as captured:
        retried = lifecycle.retry_dead(Message.objects.get(pk=message_id).dlq_id)
        captured.run_all()
    assert retried is not None
    last = receiver.at("/card")[-1]
    assert last.body.decode() == BODY and last.headers["authorization"] == SECRET
    assert shown(api.get(f"{BASE}/messages/{retried.message_id}").json()) == want


def test_a_schedules_messages_and_template_are_redacted(api: Client):
    response = api.post(
        f"{BASE}/schedules/https://example.com/nightly",
        data=BODY,
        content_type="application/json",
        headers={
            "Upstash-Cron": "0 3 * * *",
            "Upstash-Redact-Fields": "body,header[Authorization]",
            "Upstash-Forward-Authorization": SECRET,
            "Upstash-Forward-X-Trace": "t1",
        },
    )
    schedule_id = response.json()["scheduleId"]
    got = api.get(f"{BASE}/schedules/{schedule_id}").json()
    assert shown(got) == (redacted(BODY), redacted(SECRET), "t1")
    from django.utils import timezone

    from django_bgjobs.delivery import message_schedules

    with capture_jobs():
        fired = message_schedules.fire(schedule_id, timezone.now())
    message = Message.objects.get(pk=fired.published[0].message_id)
    assert message.redact == ["body", "header:authorization"]
    assert MessageSchedule.objects.filter(pk=schedule_id).exists()


@pytest.mark.parametrize(
    "fields", ["cookies", "header[]", "header[Bad Name]", "body;header"], ids=str
)
def test_a_redact_field_that_is_not_one_is_refused_naming_the_header(api: Client, fields: str):
    response = api.post(
        f"{BASE}/publish/https://example.com/x",
        data="{}",
        content_type="application/json",
        headers={"Upstash-Redact-Fields": fields},
    )
    assert response.status_code == 400
    assert "Upstash-Redact-Fields" in response.json()["error"]
    assert not Message.objects.exists()


def test_publish_from_python_takes_redact_and_several_labels():
    with capture_jobs():
        message_id = publish(
            "https://example.com/x",
            body="secret",
            redact=["body"],
            label=["billing", "eu"],
        )
    message = Message.objects.get(pk=message_id)
    assert (message.redact, message.label) == (["body"], "billing,eu")
    with pytest.raises(PublishError, match="redact: 'everything'"):
        publish("https://example.com/x", redact=["everything"])


# --- labels ----------------------------------------------------------------------------------


def test_several_labels_are_kept_and_any_of_them_finds_the_message(api: Client):
    with capture_jobs():
        both = publish_via_api(api, "https://example.com/l", "body", **{"Upstash-Label": "l1,l2"})
        second = publish_via_api(api, "https://example.com/l", "body", **{"Upstash-Label": "l2"})
        other = publish_via_api(api, "https://example.com/l", "body", **{"Upstash-Label": "l10"})
    got = api.get(f"{BASE}/messages/{both}").json()
    assert (got["label"], got["labels"]) == ("l1", ["l1", "l2"])

    def found(*labels: str) -> set[str]:
        query = "&".join(f"label={label}" for label in labels)
        events = api.get(f"{BASE}/logs?{query}").json()["logs"]
        return {event["messageId"] for event in events}

    assert found("l1") == {both}
    assert found("l2") == {both, second}
    assert found("l1", "l10") == {both, other}  # any of them
    assert found("l") == set()  # a label, not a prefix
    response = api.delete(f"{BASE}/messages?label=l2")
    assert response.json() == {"cancelled": 2}
    assert not Message.objects.get(pk=other).cancelled_at
