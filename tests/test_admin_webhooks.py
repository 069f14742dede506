"""The webhook receipts admin: staff only and read-only; each receipt's outcome, size and job in
the list with no query per row; its headers and body (escaped) on its page; the Replay action
with its permission and history; and the Job admin's link from a handler job to its receipt.
Receipts are made by real signed deliveries through the generic receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_bgjobs.admin.widgets import BODY_SHOWN, precise_time
from django_bgjobs.models import InboundWebhook, Job, JobStatus
from django_bgjobs.testing import capture_jobs
from django_bgjobs.webhooks.sign import standard_signature
from tests import jobs
from tests.models import Effect

# In-process, committed rows: the session worker's dispatcher would take them meanwhile (promote a
# retry, publish a job "sent to nowhere" again), so these tests own the jobs.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_session_worker")]

CHANGELIST = reverse("admin:django_bgjobs_inboundwebhook_changelist")
CLERK = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GITHUB = "It's a Secret to Everybody"
REPLAY_FORM = 'id="bgjobs-replay-form"'  # the Replay button of a receipt's page
EVIL = {"type": "user.created", "data": {"name": "<script>alert('x')</script>"}}


def page_of(receipt: InboundWebhook) -> str:
    return reverse("admin:django_bgjobs_inboundwebhook_change", args=[receipt.pk])


def deliver_clerk(body: bytes, message_id: str, secret: str = CLERK) -> InboundWebhook | None:
    stamp = int(time.time())
    response = Client().post(
        "/webhooks/clerk/",
        body,
        content_type="application/json",
        headers={
            "svix-id": message_id,
            "svix-timestamp": str(stamp),
            "svix-signature": standard_signature(body, message_id, stamp, secret),
        },
    )
    if response.status_code != 202:
        return None
    return InboundWebhook.objects.get(pk=response.json()["receipt"])


def deliver_github(body: bytes, delivery: str) -> InboundWebhook:
    signature = "sha256=" + hmac.new(GITHUB.encode(), body, hashlib.sha256).hexdigest()
    response = Client().post(
        "/webhooks/github/",
        body,
        content_type="text/plain",
        headers={
            "X-Hub-Signature-256": signature,
            "X-GitHub-Delivery": delivery,
            "X-GitHub-Event": "push",
        },
    )
    assert response.status_code == 202, response.content
    return InboundWebhook.objects.get(pk=response.json()["receipt"])


@pytest.fixture
def receipts():  # type: ignore[no-untyped-def]
    """A Clerk event whose body holds a script tag (its job run), a GitHub delivery that is not
    UTF-8 (its job still queued), and a Clerk delivery refused for its signature."""
    with capture_jobs() as captured:
        clerk = deliver_clerk(json.dumps(EVIL).encode(), "msg_evil")
        captured.run_all()
    with capture_jobs():  # no worker: stays queued
        github = deliver_github(b"\xff\xfeplain <b>bold</b> text", "gh-1")
    with override_settings(BGJOBS={**settings.BGJOBS, "WEBHOOK_STORE_REJECTED": True}):
        assert (
            deliver_clerk(
                b"{}", "msg_forged", secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
            )
            is None
        )
    rejected = InboundWebhook.objects.get(verified=False)
    assert clerk is not None and clerk.job is not None and github.job is not None
    return {"clerk": clerk, "github": github, "rejected": rejected}


def rows(html: str) -> dict[str, str]:
    """The changelist's rows, by receipt id (from the link to the receipt's page)."""
    found = (
        re.search(r"/inboundwebhook/(\d+)/change/", row)
        for row in re.findall(r"<tr>(.*?)</tr>", html, re.S)
    )
    return {m.group(1): m.string for m in found if m}


def cell(row: str, column: str) -> str:
    found = re.search(rf'<t[hd] class="field-{column}"[^>]*>(.*?)</t[hd]>', row, re.S)
    assert found, column
    return found.group(1)


def listed(client: Client, **params: str) -> set[int]:
    return {int(pk) for pk in rows(client.get(CHANGELIST, params).content.decode())}


def action(client: Client, *receipts: InboundWebhook, **extra: str):  # type: ignore[no-untyped-def]
    return client.post(
        CHANGELIST,
        {"action": "replay_receipts", **extra, "_selected_action": [str(r.pk) for r in receipts]},
        follow=True,
    )


def test_anonymous_users_are_sent_to_login(client, receipts):
    for url in (CHANGELIST, page_of(receipts["clerk"])):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response.url
    with capture_jobs() as captured:
        response = action(client, receipts["clerk"])
    assert "/admin/login/" in response.redirect_chain[0][0] and captured.names() == []


def test_the_list_shows_outcome_size_and_job(admin_client, receipts):
    html = admin_client.get(CHANGELIST).content.decode()
    found = rows(html)
    clerk, github, rejected = (found[str(receipts[k].pk)] for k in ("clerk", "github", "rejected"))

    assert precise_time(receipts["clerk"].received_at) in cell(clerk, "received")
    assert page_of(receipts["clerk"]) in cell(clerk, "received")
    assert (cell(clerk, "endpoint"), cell(clerk, "scheme")) == ("clerk", "standard")
    assert cell(clerk, "message_id_display") == "msg_evil"
    assert "bgjobs-status-accepted" in cell(clerk, "outcome_display")
    assert cell(clerk, "size_display") == f"{len(json.dumps(EVIL))}\xa0bytes"
    job = receipts["clerk"].job
    assert "bgjobs-status-succeeded" in cell(clerk, "job_display")
    assert reverse("admin:django_bgjobs_job_change", args=[job.pk]) in cell(clerk, "job_display")
    assert "bgjobs-status-queued" in cell(github, "job_display")
    assert (cell(github, "scheme"), cell(github, "message_id_display")) == ("github", "gh-1")

    outcome = cell(rejected, "outcome_display")
    assert "bgjobs-status-rejected" in outcome and ">signature</span>" in outcome
    assert cell(rejected, "size_display") == "-" and cell(rejected, "job_display") == "-"
    assert "<script>" not in html  # the body is not in the list at all


def test_filters_and_search(admin_client, receipts):
    clerk, github, rejected = (receipts[k].pk for k in ("clerk", "github", "rejected"))
    assert listed(admin_client) == {clerk, github, rejected}
    assert listed(admin_client, endpoint="clerk") == {clerk, rejected}
    assert listed(admin_client, scheme="github") == {github}
    assert listed(admin_client, verified__exact="0") == {rejected}
    assert listed(admin_client, verified__exact="1", endpoint="clerk") == {clerk}
    assert listed(admin_client, q="gh-1") == {github}
    assert listed(admin_client, q="gh") == set()  # the message id is matched exactly
    assert listed(admin_client, q="clerk") == {clerk, rejected}
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    assert listed(admin_client, received_at__gte=str(today)) == {clerk, github, rejected}
    assert listed(admin_client, received_at__lt=str(today)) == set()


def test_the_receipt_page_shows_headers_and_the_body_escaped(admin_client, receipts):
    receipt = receipts["clerk"]
    page = admin_client.get(page_of(receipt))
    html = page.content.decode()
    assert page.status_code == 200 and 'name="_save"' not in html
    headers = re.findall(r'<tr class="bgjobs-header"><td>(.*?)</td><td[^>]*>(.*?)</td>', html)
    assert ("svix-id", "msg_evil") in headers
    assert ("Content-Type", "application/json") in headers
    assert not any("signature" in name.lower() for name, _ in headers)  # never kept

    body = re.search(r'<pre class="bgjobs-body-text"[^>]*>(.*?)</pre>', html, re.S)
    assert body is not None and "JSON, pretty-printed" in html
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in body.group(1)
    assert "\n  &quot;type&quot;: &quot;user.created&quot;," in body.group(1)  # indented
    assert f"{len(json.dumps(EVIL))} bytes received." in html
    assert reverse("admin:django_bgjobs_job_change", args=[receipt.job_id]) in html
    assert "bgjobs-status-succeeded" in html


def test_a_body_that_is_not_json_is_text_and_a_large_one_is_cut(admin_client, receipts):
    html = admin_client.get(page_of(receipts["github"])).content.decode()
    assert "text, undecodable bytes replaced" in html
    assert "\ufffd\ufffdplain &lt;b&gt;bold&lt;/b&gt; text" in html and "<b>bold" not in html
    assert ("X-GitHub-Event", "push") in re.findall(
        r'<tr class="bgjobs-header"><td>(.*?)</td><td[^>]*>(.*?)</td>', html
    )

    big = InboundWebhook.objects.create(
        endpoint="github",
        scheme="github",
        message_id="big",
        received_at=timezone.now(),
        body=b"A" * (BODY_SHOWN + 1000) + b"<end>",
        verified=True,
    )
    html = admin_client.get(page_of(big)).content.decode()
    assert f"{BODY_SHOWN + 1005} bytes received." in html and "Cut: only the beginning" in html
    assert "A" * BODY_SHOWN in html and "A" * (BODY_SHOWN + 1) not in html
    assert "&lt;end&gt;" not in html

    html = admin_client.get(page_of(receipts["rejected"])).content.decode()
    assert "Not kept: a rejected delivery is recorded without its body." in html
    assert "bgjobs-status-rejected" in html and REPLAY_FORM not in html


def test_receipts_cannot_be_added_edited_or_deleted(admin_client, receipts):
    assert admin_client.get(reverse("admin:django_bgjobs_inboundwebhook_add")).status_code == 403
    delete = reverse("admin:django_bgjobs_inboundwebhook_delete", args=[receipts["clerk"].pk])
    assert admin_client.get(delete).status_code == 403
    assert 'value="delete_selected"' not in admin_client.get(CHANGELIST).content.decode()


def test_the_list_makes_no_query_per_receipt(admin_client, receipts, django_assert_max_num_queries):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(CHANGELIST).status_code == 200
        return len(captured)

    queries()  # warm caches (content types, ...)
    few = queries()
    with capture_jobs():
        for i in range(40):
            receipt = InboundWebhook.objects.create(
                endpoint="stripe",
                scheme="stripe",
                message_id=f"evt_{i}",
                received_at=timezone.now(),
                body=b'{"id": 1}',
                verified=True,
            )
            receipt.job = jobs.handle_webhook.enqueue(receipt.pk)
            receipt.save(update_fields=["job"])
    assert queries() == few
    with django_assert_max_num_queries(8):
        admin_client.get(CHANGELIST)


def test_replay_enqueues_a_new_job_for_the_same_receipt_and_logs_it(admin_client, receipts):
    receipt = receipts["clerk"]
    first = receipt.job
    with capture_jobs() as captured:
        html = action(admin_client, receipt).content.decode()
        assert captured.names() == ["tests.jobs.handle_webhook"]
        job = captured.jobs[0]
        captured.run_all()
    assert job.pk != first.pk and job.args == [receipt.pk]
    receipt.refresh_from_db()
    assert receipt.job_id == job.pk
    assert Job.objects.get(pk=first.pk).status == JobStatus.SUCCEEDED  # the first one stays
    assert Effect.objects.filter(key="webhook:clerk:msg_evil").count() == 2  # ran twice
    assert re.search(
        rf'1 receipt\(s\) replayed: <a href="[^"]+">job …{str(job.pk)[-12:]}</a>\.', html
    )
    assert reverse("admin:django_bgjobs_job_change", args=[job.pk]) in html
    entries = list(LogEntry.objects.values_list("object_id", "change_message"))
    assert entries == [
        (str(receipt.pk), f"Replayed: enqueued job {job.pk} (its job was {first.pk}).")
    ]


def test_an_unverified_receipt_is_refused(admin_client, receipts):
    with capture_jobs() as captured:
        html = action(admin_client, receipts["rejected"], receipts["github"]).content.decode()
    assert captured.names() == ["tests.jobs.handle_webhook"]  # the github one only
    assert captured.jobs[0].args == [receipts["github"].pk]
    assert "1 receipt(s) refused: only verified deliveries can be replayed" in html
    assert "1 receipt(s) replayed" in html
    assert not InboundWebhook.objects.get(pk=receipts["rejected"].pk).job_id
    assert [e.object_id for e in LogEntry.objects.all()] == [str(receipts["github"].pk)]


def test_replay_needs_its_permission(client, django_user_model, receipts):
    staff = django_user_model.objects.create_user("viewer", password="p", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_inboundwebhook"))
    client.login(username="viewer", password="p")
    page = client.get(CHANGELIST).content.decode()
    assert len(rows(page)) == 3 and 'value="replay_receipts"' not in page
    assert REPLAY_FORM not in client.get(page_of(receipts["clerk"])).content.decode()
    first = receipts["clerk"].job_id
    with capture_jobs() as captured:
        action(client, receipts["clerk"])
    assert captured.names() == [] and not LogEntry.objects.exists()
    assert InboundWebhook.objects.get(pk=receipts["clerk"].pk).job_id == first

    staff.user_permissions.add(Permission.objects.get(codename="replay_inboundwebhook"))
    assert 'value="replay_receipts"' in client.get(CHANGELIST).content.decode()
    assert REPLAY_FORM in client.get(page_of(receipts["clerk"])).content.decode()


def test_the_replay_button_of_a_receipt_page_comes_back_to_it(admin_client, receipts):
    receipt = receipts["github"]
    html = admin_client.get(page_of(receipt)).content.decode()
    form = re.search(
        r'<form method="post" action="([^"]+)" id="bgjobs-replay-form".*?</form>', html, re.S
    )
    assert form is not None and form.group(1) == CHANGELIST
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form.group(0)))
    assert fields.pop("csrfmiddlewaretoken")
    assert fields == {
        "action": "replay_receipts",
        "_selected_action": str(receipt.pk),
        "_bgjobs_back": str(receipt.pk),
    }
    with capture_jobs() as captured:
        response = admin_client.post(CHANGELIST, fields, follow=True)
    assert response.redirect_chain[-1][0] == page_of(receipt)
    job = captured.jobs[0]
    html = response.content.decode()
    assert "1 receipt(s) replayed" in html
    assert reverse("admin:django_bgjobs_job_change", args=[job.pk]) in html


def test_a_handler_job_links_to_its_receipt_even_after_a_replay(admin_client, receipts):
    receipt = receipts["clerk"]
    first = receipt.job
    job_page = reverse("admin:django_bgjobs_job_change", args=[first.pk])
    assert page_of(receipt) in admin_client.get(job_page).content.decode()
    with capture_jobs() as captured:
        action(admin_client, receipt)
    replayed = captured.jobs[0]
    html = admin_client.get(job_page).content.decode()
    assert page_of(receipt) in html and "replayed since" in html
    html = admin_client.get(
        reverse("admin:django_bgjobs_job_change", args=[replayed.pk])
    ).content.decode()
    assert page_of(receipt) in html and "replayed since" not in html
    with capture_jobs():
        other = jobs.noop.enqueue()  # not a webhook's job
    html = admin_client.get(
        reverse("admin:django_bgjobs_job_change", args=[other.pk])
    ).content.decode()
    assert not re.search(r"/inboundwebhook/\d+/change/", html)
