"""What the Python SDK meets beyond one method at a time (those are in
tests/test_qstash_conformance.py): the DLQ retried through the REST call the JS SDK makes, a
cancel_all larger than one batch of the server, and errors as QStashError."""

from __future__ import annotations

import httpx
import pytest
from qstash import QStash
from qstash import Receiver as QStashReceiver
from qstash.errors import QStashError

from django_bgjobs.delivery.models import Message
from tests.conftest import wait_for
from tests.http_receiver import Hit, Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def client(token: str, base_url: str) -> QStash:
    return QStash(token, base_url=base_url, retry=False)


def verify(client: QStash, hit: Hit, url: str) -> None:
    """The stock receiver, with the keys the API hands out."""
    keys = client.signing_key.get()
    QStashReceiver(current_signing_key=keys.current, next_signing_key=keys.next).verify(
        signature=hit.headers["upstash-signature"], body=hit.body.decode(), url=url
    )


def test_the_dlq_read_and_retried(
    worker, client: QStash, receiver: Receiver, token: str, base_url: str
):
    receiver.answer("/dead", (500, {"X-Why": "down"}, b"broken"))
    url = receiver.url("/dead")
    result = client.message.publish_json(url=url, body={"n": 1}, retries=0)
    receiver.wait("/dead", 1)
    entries = wait_for(lambda: client.dlq.list().messages, message="the DLQ entry")
    [entry] = entries
    assert entry.message_id == result.message_id and entry.response_status == 500
    assert entry.response_body == "broken" and entry.url == url
    assert client.dlq.get(entry.dlq_id).message_id == result.message_id
    # The Python SDK has no retry: the REST call, as the JS SDK makes it.
    response = httpx.post(
        f"{base_url}/v2/dlq/retry",
        params={"dlqIds": entry.dlq_id},
        headers={"Authorization": f"Bearer {token}", "Upstash-Retries": "2"},
    )
    assert response.status_code == 201, response.text
    [retried] = response.json()["responses"]
    first, second = receiver.wait("/dead", 2)
    verify(client, second, url)
    assert second.headers["upstash-message-id"] == retried["messageId"] != result.message_id
    assert client.dlq.list().messages == []
    # A second dead letter, deleted rather than retried.
    receiver.answer("/dead", (500, {}, b"again"))
    client.message.publish_json(url=url, body={"n": 2}, retries=0)
    [entry] = wait_for(lambda: client.dlq.list().messages, message="the second entry")
    assert client.dlq.delete_many([entry.dlq_id]) == 1
    assert client.dlq.list().messages == []


def test_cancel_all_cancels_every_pending_message(client: QStash, monkeypatch):
    from django_bgjobs.delivery.api.views import messages as views

    monkeypatch.setattr(views, "CANCEL_MAX", 2)  # the live server runs in this process
    for _ in range(3):
        client.message.publish_json(url="https://example.com/later", body={}, delay="1h")
    # One call, as the SDK documents it, in batches of the limit on the server.
    assert [client.message.cancel_all() for _ in range(2)] == [3, 0]
    assert not Message.objects.filter(cancelled_at__isnull=True).exists()


def test_errors_reach_the_sdk_as_qstash_errors(client: QStash, base_url: str):

    with pytest.raises(QStashError, match="401"):
        QStash("bgq_wrong", base_url=base_url, retry=False).signing_key.get()
    with pytest.raises(QStashError, match="404"):
        client.message.get("msg_nope")
    with pytest.raises(QStashError, match="Upstash-Retries"):
        client.message.publish(url="https://example.com/x", body="", retries=-1)
