"""Outbound delivery end to end in this process (``capture_jobs().run_all()`` runs the real
delivery job), against a real HTTP server on 127.0.0.1; signatures checked with the official
``qstash.Receiver`` and ``standardwebhooks``."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from qstash import Receiver as QStashReceiver
from standardwebhooks import Webhook

from django_bgjobs.delivery import admission, lifecycle
from django_bgjobs.delivery.keys import signing_keys
from django_bgjobs.delivery.models import DeliveryAttempt, DeliveryQueue, Message, Topic
from django_bgjobs.delivery.publish import (
    Callback,
    Flow,
    PublishError,
    UnknownTopic,
    publish,
)
from django_bgjobs.models import JobStatus
from django_bgjobs.testing import capture_jobs
from tests.http_receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

# Tests that run the deliveries in this process (capture_jobs) must own them: a session
# worker's dispatcher, sharing the database, would admit and deliver gated messages too.
owns_the_jobs = pytest.mark.usefixtures("no_session_worker")


def verify(hit, url: str) -> None:
    keys = signing_keys()
    QStashReceiver(current_signing_key=keys.current, next_signing_key=keys.next).verify(
        signature=hit.headers["upstash-signature"], body=hit.body.decode(), url=url
    )


def attempts(message_id: str) -> list[DeliveryAttempt]:
    return list(DeliveryAttempt.objects.filter(message_id=message_id).order_by("id"))


def test_a_published_message_arrives_signed_once_and_its_attempt_is_kept(receiver: Receiver):
    url = receiver.url("/hook?a=1&b=two%20words")
    with capture_jobs() as captured:
        message_id = publish(url, json={"user": 7}, headers={"X-Trace": "t1"})
        [job] = captured.run_all()
    [hit] = receiver.at("/hook")
    assert hit.path == "/hook?a=1&b=two%20words"
    assert json.loads(hit.body) == {"user": 7}
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["x-trace"] == "t1"
    assert hit.headers["upstash-message-id"] == message_id
    assert hit.headers["upstash-retried"] == "0"
    assert hit.headers["user-agent"] == "Upstash-QStash"
    verify(hit, url)
    assert job.status == JobStatus.SUCCEEDED
    [attempt] = attempts(message_id)
    assert (attempt.outcome, attempt.status, bytes(attempt.response_body)) == (
        "delivered",
        200,
        b"ok",
    )
    message = Message.objects.select_related("job").get(pk=message_id)
    assert lifecycle.message_state(message) == "DELIVERED"


def test_failures_retry_with_the_retry_delay_expression_and_the_same_message_id(receiver: Receiver):
    receiver.answer("/flaky", (500, {}, b"boom"), (503, {}, b"busy"))
    url = receiver.url("/flaky")
    with capture_jobs() as captured:
        message_id = publish(url, body="x", retries=3, retry_delay="pow(2, retried) * 1000")
        captured.run_all()
    hits = receiver.at("/flaky")
    assert [h.headers["upstash-retried"] for h in hits] == ["0", "1", "2"]
    assert {h.headers["upstash-message-id"] for h in hits} == {message_id}
    for hit in hits:  # each attempt signed afresh
        verify(hit, url)
    assert len({h.headers["upstash-signature"] for h in hits}) == 3
    first, second, third = attempts(message_id)
    assert (first.outcome, first.status, second.status, third.outcome) == (
        "retry",
        500,
        503,
        "delivered",
    )
    # retried 0 -> 2^0 s, retried 1 -> 2^1 s
    assert (first.next_attempt_at - first.started_at) == timedelta(seconds=1)
    assert (second.next_attempt_at - second.started_at) == timedelta(seconds=2)


def test_retry_after_from_the_response_sets_the_next_attempt(receiver: Receiver):
    receiver.answer("/limited", (429, {"Retry-After": "7"}, b"slow down"))
    with capture_jobs() as captured:
        message_id = publish(receiver.url("/limited"), body="x")
        captured.run_all()
    first, second = attempts(message_id)
    assert first.next_attempt_at - first.started_at == timedelta(seconds=7)
    assert "Retry-After" in first.error
    assert second.outcome == "delivered"


def test_the_default_backoff_is_qstashs(receiver: Receiver):
    receiver.answer("/down", (500, {}, b""))
    with capture_jobs() as captured:
        message_id = publish(receiver.url("/down"), body="x")
        captured.run_all()
    first = attempts(message_id)[0]
    assert 12 <= (first.next_attempt_at - first.started_at).total_seconds() <= 12.2  # e^2.5


def test_489_non_retryable_goes_to_the_dlq_at_once_with_the_failure_callback(receiver: Receiver):
    receiver.answer("/reject", (489, {"Upstash-NonRetryable-Error": "true"}, b"bad order"))
    with capture_jobs() as captured:
        message_id = publish(
            receiver.url("/reject"),
            json={"order": 1},
            retries=5,
            failure_callback=receiver.url("/failed"),
        )
        captured.run_all()
    assert len(receiver.at("/reject")) == 1
    message = Message.objects.select_related("job").get(pk=message_id)
    assert lifecycle.message_state(message) == "FAILED"
    assert message.dlq_id and lifecycle.dead_letters().filter(pk=message_id).exists()
    [hit] = receiver.at("/failed")
    verify(hit, receiver.url("/failed"))
    body = json.loads(hit.body)
    assert body["status"] == 489 and body["dlqId"] == message.dlq_id
    assert body["sourceMessageId"] == message_id and body["maxRetries"] == 5
    assert base64.b64decode(body["body"]) == b"bad order"
    assert json.loads(base64.b64decode(body["sourceBody"])) == {"order": 1}
    assert Message.objects.get(pk=hit.headers["upstash-message-id"]).kind == "failure_callback"


def test_retries_exhausted_dead_letters_and_a_dlq_retry_is_a_new_message(receiver: Receiver):
    receiver.answer("/always-500", *[(500, {}, b"no")] * 3)
    with capture_jobs() as captured:
        message_id = publish(receiver.url("/always-500"), body="payload", retries=2)
        captured.run_all()
        assert len(receiver.at("/always-500")) == 3
        message = Message.objects.get(pk=message_id)
        assert [a.outcome for a in attempts(message_id)] == ["retry", "retry", "failed"]
        retried = lifecycle.retry_dead(message.dlq_id, {"retries": 0})
        captured.run_all()
    assert retried is not None and retried.message_id != message_id
    last = receiver.at("/always-500")[-1]
    assert (last.body, last.headers["upstash-message-id"]) == (b"payload", retried.message_id)
    assert not lifecycle.dead_letters().filter(pk=message_id).exists()
    assert lifecycle.retry_dead(message.dlq_id) is None  # taken out of the DLQ


def test_the_callback_gets_each_attempts_result(receiver: Receiver):
    receiver.answer("/cb-target", (500, {}, b"first fails"))
    with capture_jobs() as captured:
        message_id = publish(
            receiver.url("/cb-target"),
            body="hello",
            callback=Callback(receiver.url("/cb"), headers={"X-Cb": "1"}),
        )
        captured.run_all()
    first, second = [json.loads(hit.body) for hit in receiver.at("/cb")]
    assert (first["status"], first["retried"], second["status"], second["retried"]) == (
        500,
        0,
        200,
        1,
    )
    assert base64.b64decode(second["body"]) == b"ok"
    assert second["sourceMessageId"] == message_id and "dlqId" not in second
    assert receiver.at("/cb")[0].headers["x-cb"] == "1"


def test_deduplication_id_within_the_window_returns_the_first_message(receiver: Receiver):
    with capture_jobs() as captured:
        first = publish(receiver.url("/d"), body="a", deduplication_id="order-1")
        second = publish(receiver.url("/d"), body="b", deduplication_id="order-1")
        third = publish(receiver.url("/d"), body="c", content_based_deduplication=True)
        fourth = publish(receiver.url("/d"), body="c", content_based_deduplication=True)
        fifth = publish(receiver.url("/d"), body="d", content_based_deduplication=True)
        captured.run_all()
    assert first == second and third == fourth and len({first, third, fifth}) == 3
    assert sorted(hit.body for hit in receiver.at("/d")) == [b"a", b"c", b"d"]


def test_a_deduplication_id_is_free_again_after_the_window(receiver: Receiver):
    with capture_jobs():
        first = publish(receiver.url("/d"), body="a", deduplication_id="k")
        Message.objects.filter(pk=first).update(created_at=timezone.now() - timedelta(minutes=11))
        second = publish(receiver.url("/d"), body="a", deduplication_id="k")
    assert first != second


def test_a_url_group_makes_one_message_per_endpoint(receiver: Receiver):
    now = timezone.now()
    topic = Topic.objects.create(
        name="orders", created_at=now, updated_at=now, headers={"X-Group": "g"}
    )
    topic.endpoints.create(url=receiver.url("/one"), name="one")
    topic.endpoints.create(url=receiver.url("/two"))
    with capture_jobs() as captured:
        ids = publish(topic="orders", json={"id": 1})
        captured.run_all()
    assert len(ids) == 2 and len(set(ids)) == 2
    for path in ("/one", "/two"):
        [hit] = receiver.at(path)
        assert hit.headers["upstash-topic-name"] == "orders"
        assert hit.headers["x-group"] == "g"
        verify(hit, receiver.url(path))  # sub is each endpoint's URL
    with pytest.raises(UnknownTopic):
        publish(topic="nope", body="x")


@owns_the_jobs
def test_a_queue_delivers_one_message_at_a_time_in_order(receiver: Receiver):
    receiver.answer("/q", (500, {}, b"retry me"))
    with capture_jobs() as captured:
        ids = [publish(receiver.url("/q"), body=str(n), queue="serial") for n in range(3)]
        assert DeliveryQueue.objects.get(name="serial").parallelism == 1
        # Only the first is admitted; the others wait for it (its retry included).
        assert [Message.objects.get(pk=i).job_id is not None for i in ids] == [True, False, False]
        captured.run_all()
    assert [hit.body for hit in receiver.at("/q")] == [b"0", b"0", b"1", b"2"]
    assert all(lifecycle.message_state(Message.objects.get(pk=i)) == "DELIVERED" for i in ids)


@owns_the_jobs
def test_flow_control_rate_holds_messages_until_the_window_opens(receiver: Receiver):
    flow = Flow("tenant-1", rate=2, period=60)
    with capture_jobs() as captured:
        ids = [publish(receiver.url("/f"), body=str(n), flow_control=flow) for n in range(4)]
        captured.run_all()
        assert len(receiver.at("/f")) == 2
        assert admission.sweep() == 0  # the window is still closed
        Message.objects.filter(flow_key="tenant-1", admitted_at__isnull=False).update(
            admitted_at=timezone.now() - timedelta(seconds=61)
        )
        assert admission.sweep() == 2
        captured.run_all()
    assert sorted(hit.body for hit in receiver.at("/f")) == [b"0", b"1", b"2", b"3"]
    assert len(ids) == 4


@owns_the_jobs
def test_flow_control_parallelism_counts_messages_in_delivery(receiver: Receiver):
    flow = Flow("p", parallelism=2)
    with capture_jobs():
        ids = [publish(receiver.url("/p"), body=str(n), flow_control=flow) for n in range(5)]
    started = [Message.objects.get(pk=i).job_id is not None for i in ids]
    assert started == [True, True, False, False, False]


@pytest.mark.worker
def test_flow_control_parallelism_holds_on_a_real_worker(worker, receiver: Receiver):
    receiver.slow["/fp"] = 0.3
    flow = Flow("fp", parallelism=2)
    ids = [publish(receiver.url("/fp"), body=str(n), flow_control=flow) for n in range(6)]
    receiver.wait("/fp", 6)
    assert receiver.most_in_flight["/fp"] == 2
    for message_id in ids:
        Message.objects.select_related("job").get(pk=message_id).job.wait_until_finished()


def test_a_refused_url_fails_at_once_with_the_reason_and_no_request(receiver: Receiver):
    with capture_jobs() as captured, override_settings(BGJOBS={"DELIVERY_ALLOW_HOSTS": []}):
        message_id = publish(receiver.url("/never"), body="x", retries=5)
        captured.run_all()
    assert receiver.at("/never") == []
    [attempt] = attempts(message_id)
    assert attempt.outcome == "refused" and "loopback" in attempt.error
    assert Message.objects.get(pk=message_id).dlq_id


@owns_the_jobs
def test_cancel_a_waiting_and_a_queued_message(receiver: Receiver):
    with capture_jobs() as captured:
        first = publish(receiver.url("/c"), body="1", queue="c")
        second = publish(receiver.url("/c"), body="2", queue="c")
        assert lifecycle.cancel(second) and lifecycle.cancel(first)
        assert not lifecycle.cancel(first)
        captured.run_all()
    assert receiver.at("/c") == []
    assert {lifecycle.message_state(Message.objects.get(pk=i)) for i in (first, second)} == {
        "CANCELLED"
    }


def test_standard_webhooks_signature_instead_of_qstash(receiver: Receiver):
    with capture_jobs() as captured:
        message_id = publish(receiver.url("/std"), json={"a": 1}, signature="standard")
        captured.run_all()
    [hit] = receiver.at("/std")
    assert "upstash-signature" not in hit.headers
    payload = Webhook(signing_keys().standard_secret).verify(hit.body, hit.headers)
    assert payload == {"a": 1} and hit.headers["webhook-id"] == message_id


def test_a_rolled_back_publish_sends_nothing(receiver: Receiver):
    from django.db import transaction

    with capture_jobs() as captured:
        with pytest.raises(RuntimeError), transaction.atomic():
            publish(receiver.url("/rb"), body="x")
            raise RuntimeError("the view failed")
        captured.run_all()
    assert receiver.at("/rb") == [] and not Message.objects.exists()


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"url": "ftp://example.com/"}, "http://"),
        ({"url": "https://example.com/", "method": "BREW"}, "method"),
        ({"url": "https://example.com/", "retry_delay": "__import__('os')"}, "retry delay"),
        ({"url": "https://example.com/", "retries": -1}, "retries"),
        ({"url": "https://example.com/", "json": {}, "body": "x"}, "json= or body="),
        ({"url": "https://exa mple.com/"}, "whitespace"),
        ({"url": "https://example.com/", "flow_control": Flow("k", rate=0)}, "rate"),
    ],
)
def test_bad_publishes_are_refused_with_what_to_change(kwargs, problem):
    with pytest.raises(PublishError, match=problem):
        publish(**kwargs)
    assert not Message.objects.exists()


@pytest.mark.worker
def test_a_real_worker_delivers_retries_and_dead_letters(worker, receiver: Receiver):
    receiver.answer("/w-retry", (500, {}, b"once"))
    receiver.answer("/w-dead", (489, {"Upstash-NonRetryable-Error": "true"}, b"never"))
    delivered = publish(receiver.url("/w-ok"), json={"n": 1})
    retried = publish(receiver.url("/w-retry"), body="r", retry_delay="100")  # 100 ms
    dead = publish(receiver.url("/w-dead"), body="d", failure_callback=receiver.url("/w-fail"))
    [ok] = receiver.wait("/w-ok", 1)
    verify(ok, receiver.url("/w-ok"))
    first, second = receiver.wait("/w-retry", 2)
    assert second.at - first.at >= 0.1
    assert [h.headers["upstash-retried"] for h in (first, second)] == ["0", "1"]
    [failure] = receiver.wait("/w-fail", 1)
    assert json.loads(failure.body)["sourceMessageId"] == dead
    for message_id, state in ((delivered, "DELIVERED"), (retried, "DELIVERED"), (dead, "FAILED")):
        message = Message.objects.select_related("job").get(pk=message_id)
        message.job.wait_until_finished()
        message.refresh_from_db()
        assert lifecycle.message_state(message) == state


@pytest.mark.worker
def test_a_queue_holds_its_parallelism_across_the_workers_processes(worker, receiver: Receiver):
    receiver.slow["/serial"] = 0.3  # overlapping deliveries would show
    ids = [
        publish(receiver.url(f"/serial?n={n}"), body=str(n), queue="one-at-a-time")
        for n in range(5)
    ]
    hits = receiver.wait("/serial", 5)
    assert [hit.body for hit in hits] == [b"0", b"1", b"2", b"3", b"4"]  # FIFO
    assert receiver.most_in_flight["/serial"] == 1
    for message_id in ids:
        Message.objects.select_related("job").get(pk=message_id).job.wait_until_finished()


@pytest.mark.worker
def test_a_delivery_whose_worker_process_is_killed_is_delivered_again(worker, receiver: Receiver):
    import os
    import re
    import signal

    receiver.slow["/killed"] = 3.0  # the first delivery is in flight when its process dies
    message_id = publish(receiver.url("/killed"), body="at least once")
    receiver.wait("/killed", 1)
    message = Message.objects.select_related("job").get(pk=message_id)
    assert message.job is not None
    message.job.refresh_from_db()
    pid = int(re.findall(r"\d+", message.job.worker)[-1])
    receiver.slow["/killed"] = 0
    os.kill(pid, signal.SIGKILL)
    first, second = receiver.wait("/killed", 2, timeout=30)
    assert {first.headers["upstash-message-id"], second.headers["upstash-message-id"]} == {
        message_id
    }
    verify(second, receiver.url("/killed"))
    job = message.job.wait_until_finished()
    message.refresh_from_db()
    assert lifecycle.message_state(message) == "DELIVERED"
    assert list(job.runs.values_list("status", flat=True)) == ["lost", "succeeded"]
    assert [a.outcome for a in attempts(message_id)] == ["delivered"]


@owns_the_jobs
def test_prune_takes_messages_with_their_jobs_and_keeps_webhook_receipts(receiver: Receiver):
    from django_bgjobs.maintenance import prune
    from django_bgjobs.models import InboundWebhook, Job
    from tests import jobs

    receiver.answer("/gone-dead", (489, {"Upstash-NonRetryable-Error": "true"}, b""))
    with capture_jobs() as captured:
        delivered = publish(receiver.url("/gone"), body="x", callback=receiver.url("/cb"))
        dead = publish(receiver.url("/gone-dead"), body="y")
        DeliveryQueue.objects.create(
            name="paused", paused=True, created_at=timezone.now(), updated_at=timezone.now()
        )
        waiting = publish(receiver.url("/never"), body="z", queue="paused")
        job = jobs.add.enqueue(1, 2)
        receipt = InboundWebhook.objects.create(
            endpoint="qstash", scheme="qstash", received_at=timezone.now(), verified=True, job=job
        )
        captured.run_all()
    assert receiver.at("/never") == []
    assert lifecycle.cancel(waiting)
    later = timezone.now() + timedelta(days=31)
    prune(now=later)
    assert not Message.objects.filter(pk__in=[delivered, dead, waiting]).exists()
    assert not DeliveryAttempt.objects.filter(message_id__in=[delivered, dead]).exists()
    assert not Job.objects.filter(pk=job.pk).exists()
    receipt.refresh_from_db()
    assert receipt.job_id is None


def test_an_attempt_recorded_before_its_worker_died_is_not_delivered_again(receiver: Receiver):
    from django_bgjobs.execution import run_attempt
    from django_bgjobs.models import Job

    with capture_jobs() as captured:
        message_id = publish(receiver.url("/once"), body="x")
        captured.run_all()
    message = Message.objects.get(pk=message_id)
    # As if the worker died after recording the delivery and before recording the job: the
    # dispatcher takes the lease back and a new attempt starts.
    Job.objects.filter(pk=message.job_id).update(status=JobStatus.QUEUED)
    assert run_attempt(str(message.job_id), 2) == "succeeded"
    assert len(receiver.at("/once")) == 1


@owns_the_jobs
def test_the_dispatchers_pass_visits_every_gate_however_many(receiver: Receiver):
    with capture_jobs():
        for n in range(150):  # one message admitted per key, one waiting behind it
            for body in ("first", "second"):
                publish(
                    receiver.url("/many"),
                    body=body,
                    flow_control=Flow(f"tenant-{n:03}", rate=1, period=3600),
                )
        assert Message.objects.filter(job__isnull=True).count() == 150
        # The window opens for every key; passes of 100 gates reach all 150 in two.
        Message.objects.filter(admitted_at__isnull=False).update(
            admitted_at=timezone.now() - timedelta(hours=2)
        )
        admitted = admission.sweep(limit=100) + admission.sweep(limit=100)
    assert admitted == 150 and not Message.objects.filter(job__isnull=True).exists()


@owns_the_jobs
def test_a_message_cancelled_while_it_is_admitted_never_starts(receiver: Receiver):
    with capture_jobs() as captured:
        publish(receiver.url("/busy"), body="holds the queue", queue="race")
        waiting = publish(receiver.url("/raced"), body="x", queue="race")
        message = Message.objects.get(pk=waiting)
        # Admission read it as waiting; the cancel lands before admission writes.
        assert lifecycle.cancel(waiting)
        assert admission.start([message], timezone.now(), "default") == 0
        captured.run_all()
    assert receiver.at("/raced") == []
    message.refresh_from_db()
    assert message.job_id is None and lifecycle.message_state(message) == "CANCELLED"


@owns_the_jobs
def test_a_batch_keeps_its_order_in_a_fifo_queue(receiver: Receiver):
    from django_bgjobs.delivery.publish import Publish, send_many

    with capture_jobs() as captured:
        send_many(
            [Publish(receiver.url("/fifo"), body=str(n).encode(), queue="fifo") for n in range(8)]
        )
        captured.run_all()
    assert [hit.body for hit in receiver.at("/fifo")] == [str(n).encode() for n in range(8)]


@owns_the_jobs
def test_a_delayed_message_neither_holds_its_queue_nor_spends_the_rate(receiver: Receiver):
    with capture_jobs() as captured:
        later = publish(receiver.url("/later"), body="later", queue="d", delay=3600)
        now = publish(receiver.url("/now"), body="now", queue="d")
        assert Message.objects.get(pk=later).job_id is None
        assert Message.objects.get(pk=now).job_id is not None
        captured.run_all()
        assert len(receiver.at("/now")) == 1 and receiver.at("/later") == []
        Message.objects.filter(pk=later).update(not_before=timezone.now())
        assert admission.sweep() == 1
        captured.run_all()
    assert len(receiver.at("/later")) == 1


def test_retrying_a_dead_delivery_job_delivers_again_and_takes_it_out_of_the_dlq(
    receiver: Receiver,
):
    receiver.answer("/second-chance", (500, {}, b"down"))
    with capture_jobs() as captured:
        message_id = publish(receiver.url("/second-chance"), body="x", retries=0)
        captured.run_all()
        message = Message.objects.select_related("job").get(pk=message_id)
        assert message.dlq_id and message.job is not None
        assert message.job.retry()
        captured.run_all()
    message.refresh_from_db()
    assert len(receiver.at("/second-chance")) == 2
    assert message.dlq_id is None and lifecycle.message_state(message) == "DELIVERED"


def test_a_callback_that_cannot_be_published_does_not_lose_the_attempt(receiver: Receiver):
    with capture_jobs() as captured:
        message_id = publish(receiver.url("/cb-ok"), body="x", callback=receiver.url("/cb"))
        # Made unpublishable after the fact (the checks at publish refuse this).
        Message.objects.filter(pk=message_id).update(callback={"url": "not a url"})
        captured.run_all()
    assert len(receiver.at("/cb-ok")) == 1
    assert [a.outcome for a in attempts(message_id)] == ["delivered"]
    assert lifecycle.message_state(Message.objects.get(pk=message_id)) == "DELIVERED"


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"callback": Callback("https://example.com/cb", method="get ")}, "callback method"),
        ({"failure_callback": Callback("https://example.com/cb", timeout=-1)}, "negative"),
        ({"timeout": 10_000}, "DELIVERY_MAX_TIMEOUT"),
        ({"callback": Callback("https://example.com/cb", timeout=3600)}, "DELIVERY_MAX_TIMEOUT"),
    ],
)
def test_bad_callbacks_and_timeouts_are_refused_at_publish(kwargs, problem):
    with pytest.raises(PublishError, match=problem):
        publish("https://example.com/", body="x", **kwargs)
