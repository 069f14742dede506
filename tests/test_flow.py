"""Flow control: concurrency per key (and shared by name), throttle, rate limit, debounce and
singleton, on a real worker where timing matters and in-process (``capture_jobs``) where the
order of decisions does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.db import OperationalError, connection
from django.urls import reverse
from django.utils import timezone

from django_bgjobs import (
    Concurrency,
    JobConfigurationError,
    PayloadError,
    Throttle,
    bgjob,
    enqueue_many,
    states,
)
from django_bgjobs.dispatcher import Dispatcher
from django_bgjobs.flow import admission
from django_bgjobs.models import FlowGate, Job, JobRun, JobStatus
from django_bgjobs.testing import CapturedJobs, capture_jobs
from django_bgjobs.worker.task import execute
from tests import flow_jobs as fj
from tests.conftest import wait_for
from tests.models import Effect

pytestmark = pytest.mark.django_db(transaction=True)

JITTER = timedelta(milliseconds=25)


def most_at_once(label_prefix: str) -> dict[str, int]:
    """The most jobs between their start and end effects at once, per label: the effects' ids
    put every start and end in one order."""
    current: dict[str, int] = {}
    most: dict[str, int] = {}
    for key in (
        Effect.objects.filter(key__contains=label_prefix)
        .order_by("id")
        .values_list("key", flat=True)
    ):
        edge, label = key.split(" ", 1)
        current[label] = current.get(label, 0) + (1 if edge == "start" else -1)
        most[label] = max(most.get(label, 0), current[label])
    return most


def finished(jobs: list[Job], timeout: float = 30) -> list[Job]:
    return [job.wait_until_finished(timeout=timeout) for job in jobs]


# --- concurrency -------------------------------------------------------------------------------


@pytest.mark.worker
def test_a_key_never_runs_more_than_its_limit_while_other_keys_run_beside_it(worker):
    jobs = [fj.sync_customer.enqueue(customer, n) for n in range(4) for customer in (1, 2, 3)]
    assert {job.status for job in Job.objects.filter(pk__in=[j.pk for j in jobs])} <= {
        JobStatus.QUEUED,
        JobStatus.BLOCKED,
        JobStatus.RUNNING,
        JobStatus.SUCCEEDED,
    }
    assert {job.status for job in finished(jobs)} == {JobStatus.SUCCEEDED}
    most = most_at_once("customer")
    assert most == {"customer 1": 1, "customer 2": 1, "customer 3": 1}
    # The worker's two processes ran two customers at once: the limit is per key.
    overlap, running = 0, set()
    for key in (
        Effect.objects.filter(key__contains="customer").order_by("id").values_list("key", flat=True)
    ):
        edge, label = key.split(" ", 1)
        running = running | {label} if edge == "start" else running - {label}
        overlap = max(overlap, len(running))
    assert overlap == 2


@pytest.mark.worker
def test_a_busy_key_does_not_starve_a_key_enqueued_after_it(worker):
    """Twelve jobs of one key, then two of another: the second key's jobs go round with the
    first's (a key's next job joins the back of the line) instead of waiting for its backlog."""
    busy = [fj.sync_customer.enqueue(41, n) for n in range(12)]
    late = [fj.sync_customer.enqueue(42, n) for n in range(2)]
    assert {job.status for job in finished(busy + late)} == {JobStatus.SUCCEEDED}
    edges = list(
        Effect.objects.filter(key__in=["start customer 41", "end customer 42"])
        .order_by("id")
        .values_list("key", flat=True)
    )
    late_done = [n for n, key in enumerate(edges) if key == "end customer 42"][-1]
    busy_started_before = edges[:late_done].count("start customer 41")
    assert busy_started_before <= 6, edges  # of 12: the late key did not wait behind them
    assert most_at_once("customer 4") == {"customer 41": 1, "customer 42": 1}


@pytest.mark.worker
def test_a_limit_named_by_two_jobs_counts_both(worker):
    jobs = [fj.daily_report.enqueue(n) for n in range(3)] + [
        fj.weekly_report.enqueue(n) for n in range(3, 6)
    ]
    assert {job.flow_key for job in jobs} == {"tests.reports"}
    assert {job.status for job in finished(jobs)} == {JobStatus.SUCCEEDED}
    assert most_at_once("report") == {"report": 2}


@pytest.mark.worker
def test_a_worker_killed_holding_the_place_frees_it_within_the_lease(worker):
    """The first job SIGKILLs its worker process mid-job: its place is held until the lease
    expires, then the job is retried and both jobs of the key run, never together."""
    first = fj.sync_and_crash_once.enqueue(7, 1)
    second = fj.sync_and_crash_once.enqueue(7, 2)
    assert Job.objects.get(pk=second.pk).status == JobStatus.BLOCKED
    first, second = finished([first, second], timeout=60)
    assert (first.status, second.status) == (JobStatus.SUCCEEDED, JobStatus.SUCCEEDED)
    assert list(JobRun.objects.filter(job=first).values_list("status", flat=True)) == [
        "lost",
        "succeeded",
    ]
    assert most_at_once("customer 7") == {"customer 7": 1}
    assert worker.proc is not None and worker.proc.poll() is None  # the worker lives on


# --- the next job of a key, run by the process that freed the place (celery/continuation.py) ---


def on_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("a finishing job hands its place over in its own statement on PostgreSQL")


def published(captured: CapturedJobs) -> list[tuple[object, int]]:
    return [(job_id, attempt) for job_id, attempt, *_ in captured._messages]


def test_the_process_that_frees_a_place_runs_the_next_job_once_per_message(no_session_worker):
    on_postgresql()
    with capture_jobs() as captured:
        first, second, third = (fj.sync_customer.enqueue(31, n) for n in range(3))
        assert published(captured) == [(first.pk, 1)]
        captured._messages.clear()
        assert execute(str(first.pk), 1) == "succeeded"
        # The second ran here, within the first's message; the third was published, so the
        # key goes back in line behind the other keys' messages.
        assert published(captured) == [(third.pk, 1)]
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert [statuses[j.pk] for j in (first, second, third)] == ["succeeded", "succeeded", "queued"]
    assert JobRun.objects.get(job=second).worker == JobRun.objects.get(job=first).worker


def test_a_time_limit_keeps_the_next_job_for_the_broker(no_session_worker):
    on_postgresql()
    with capture_jobs() as captured:
        first, second = (fj.timed_sync.enqueue(32, n) for n in range(2))
        captured._messages.clear()
        execute(str(first.pk), 1)  # the next job has a timeout: Celery must time it alone
        assert published(captured) == [(second.pk, 1)]
        late = fj.sync_customer.enqueue(33, 0)
        after = fj.sync_customer.enqueue(33, 1)
        captured._messages.clear()
        execute.push_request(timelimit=(70, 60))  # this message is timed, as a worker's is
        try:
            execute.run(str(late.pk), 1)
        finally:
            execute.pop_request()
        assert published(captured) == [(after.pk, 1)]
    assert Job.objects.get(pk=second.pk).status == JobStatus.QUEUED


def test_a_worker_time_limit_or_a_shutdown_keeps_the_next_job_for_the_broker(
    no_session_worker, monkeypatch
):
    on_postgresql()
    from django_bgjobs.celery import continuation
    from django_bgjobs.worker import task

    with capture_jobs() as captured:
        monkeypatch.setattr(task, "_worker_time_limited", True)  # celery worker --time-limit
        first, second = (fj.sync_customer.enqueue(35, n) for n in range(2))
        captured._messages.clear()
        execute(str(first.pk), 1)
        assert published(captured) == [(second.pk, 1)]
        monkeypatch.setattr(task, "_worker_time_limited", False)
        continuation.share_stop_flag()  # as the worker does before its pool starts
        continuation.stop_taking()  # SIGTERM: its warm shutdown began
        third, fourth = (fj.sync_customer.enqueue(36, n) for n in range(2))
        captured._messages.clear()
        execute(str(third.pk), 1)
        assert published(captured) == [(fourth.pk, 1)]
    monkeypatch.setattr(continuation, "_stopping", None)


def test_a_process_stopping_after_its_job_publishes_the_job_it_kept(no_session_worker, monkeypatch):
    on_postgresql()
    from django_bgjobs.worker import task

    real = task.run_attempt

    def then_exit(job_id: str, attempt: int) -> str:
        real(job_id, attempt)
        raise SystemExit(0)  # as run_attempt re-raises after recording the job

    with capture_jobs() as captured:
        first, second = (fj.sync_customer.enqueue(37, n) for n in range(2))
        captured._messages.clear()
        monkeypatch.setattr(task, "run_attempt", then_exit)
        with pytest.raises(SystemExit):
            execute(str(first.pk), 1)
        assert published(captured) == [(second.pk, 1)]


def test_a_database_error_in_the_next_job_publishes_it_for_another_worker(
    no_session_worker, monkeypatch
):
    on_postgresql()
    from django_bgjobs.worker import task

    real = task.run_attempt

    def first_only(job_id: str, attempt: int) -> str:
        if job_id != str(first.pk):
            raise OperationalError("the server closed the connection unexpectedly")
        return real(job_id, attempt)

    with capture_jobs() as captured:
        first, second = (fj.sync_customer.enqueue(34, n) for n in range(2))
        captured._messages.clear()
        monkeypatch.setattr(task, "run_attempt", first_only)
        assert execute(str(first.pk), 1) == "succeeded"
        assert published(captured) == [(second.pk, 1)]
    assert Job.objects.get(pk=second.pk).status == JobStatus.QUEUED


def test_within_a_key_the_higher_priority_goes_first_then_the_older():
    with capture_jobs() as captured:
        holder = fj.sync_customer.enqueue(5, 0)
        low = fj.sync_customer.enqueue(5, 1)
        high = fj.sync_customer.using(priority=9).enqueue(5, 2)
        older_high = Job.objects.get(pk=high.pk)
        assert captured.names() == [fj.sync_customer.name]  # only the holder was published
        captured.run_all()
    order = list(JobRun.objects.order_by("started_at").values_list("job_id", flat=True))
    assert order == [holder.pk, older_high.pk, low.pk]


def test_an_operator_raising_a_limit_lets_more_through_at_the_next_pass(no_session_worker):
    with capture_jobs() as captured:
        jobs = [fj.sync_customer.enqueue(9, n) for n in range(4)]
        assert len(captured.jobs) == 1
        FlowGate.objects.create(name=fj.sync_customer.name, concurrency=3)
        Dispatcher().run_once()
        assert len(captured.jobs) == 3
    assert Job.objects.filter(pk__in=[j.pk for j in jobs], status=JobStatus.BLOCKED).count() == 1


def test_a_blocked_job_can_be_cancelled_and_frees_nothing():
    with capture_jobs() as captured:
        fj.sync_customer.enqueue(4, 0)
        blocked = fj.sync_customer.enqueue(4, 1)
        assert blocked.cancel()
        captured.run_all()
    assert Job.objects.get(pk=blocked.pk).status == JobStatus.CANCELLED
    assert JobRun.objects.count() == 1


def test_a_key_read_by_a_function_of_the_arguments():
    with capture_jobs() as captured:
        first = fj.ship.enqueue({"id": 1, "customer": "acme"})
        second = fj.ship.enqueue({"id": 2, "customer": "acme"})
        other = fj.ship.enqueue({"id": 3, "customer": "globex"})
        assert first.flow_key == second.flow_key == 'tests.flow_jobs.ship ="acme"'
        assert Job.objects.get(pk=second.pk).status == JobStatus.BLOCKED
        assert Job.objects.get(pk=other.pk).status == JobStatus.QUEUED
        captured.run_all()
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.SUCCEEDED}


@pytest.mark.worker
def test_durable_function_runs_share_a_key_read_from_their_event(worker):
    for order_id in range(3):
        fj.OrderPlaced(customer="acme", order_id=order_id).send()
    runs = wait_for(
        lambda: (
            (found := list(Job.objects.filter(name=fj.fulfil.name))) and len(found) == 3 and found
        )
    )
    assert {run.flow_key for run in runs} == {'tests.flow_jobs.fulfil customer="acme"'}
    assert {run.status for run in finished(runs)} == {JobStatus.SUCCEEDED}
    assert most_at_once("order acme") == {"order acme": 1}


# --- throttle, rate limit, debounce, singleton -------------------------------------------------


def test_throttle_spreads_the_starts_of_a_key_evenly_and_keeps_every_job():
    with capture_jobs():
        before = timezone.now()
        jobs = [fj.call_api.enqueue("acct-1", n) for n in range(12)]
        other = fj.call_api.enqueue("acct-2", 0)
    starts = [Job.objects.get(pk=job.pk).run_after for job in jobs]
    assert Job.objects.get(pk=jobs[0].pk).status == JobStatus.QUEUED and starts[0] is None
    gaps = [(b - a).total_seconds() for a, b in zip(starts[1:], starts[2:], strict=False)]
    assert all(abs(gap - 0.2) < 1e-6 for gap in gaps), gaps  # 5 a second: one every 200 ms
    assert (starts[1] - before).total_seconds() <= 0.21
    assert Job.objects.get(pk=other.pk).status == JobStatus.QUEUED  # another key: not held
    # The bound the docs state: at most `limit` starts in any window of `period`.
    times = [before] + starts[1:]
    for i, start in enumerate(times):
        in_window = [t for t in times if start <= t < start + timedelta(seconds=1)]
        assert len(in_window) <= 5, (i, len(in_window))


@pytest.mark.worker
def test_throttled_jobs_all_run_no_faster_than_the_limit(worker):
    jobs = [fj.call_api.enqueue("acct-9", n) for n in range(10)]
    finished(jobs)
    # When each job's code ran (a start picked up early waits in the worker, after its claim).
    # The bound is on the starts as the worker times them; the job's first line runs a few
    # milliseconds after, more or less: a window short of JITTER absorbs that.
    started = sorted(Effect.objects.filter(key="api acct-9").values_list("at", flat=True))
    assert len(started) == 10
    for i, start in enumerate(started):
        window = [t for t in started if start <= t < start + timedelta(seconds=1) - JITTER]
        assert len(window) <= 5, (i, window)
    assert (started[-1] - started[0]).total_seconds() >= 1.7  # 9 gaps of 200 ms, less jitter


def test_rate_limit_drops_what_is_over_it_and_says_why():
    with capture_jobs():
        kept = [fj.login_attempt.enqueue("10.0.0.1") for _ in range(3)]
        dropped = fj.login_attempt.enqueue("10.0.0.1")
        elsewhere = fj.login_attempt.enqueue("10.0.0.2")
    assert {job.status for job in kept} == {JobStatus.QUEUED}
    dropped = Job.objects.get(pk=dropped.pk)
    assert dropped.status == JobStatus.CANCELLED and dropped.finished_at is not None
    assert dropped.error.startswith("dropped: over the rate limit of 3 per 0:00:30 for ")
    assert Job.objects.get(pk=elsewhere.pk).status == JobStatus.QUEUED


def test_debounce_keeps_one_waiting_job_with_the_last_arguments():
    with capture_jobs() as captured:
        first = fj.reindex.enqueue(1, "a")
        again = fj.reindex.enqueue(1, "ab")
        last = fj.reindex.enqueue(1, "abc")
        other = fj.reindex.enqueue(2, "x")
        assert first.pk == again.pk == last.pk != other.pk
        job = Job.objects.get(pk=first.pk)
        assert (job.status, job.args) == (JobStatus.SCHEDULED, [1, "abc"])
        assert job.run_after > timezone.now() + timedelta(seconds=0.3)
        captured.run_all()
    assert sorted(Effect.objects.values_list("key", flat=True)) == ["reindex 1 abc", "reindex 2 x"]


def test_debounce_never_waits_past_max_wait():
    with capture_jobs():
        first = fj.reindex.enqueue(3, "a")
        Job.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(seconds=1.9))
        fj.reindex.enqueue(3, "b")
    job = Job.objects.get(pk=first.pk)
    assert job.run_after <= job.created_at + timedelta(seconds=2)


def test_singleton_skip_returns_the_unfinished_job_instead_of_adding_one():
    with capture_jobs() as captured:
        first = fj.rebuild.enqueue(1, 1)
        again = fj.rebuild.enqueue(1, 2)
        assert again.pk == first.pk
        captured.run_all()
        later = fj.rebuild.enqueue(1, 3)  # the first finished: a new one
    assert later.pk != first.pk
    assert Job.objects.filter(name=fj.rebuild.name).count() == 2


def test_singleton_and_debounce_hold_within_one_enqueue_many():
    with capture_jobs():
        jobs = enqueue_many(
            [
                fj.rebuild.prepare(5, 1),
                fj.rebuild.prepare(5, 2),
                fj.reindex.prepare(6, "a"),
                fj.reindex.prepare(6, "b"),
            ]
        )
    assert jobs[0].pk == jobs[1].pk and jobs[2].pk == jobs[3].pk
    assert Job.objects.filter(name=fj.rebuild.name).count() == 1
    assert Job.objects.get(pk=jobs[2].pk).args == [6, "b"]


def test_batch_gathers_a_keys_calls_into_one_job_of_at_most_max_size():
    with capture_jobs() as captured:
        first = fj.send_digest.enqueue(1, ["a"])
        assert fj.send_digest.enqueue(1, ["b"]).pk == first.pk
        other = fj.send_digest.enqueue(2, ["x"])
        full = fj.send_digest.enqueue(1, ["c"])  # the third item: ready at once
        assert full.pk == first.pk
        assert Job.objects.get(pk=first.pk).status == JobStatus.QUEUED
        assert captured.names() == [fj.send_digest.name]
        overflow = [fj.send_digest.enqueue(1, ["d", "e"]), fj.send_digest.enqueue(1, ["f", "g"])]
        assert overflow[0].pk != overflow[1].pk  # 4 items do not fit in one batch of 3
        assert Job.objects.get(pk=other.pk).status == JobStatus.SCHEDULED  # until its timeout
        captured.run_all()
    assert sorted(Effect.objects.values_list("key", flat=True)) == [
        "digest 1 a,b,c",
        "digest 1 d,e",
        "digest 1 f,g",
        "digest 2 x",
    ]


def test_a_batch_call_with_no_list_or_too_many_items_is_refused():
    with pytest.raises(PayloadError, match="events takes a list of 1 to 3 items"):
        fj.send_digest.enqueue(1, ["a", "b", "c", "d"])
    with pytest.raises(PayloadError, match="events takes a list"):
        fj.send_digest.enqueue(1, [])
    assert not Job.objects.exists()


@pytest.mark.worker
def test_singleton_cancel_running_stops_the_running_one_and_then_starts(worker):
    first = fj.export.enqueue(1, 1)
    wait_for(lambda: Effect.objects.filter(key="export 1 start", job_id="1").exists())
    second = fj.export.enqueue(1, 2)
    first, second = finished([first, second])
    assert (first.status, second.status) == (JobStatus.CANCELLED, JobStatus.SUCCEEDED)
    assert not Effect.objects.filter(key="export 1 end", job_id="1").exists()
    first_run = JobRun.objects.get(job=first)
    second_run = JobRun.objects.get(job=second)
    assert second_run.started_at >= first_run.finished_at


# --- declarations ------------------------------------------------------------------------------


def declared_job(customer_id: int, payload: dict) -> None: ...


def _decorate(**options: object) -> None:
    bgjob(name="tests.flow_declared", **options)(declared_job)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": Concurrency(limit=1, key="customer")}, "names no parameter; its"),
        ({"concurrency": Concurrency(limit=0)}, "Concurrency.limit must be an integer >= 1"),
        ({"concurrency": 3}, "concurrency= takes a Concurrency"),
        (
            {
                "concurrency": Concurrency(limit=1, key="customer_id"),
                "throttle": Throttle(limit=1, period=timedelta(seconds=1), key="payload.id"),
            },
            "have different keys",
        ),
        (
            {"throttle": Throttle(limit=1, period=timedelta(0))},
            "Throttle.period must be a positive timedelta",
        ),
        ({"concurrency": Concurrency(limit=1, key=lambda tenant: tenant)}, "takes tenant"),
    ],
)
def test_a_flow_option_that_cannot_work_is_refused_when_decorated(options, message):
    with pytest.raises(JobConfigurationError, match=message):
        _decorate(**options)


def test_a_key_may_be_a_path_into_an_argument():
    with capture_jobs():
        job = fj.ship.enqueue({"id": 9, "customer": "initech"})
    assert job.flow_key.endswith('="initech"')
    keyed = bgjob(name="tests.flow_path", concurrency=Concurrency(limit=1, key="payload.id"))
    spec = keyed(declared_job).spec
    assert spec.flow is not None
    assert spec.flow.flow_key((1, {"id": 42}), {}) == "tests.flow_path payload.id=42"


def test_admission_never_grants_a_place_twice_when_two_ask_at_once(no_session_worker):
    """Two admissions of one key in a row (as two processes finishing at once would): the
    second sees the place the first gave."""
    with capture_jobs() as captured:
        jobs = [fj.sync_customer.enqueue(11, n) for n in range(3)]
        assert admission.admit([jobs[0].flow_key]) == 0
        assert admission.admit([jobs[0].flow_key]) == 0
        run = states.claim(str(jobs[0].pk), 1, "w")
        assert run is not None
        states.succeed(run, result=0)  # frees the place: admits the next one
        assert len(captured.jobs) == 2
        assert admission.admit([jobs[0].flow_key]) == 0


def test_retry_after_suspends_the_job_without_spending_an_attempt():
    with capture_jobs() as captured:
        job = fj.rate_limited_once.enqueue(False)
        spent = fj.rate_limited_once.enqueue(True)
        captured.run_all()
    job, spent = Job.objects.get(pk=job.pk), Job.objects.get(pk=spent.pk)
    assert (job.status, job.result, job.attempts, job.max_attempts) == (
        JobStatus.SUCCEEDED,
        2,
        2,
        2,
    )
    first = JobRun.objects.get(job=job, attempt=1)
    assert (first.status, first.error) == ("failed", "RetryAfter: 429 Too Many Requests")
    assert (spent.status, spent.attempts) == (JobStatus.DEAD, 1)  # its only attempt, spent


# --- the admin ---------------------------------------------------------------------------------


def test_a_blocked_jobs_page_says_what_it_waits_for(admin_client):
    with capture_jobs():
        fj.sync_customer.enqueue(21, 0)
        blocked = fj.sync_customer.enqueue(21, 1)
    page = admin_client.get(reverse("admin:django_bgjobs_job_change", args=[blocked.pk]))
    html = page.content.decode()
    assert "tests.flow_jobs.sync_customer customer_id=21" in html
    assert "waits for a place, 1 of 1 held" in html
    assert "bgjobs-status-blocked" in html
    listing = admin_client.get(reverse("admin:django_bgjobs_flowkey_changelist")).content.decode()
    assert "tests.flow_jobs.sync_customer customer_id=21" in listing


def test_release_lets_the_next_job_of_a_stuck_key_through_and_is_logged(admin_client):
    with capture_jobs() as captured:
        stuck = fj.sync_customer.enqueue(22, 0)
        blocked = fj.sync_customer.enqueue(22, 1)
        response = admin_client.post(
            reverse("admin:django_bgjobs_flowkey_changelist"),
            {"action": "release", "_selected_action": [stuck.flow_key]},
        )
        assert response.status_code == 302
        assert captured.names() == [fj.sync_customer.name] * 2
    assert Job.objects.get(pk=blocked.pk).status == JobStatus.QUEUED
    assert not Job.objects.get(pk=stuck.pk).gated  # still queued, no longer counted
    [entry] = LogEntry.objects.filter(object_id=stuck.flow_key)
    assert entry.change_message == "Released: 1 job(s) holding a place."


def test_an_operator_raises_a_limit_in_the_admin(admin_client):
    with capture_jobs() as captured:
        for n in range(3):
            fj.sync_customer.enqueue(23, n)
        url = reverse("admin:django_bgjobs_flowgate_add")
        refused = admin_client.post(url, {"name": "no.such.job", "concurrency": 2})
        assert "No job has a concurrency limit named" in refused.content.decode()
        admin_client.post(url, {"name": fj.sync_customer.name, "concurrency": 2})
        assert len(captured.jobs) == 2  # let through at once, not at the next pass
    assert FlowGate.objects.get(name=fj.sync_customer.name).concurrency == 2
    assert LogEntry.objects.filter(object_id=fj.sync_customer.name).exists()


# --- what a review found -----------------------------------------------------------------------


def test_a_limit_name_with_spaces_is_refused():
    with pytest.raises(JobConfigurationError, match="a name with spaces"):
        _decorate(concurrency=Concurrency(limit=1, name="CRM API"))


def batched_with_extras(events: list, **extra: object) -> None: ...


def test_a_batched_job_must_take_its_arguments_by_name():
    from django_bgjobs import Batch

    with pytest.raises(JobConfigurationError, match="extra cannot be"):
        bgjob(
            name="tests.flow_batch_extras",
            batch=Batch(max_size=2, timeout=timedelta(seconds=1), into="events"),
        )(batched_with_extras)


def test_a_delayed_throttled_job_does_not_push_its_key_back():
    with capture_jobs():
        later = fj.call_api.using(delay=timedelta(hours=1)).enqueue("acct-7", 0)
        now = fj.call_api.enqueue("acct-7", 1)
    assert Job.objects.get(pk=now.pk).status == JobStatus.QUEUED
    assert Job.objects.get(pk=later.pk).run_after > timezone.now() + timedelta(minutes=59)


def test_debounce_in_enqueue_many_gives_a_pending_job_the_last_arguments():
    with capture_jobs():
        pending = fj.reindex.enqueue(8, "a")
        jobs = enqueue_many([fj.reindex.prepare(8, "b"), fj.reindex.prepare(8, "c")])
    assert {job.pk for job in jobs} == {pending.pk}
    assert Job.objects.get(pk=pending.pk).args == [8, "c"]


def test_a_repeated_call_with_its_idempotency_key_spends_nothing_and_cancels_nothing():
    with capture_jobs():
        first = fj.export.using(idempotency_key="export-1").enqueue(9, 1)
        again = fj.export.using(idempotency_key="export-1").enqueue(9, 1)
    assert again.pk == first.pk
    assert Job.objects.get(pk=first.pk).status == JobStatus.QUEUED  # not cancelled by itself


def test_a_released_jobs_next_attempt_counts_again(no_session_worker):
    with capture_jobs():
        holder = fj.sync_customer.enqueue(24, 0)
        blocked = fj.sync_customer.enqueue(24, 1)
        Job.objects.holding(holder.flow_key).update(gated=False)  # what Release does
        admission.admit([holder.flow_key])
        assert Job.objects.get(pk=blocked.pk).status == JobStatus.QUEUED
        claim = states.claim(str(holder.pk), 1, "w")
        assert claim is not None
        states.fail(claim, "ConnectionError: flaky", "", retry_in=0.0)
    assert Job.objects.get(pk=holder.pk).gated  # its retry goes through the limit again
    states.promote_due(timezone.now(), 10)
    assert Job.objects.get(pk=holder.pk).status == JobStatus.BLOCKED


def test_blocked_jobs_whose_limit_the_code_dropped_go_at_the_next_pass(no_session_worker):
    with capture_jobs() as captured:
        fj.sync_customer.enqueue(25, 0)
        blocked = fj.sync_customer.enqueue(25, 1)
        Job.objects.filter(pk=blocked.pk).update(flow_key="tests.renamed_limit customer_id=25")
        admission.admit_waiting()
        assert blocked.pk in [job.pk for job in captured.jobs]
    job = Job.objects.get(pk=blocked.pk)
    assert (job.status, job.gated) == (JobStatus.QUEUED, False)
