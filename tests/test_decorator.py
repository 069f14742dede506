"""@bgjob validates its options when it decorates; Backoff computes the delays."""

from __future__ import annotations

import random

import pytest

from django_bgjobs import Backoff, JobConfigurationError, bgjob
from django_bgjobs.decorators import JobFunction
from django_bgjobs.registry import registry
from tests import jobs


def test_bare_decorator_registers_under_the_dotted_path():
    assert isinstance(jobs.noop, JobFunction)
    assert jobs.noop.name == "tests.jobs.noop"
    assert registry.get("tests.jobs.noop") is jobs.noop.spec
    assert jobs.noop.spec.queue == "default"
    assert jobs.noop.spec.max_attempts == 4  # BGJOBS default


def test_options_are_kept():
    spec = jobs.add.spec
    assert (spec.queue, spec.max_attempts, spec.priority) == ("emails", 2, 5)


def test_call_runs_in_process_without_a_row():
    assert jobs.add.call(2, 2) == 4
    assert jobs.async_double.spec.takes_context
    assert jobs.record.spec.signature.parameters.keys() == {"key"}  # ctx is not an argument


def test_lambda_is_rejected():
    with pytest.raises(JobConfigurationError, match="lambda"):
        bgjob(lambda: None)


def test_nested_function_is_rejected():
    with pytest.raises(JobConfigurationError, match="top level of a module"):

        @bgjob
        def inner() -> None: ...


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue": "nope"}, "not in BGJOBS\\['QUEUES'\\]"),
        ({"max_attempts": -1}, "max_attempts must be an integer >= 1"),
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"priority": 10}, "priority must be an integer from 0 to 9"),
        ({"retry_on": (ValueError, "x")}, "retry_on must be a tuple of exception classes"),
        ({"retry_on": ValueError}, "retry_on must be a tuple of exception classes"),
    ],
)
def test_bad_options_fail_when_decorated(options, message):
    def job() -> None: ...

    job.__qualname__ = "module_level_job"
    with pytest.raises(JobConfigurationError, match=message):
        bgjob(**options)(job)


def test_takes_context_needs_a_parameter():
    def job() -> None: ...

    job.__qualname__ = "module_level_job"
    with pytest.raises(JobConfigurationError, match="takes_context=True"):
        bgjob(takes_context=True)(job)


def test_two_functions_with_one_name_is_an_error():
    def first() -> None: ...

    def second() -> None: ...

    first.__qualname__, second.__qualname__ = "first", "second"
    bgjob(name="tests.same-name")(first)
    with pytest.raises(JobConfigurationError, match="Two jobs are named"):
        bgjob(name="tests.same-name")(second)


def test_using_validates_and_does_not_change_the_original():
    delayed = jobs.add.using(priority=9, queue="default")
    assert delayed.options.priority == 9 and jobs.add.options.priority is None
    with pytest.raises(JobConfigurationError):
        jobs.add.using(queue="unknown")
    with pytest.raises(ValueError, match="not both"):
        from datetime import timedelta

        from django.utils import timezone

        jobs.add.using(delay=timedelta(1), run_after=timezone.now())


def test_backoff_is_exponential_and_capped():
    backoff = Backoff(base=2, factor=2, max=600, jitter=False)
    assert [backoff.delay(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert backoff.delay(40) == 600
    assert backoff.delay(10_000) == 600


def test_backoff_full_jitter_stays_within_the_cap():
    backoff = Backoff(base=2, factor=2, max=600, jitter=True)
    rng = random.Random(7)
    delays = [backoff.delay(3, rng) for _ in range(1000)]
    assert all(0 <= d <= 8 for d in delays)
    assert max(delays) > 6 and min(delays) < 2  # spread over the whole range


def test_backoff_rejects_nonsense():
    with pytest.raises(ValueError):
        Backoff(factor=0.5)
